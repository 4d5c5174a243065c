// Code addresses that reach a different program image (<mproc/detail/travel.hpp>, src/image.cpp):
// this test sends the records of its images and a CodeRef, encoded with mproc::to_bytes, to a
// freshly executed helper (tests/helpers/code_ref_call_main.cpp, a different main executable)
// that resolves and calls the function. The helper loads the library itself from the recorded
// path; a file replaced or deleted after this process loaded it is a ProcessError there that names
// the path (and both build-ids), and the replaced file does not stay loaded in the helper.
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <string>
#include <vector>

#include "helpers/watchdog.hpp"

namespace {

namespace fs = std::filesystem;
using mproc::detail::CodeRef;
using mproc::detail::ImageRecord;
using PluginFn = int (*)(int);

__attribute__((noinline)) int square(int x) { return x * x; }

std::string helper(const std::string& name) {
  const char* dir = std::getenv("MPROC_TEST_HELPERS");
  fs::path base = dir && *dir ? fs::path(dir) : fs::read_symlink("/proc/self/exe").parent_path();
  return (base / name).string();
}

std::string hex(const std::vector<std::byte>& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::byte b : bytes) {
    s += kHex[std::to_integer<unsigned>(b) >> 4];
    s += kHex[std::to_integer<unsigned>(b) & 0xF];
  }
  return s;
}

std::string hex(const std::string& bytes) {
  std::vector<std::byte> v(bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) v[i] = static_cast<std::byte>(bytes[i]);
  return hex(v);
}

struct HelperRun {
  int exit_code = -1;
  std::string out;
};

