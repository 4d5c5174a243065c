// Integration tests of what happens to children when their parent exits or is killed.
//
// The parents are helper programs (tests/helpers/process_*_main.cpp) run with fork+exec; their
// build directory comes from the MPROC_TEST_HELPERS environment variable (set by CTest), or else
// the directory of this test binary.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "helpers/child.hpp"
#include "helpers/proc_state.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::proc_state;
namespace fs = std::filesystem;

std::string helper(const std::string& name) {
  const char* dir = std::getenv("MPROC_TEST_HELPERS");
  fs::path base = dir && *dir ? fs::path(dir) : fs::read_symlink("/proc/self/exe").parent_path();
  return (base / name).string();
}

bool running(int pid) {
  char st = proc_state(pid);
  return st != 0 && st != 'Z' && st != 'X';
}

// Polls up to `limit` for `pid` to be gone or a zombie.
bool await_not_running(int pid, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (running(pid)) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/mproc_lifecycle_XXXXXX";
    if (!mkdtemp(templ)) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ProcessLifecycle, DaemonsAreTerminatedAndOthersJoinedWhenTheParentReturnsFromMain) {
  TempDir dir;
  const std::string exe = helper("process_exit_parent_main");
  ASSERT_TRUE(fs::exists(exe)) << exe;
  int rc = mproc_test::run_in_child(
      [&] {
        execl(exe.c_str(), exe.c_str(), dir.path().c_str(), static_cast<char*>(nullptr));
        return 127;
      },
      60s);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(slurp(dir.path() + "/result"), "daemon=-15 stubborn=-9 worker=5\n");
  EXPECT_TRUE(fs::exists(dir.path() + "/worker_done"));
  std::istringstream pids(slurp(dir.path() + "/pids"));
  int a = 0, b = 0, c = 0;
  ASSERT_TRUE(pids >> a >> b >> c);
  // The parent reaped them before it exited: not even zombies remain.
  EXPECT_EQ(proc_state(a), 0);
  EXPECT_EQ(proc_state(b), 0);
  EXPECT_EQ(proc_state(c), 0);
}

TEST(ProcessLifecycle, NoOrphanRemainsAfterTheParentIsKilled) {
  const std::string exe = helper("process_orphan_parent_main");
  ASSERT_TRUE(fs::exists(exe)) << exe;
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  mproc_test::Child parent([&] {
    ::close(out[0]);
    dup2(out[1], STDOUT_FILENO);
    execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
    return 127;
  });
  ::close(out[1]);

  // Read the three "<role> <pid>" lines (bounded).
  std::map<std::string, int> pids;
  std::string buf;
  auto end = std::chrono::steady_clock::now() + 30s;
  while (pids.size() < 3 && std::chrono::steady_clock::now() < end) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    char tmp[256];
    ssize_t n = read(out[0], tmp, sizeof tmp);
    if (n <= 0) break;
    buf.append(tmp, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::istringstream line(buf.substr(0, nl));
      buf.erase(0, nl + 1);
      std::string role;
      int pid = 0;
      if (line >> role >> pid) pids[role] = pid;
    }
  }
  ::close(out[0]);
  ASSERT_EQ(pids.size(), 3u) << "got: " << buf;
  for (auto& [role, pid] : pids) EXPECT_TRUE(running(pid)) << role << " " << pid;

  parent.kill(SIGKILL);
  EXPECT_EQ(parent.wait(30s), -SIGKILL);

  for (auto& [role, pid] : pids) {
    EXPECT_TRUE(await_not_running(pid, 10s)) << role << " " << pid << " outlived its parent";
  }
  for (auto& [role, pid] : pids) {
    if (running(pid)) ::kill(pid, SIGKILL);  // do not leave anything behind on failure
  }
}

}  // namespace
