// Every descriptor mproc opens is close-on-exec: a program exec'd by a process that holds every
// kind of mproc object (and by an mproc child) starts with exactly the descriptors it would have
// started with before any of them existed. The exec'd program is tests/helpers/list_fds_main.cpp,
// which lists its descriptors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mproc/mproc.hpp>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string helper(const std::string& name) {
  const char* dir = std::getenv("MPROC_TEST_HELPERS");
  fs::path base = dir && *dir ? fs::path(dir) : fs::read_symlink("/proc/self/exe").parent_path();
  return (base / name).string();
}

// fork + exec of the listing helper, its standard output through a pipe; "" with a reason on any
// failure (bounded: 30 s for the output, then the child is killed).
std::string exec_listing() {
  const std::string exe = helper("list_fds_main");
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return "pipe2 failed";
  const pid_t pid = fork();
  if (pid == 0) {
    if (dup2(p[1], 1) < 0) _exit(126);
    execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd pfd{p[0], POLLIN, 0};
    if (poll(&pfd, 1, 30000) <= 0) {
      kill(pid, SIGKILL);
      out += "(timed out)";
      break;
    }
    const ssize_t n = read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    out += "(the listing helper failed: status " + std::to_string(status) + ")";
  return out;
}

// The descriptor numbers of a listing ("3 4 10"): what a program starts with. (The targets are
// in the listing for the failure message; fd 1 is the listing's own pipe, a new one each time.)
std::string numbers(const std::string& listing) {
  std::string out;
  std::size_t at = 0;
  while (at < listing.size()) {
    const std::size_t end = listing.find('\n', at);
    const std::string line = listing.substr(at, end - at);
    out += line.substr(0, line.find(' ')) + " ";
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return out;
}

int square(int x) { return x * x; }

TEST(CloseOnExec, AProgramExecdBesideEveryKindOfObjectInheritsNoneOfTheirDescriptors) {
  const std::string before = exec_listing();
  ASSERT_NE(before.find("0 -> "), std::string::npos) << before;

  mproc::Queue<int> q;
  q.put(1);
  (void)q.get();
  mproc::SimpleQueue<std::string> sq;
  mproc::JoinableQueue<int> jq;
  mproc::Lock lock;
  mproc::RLock rlock;
  mproc::Semaphore sem(2);
  mproc::BoundedSemaphore bsem(1);
  mproc::Condition cond;
  mproc::Event event;
  mproc::Barrier barrier(2);
  mproc::Value<int> value(7);
  mproc::Array<double> array(16);
  mproc::SharedMemory named = mproc::SharedMemory::create(4096);
  mproc::SharedMemory attached = mproc::SharedMemory::attach(named.name());
  mproc::SharedMemory anonymous = mproc::SharedMemory::anonymous(4096);
  auto [a, b] = mproc::Pipe();
  a.send(std::string("x"));
  ASSERT_EQ(b.recv<std::string>(), "x");
  mproc::Pool pool(2);
  ASSERT_EQ(pool.apply(square, 6), 36);
  mproc::Process sleeper([&] { (void)event.wait(30s); });
  sleeper.start();

  const std::string after = exec_listing();
  EXPECT_EQ(numbers(after), numbers(before)) << "before:\n" << before << "after:\n" << after;

  event.set();
  ASSERT_TRUE(sleeper.join(30s));
  EXPECT_EQ(sleeper.exitcode(), 0);
}

TEST(CloseOnExec, AProgramExecdByAnMprocChildInheritsNothingOfMprocs) {
  const std::string before = exec_listing();
  mproc::Queue<std::string> out;
  mproc::Lock lock;
  mproc::Process child([&out, &lock] {
    std::scoped_lock g(lock);
    out.put(exec_listing(), 30s);
  });
  child.start();
  const std::string in_child = out.get(30s);
  EXPECT_EQ(numbers(in_child), numbers(before)) << "before:\n"
                                                << before << "in the child:\n"
                                                << in_child;
  ASSERT_TRUE(child.join(30s));
  EXPECT_EQ(child.exitcode(), 0);
}

}  // namespace
