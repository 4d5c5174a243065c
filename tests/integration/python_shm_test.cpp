// Interoperability of SharedMemory with Python's multiprocessing.shared_memory, both directions.
//
// The Python side is tests/helpers/read_shm.py, run with $MPROC_TEST_PYTHON (python3 if unset).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mproc/shared_memory.hpp>
#include <regex>
#include <span>
#include <string>
#include <vector>

#include "helpers/child.hpp"

#ifndef MPROC_TEST_SOURCE_DIR
#error "MPROC_TEST_SOURCE_DIR (the tests/ source directory) must be defined by the build"
#endif

namespace {

using mproc::SharedMemory;
using namespace std::chrono_literals;

std::byte pattern(std::size_t i) { return static_cast<std::byte>((i * 131 + 7) & 0xff); }

// FNV-1a, 32 bits; read_shm.py computes the same.
std::uint32_t fnv1a32(std::span<const std::byte> data) {
  std::uint32_t h = 0x811c9dc5u;
  for (std::byte b : data) h = (h ^ std::to_integer<std::uint32_t>(b)) * 0x01000193u;
  return h;
}

std::string expected_line(std::size_t size, std::uint32_t fnv) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", fnv);
  return "size=" + std::to_string(size) + " fnv=" + hex + "\n";
}

bool shm_exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

struct PythonResult {
  int exitcode = -1;
  std::string output;  // stdout and stderr together
};

// Runs read_shm.py with `args`; output is read until every writer is gone (Python and the resource
// tracker it starts, which inherits stdout/stderr), all within `timeout`.
PythonResult run_python(const std::vector<std::string>& args,
                        std::chrono::milliseconds timeout = 60s) {
  const char* env = std::getenv("MPROC_TEST_PYTHON");
  const std::string python = (env && *env) ? env : "python3";
  const std::string script = std::string(MPROC_TEST_SOURCE_DIR) + "/helpers/read_shm.py";
  std::vector<std::string> argv_s{python, script};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  mproc_test::Child child([&] {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execvp(argv[0], argv.data());
    return 127;
  });
  ::close(fds[1]);
  PythonResult r;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) {
      r.output += "\n[test: timed out reading the output]";
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;  // EOF
    r.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  r.exitcode = child.wait(std::max(left, 1ms));
  return r;
}

class PythonShm : public ::testing::Test {
 protected:
  std::string prefix() const { return "mproc_test_" + std::to_string(getpid()) + "_"; }
  std::string name(const std::string& what) const { return prefix() + what; }

  void TearDown() override {
    std::vector<std::string> left;
    if (DIR* d = opendir("/dev/shm")) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n.rfind(prefix(), 0) == 0) left.push_back(n);
      }
      closedir(d);
    }
    EXPECT_TRUE(left.empty()) << "segment left in /dev/shm: " << (left.empty() ? "" : left[0]);
    for (const auto& n : left) shm_unlink(("/" + n).c_str());
  }
};

TEST_F(PythonShm, PythonReadsWhatCppWrote) {
  constexpr std::size_t kSize = 65536 + 123;  // not a multiple of the page size
  auto shm = SharedMemory::create(name("cpp2py"), kSize);
  auto b = shm.buf();
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = pattern(i);

  auto r = run_python({shm.name(), std::to_string(kSize)});
  EXPECT_EQ(r.exitcode, 0) << r.output;
  EXPECT_EQ(r.output, expected_line(kSize, fnv1a32(b)));
  // Python attached and exited, and its resource tracker did not unlink our segment.
  EXPECT_TRUE(shm_exists(name("cpp2py")));
}

TEST_F(PythonShm, PythonReadsAGeneratedName) {
  std::string n;
  {
    auto shm = SharedMemory::create(4096);
    n = shm.name();
    auto b = shm.buf();
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = pattern(i * 7);
    auto r = run_python({n, "4096"});
    EXPECT_EQ(r.exitcode, 0) << r.output;
    EXPECT_EQ(r.output, expected_line(4096, fnv1a32(b)));
  }
  EXPECT_FALSE(shm_exists(n));
}

TEST_F(PythonShm, CppReadsWhatPythonWroteThenUnlinks) {
  constexpr std::size_t kSize = 10000;
  const std::string n = name("py2cpp");
  auto r = run_python({"--create", n, std::to_string(kSize)});
  ASSERT_EQ(r.exitcode, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.output, m, std::regex("size=(\\d+) fnv=([0-9a-f]{8})\n")))
      << r.output;
  ASSERT_TRUE(shm_exists(n)) << "Python's resource tracker removed the segment";

  auto shm = SharedMemory::attach(n);
  EXPECT_FALSE(shm.owns_name());
  EXPECT_EQ(shm.size(), kSize);
  EXPECT_EQ(std::stoul(m[1].str()), kSize);
  auto b = shm.buf();
  for (std::size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], pattern(i)) << "at " << i;
  EXPECT_EQ(std::stoul(m[2].str(), nullptr, 16), fnv1a32(b));

  EXPECT_TRUE(shm.unlink());
  EXPECT_FALSE(shm_exists(n));
}

TEST_F(PythonShm, PythonUnlinksWhatCppReleased) {
  auto shm = SharedMemory::create(name("released"), 100);
  shm.buf()[0] = std::byte{1};
  shm.release_name();
  auto r = run_python({"--unlink", shm.name()});
  EXPECT_EQ(r.exitcode, 0) << r.output;
  EXPECT_EQ(r.output, "unlinked\n");
  EXPECT_FALSE(shm_exists(name("released")));
  EXPECT_EQ(shm.buf()[0], std::byte{1});  // still mapped here
  EXPECT_FALSE(shm.unlink());
}

TEST_F(PythonShm, PythonCannotAttachAfterTheCreatorIsGone) {
  { auto shm = SharedMemory::create(name("gone"), 100); }
  auto r = run_python({name("gone"), "100"});
  EXPECT_NE(r.exitcode, 0);
  EXPECT_NE(r.output.find("FileNotFoundError"), std::string::npos) << r.output;
}

}  // namespace