// fork + exec of the helper with `args`, its standard output through a pipe (bounded: 30 s, then
// it is killed).
HelperRun run_helper(const std::vector<std::string>& args) {
  const std::string exe = helper("code_ref_call_main");
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  HelperRun r;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return r;
  const pid_t pid = fork();
  if (pid == 0) {
    if (dup2(p[1], 1) < 0) _exit(126);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  close(p[1]);
  char buf[4096];
  for (;;) {
    pollfd pfd{p[0], POLLIN, 0};
    if (poll(&pfd, 1, 30000) <= 0) {
      kill(pid, SIGKILL);
      r.out += "(timed out)";
      break;
    }
    const ssize_t n = read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// Sends `code` (with every record of this process's table) to the helper, which calls it with 3.
HelperRun send_and_call(const void* code, const std::string& fragment = "") {
  const CodeRef ref = mproc::detail::code_ref_of(code);
  std::vector<std::string> args = {hex(mproc::to_bytes(mproc::detail::image_records(0))),
                                   hex(mproc::to_bytes(ref)), "3"};
  if (!fragment.empty()) args.push_back(fragment);
  return run_helper(args);
}

struct Lib {
  explicit Lib(const std::string& path) : h(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {}
  ~Lib() {
    if (h != nullptr) dlclose(h);
  }
  Lib(const Lib&) = delete;
  Lib& operator=(const Lib&) = delete;
  const void* fn() const { return dlsym(h, "mproc_test_plugin_value"); }
  void* h;
};

// The identity this process's table records for the image holding `code`.
std::string identity_of(const void* code) {
  const CodeRef ref = mproc::detail::code_ref_of(code);
  return mproc::detail::image_records(ref.image).at(0).build_id;
}

// A scratch directory, removed at the end of the test.
struct TempDir {
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "mproc-code-ref-XXXXXX").string();
    if (mkdtemp(templ.data()) != nullptr) path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path path;
};

TEST(CodeRefImage, AFreshProgramLoadsTheLibraryAndCallsTheFunction) {
  mproc_test::Watchdog dog;
  Lib plugin(MPROC_TEST_PLUGIN_A);
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  const HelperRun r = send_and_call(plugin.fn());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "result 1021\n");  // 7 * 3 + 1000: variant a's code, run by the helper
}

TEST(CodeRefImage, ALibraryWithoutBuildIdTravelsByTheHashOfItsCode) {
  mproc_test::Watchdog dog;
  Lib plugin(MPROC_TEST_PLUGIN_N);
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  ASSERT_EQ(identity_of(plugin.fn()).rfind("code-hash:", 0), 0u);
  const HelperRun r = send_and_call(plugin.fn());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "result 3021\n");
}

TEST(CodeRefImage, AFileReplacedAfterItWasLoadedIsAProcessErrorNamingBothBuildIds) {
  mproc_test::Watchdog dog;
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const fs::path lib = dir.path / "libplugin.so";
  fs::copy_file(MPROC_TEST_PLUGIN_A, lib);
  Lib plugin(lib.string());
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  Lib other(MPROC_TEST_PLUGIN_B);
  ASSERT_NE(other.h, nullptr) << dlerror();
  const std::string loaded_id = hex(identity_of(plugin.fn()));
  const std::string replacing_id = hex(identity_of(other.fn()));
  ASSERT_NE(loaded_id, replacing_id);
  // The file is replaced as a package manager or a rebuild would: a new file renamed over it.
  fs::copy_file(MPROC_TEST_PLUGIN_B, dir.path / "next.so");
  fs::rename(dir.path / "next.so", lib);

  const HelperRun r = send_and_call(plugin.fn(), dir.path.string());
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_EQ(r.out.rfind("error ProcessError: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(lib.string() + " is not the file the sending process loaded"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("its build-id is " + replacing_id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the sending process's was " + loaded_id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("restart the program"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("still-loaded 0\n"), std::string::npos)
      << "the replaced file stayed loaded in the helper: " << r.out;
}

TEST(CodeRefImage, AFileReplacedByOneWithoutBuildIdIsAProcessError) {
  mproc_test::Watchdog dog;
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const fs::path lib = dir.path / "libplugin.so";
  fs::copy_file(MPROC_TEST_PLUGIN_A, lib);
  Lib plugin(lib.string());
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  const std::string loaded_id = hex(identity_of(plugin.fn()));
  fs::copy_file(MPROC_TEST_PLUGIN_N, dir.path / "next.so");
  fs::rename(dir.path / "next.so", lib);

  const HelperRun r = send_and_call(plugin.fn(), dir.path.string());
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_NE(r.out.find("its build-id is (none), the sending process's was " + loaded_id),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("still-loaded 0\n"), std::string::npos) << r.out;
}

TEST(CodeRefImage, AFileDeletedAfterItWasLoadedIsAProcessErrorNamingThePath) {
  mproc_test::Watchdog dog;
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const fs::path lib = dir.path / "libplugin.so";
  fs::copy_file(MPROC_TEST_PLUGIN_A, lib);
  Lib plugin(lib.string());
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  const std::string loaded_id = hex(identity_of(plugin.fn()));
  fs::remove(lib);

  const HelperRun r = send_and_call(plugin.fn(), dir.path.string());
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_EQ(r.out.rfind("error ProcessError: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("cannot load " + lib.string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("build-id " + loaded_id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("moved or deleted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("still-loaded 0\n"), std::string::npos) << r.out;
}

// The helper is another program: this test binary's own code is not there to be found, and an
// executable cannot be loaded as a library. A clear error, never a jump.
TEST(CodeRefImage, AFunctionOfAnotherProgramsMainExecutableIsAProcessError) {
  mproc_test::Watchdog dog;
  EXPECT_EQ(square(3), 9);
  const HelperRun r = send_and_call(reinterpret_cast<const void*>(&square));
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_EQ(r.out.rfind("error ProcessError: mproc: cannot load " +
                            fs::read_symlink("/proc/self/exe").string(),
                        0),
            0u)
      << r.out;
}

// Records that are not a table of images (a code reference's bytes in their place) are a
// DecodeError in the helper, not a crash.
TEST(CodeRefImage, CorruptRecordsAreADecodeError) {
  mproc_test::Watchdog dog;
  const std::string ref_hex = hex(mproc::to_bytes(CodeRef{0, 16}));
  std::vector<ImageRecord> bad = {{0, std::string(5000, '/'), "id"}};
  HelperRun r = run_helper({hex(mproc::to_bytes(bad)), ref_hex, "3"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_EQ(r.out.rfind("error DecodeError: ", 0), 0u) << r.out;
  r = run_helper({"ffffffffffffffff0102", ref_hex, "3"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_EQ(r.out.rfind("error DecodeError: ", 0), 0u) << r.out;
}

}  // namespace
