// helpers/leak_check_test.cpp — the leak check finds each kind of leak, names it, and accepts what
// is not one. Calls take_snapshot/compare directly (each test cleans up after itself, so the
// listener around it stays quiet).
#include "helpers/leak_check.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mproc/process.hpp>
#include <string>
#include <thread>

namespace {

using mproc_test::leak::compare;
using mproc_test::leak::Leaks;
using mproc_test::leak::take_snapshot;
using mproc_test::leak::wait_for_no_leaks;
using namespace std::chrono_literals;

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

TEST(LeakCheck, NothingNewIsNoLeak) {
  auto before = take_snapshot();
  EXPECT_TRUE(compare(before, take_snapshot()).empty());
}

TEST(LeakCheck, NamesANewFdWithItsTarget) {
  auto before = take_snapshot();
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  Leaks l = compare(before, take_snapshot());
  ::close(fd);
  ASSERT_EQ(l.fds.size(), 1u) << joined(l.fds);
  EXPECT_EQ(l.fds[0], std::to_string(fd) + " -> /dev/null");
  EXPECT_NE(l.describe().find("fd " + std::to_string(fd) + " -> /dev/null"), std::string::npos);
}

TEST(LeakCheck, AnFdReopenedOnAnotherTargetIsNew) {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto before = take_snapshot();
  int other = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(other, 0);
  ASSERT_EQ(::dup3(other, fd, O_CLOEXEC), fd);
  ::close(other);
  Leaks l = compare(before, take_snapshot());
  ::close(fd);
  ASSERT_EQ(l.fds.size(), 1u) << joined(l.fds);
  EXPECT_EQ(l.fds[0], std::to_string(fd) + " -> /dev/zero");
}

TEST(LeakCheck, APidfdOfAnotherProcessIsALeak) {
  auto before = take_snapshot();
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, ::getppid(), 0));
  ASSERT_GE(fd, 0);
  Leaks l = compare(before, take_snapshot());
  ::close(fd);
  ASSERT_EQ(l.fds.size(), 1u) << joined(l.fds);
  EXPECT_EQ(l.fds[0], std::to_string(fd) + " -> anon_inode:[pidfd] (of pid " +
                          std::to_string(::getppid()) + ")");
}

// Process::start() opens mproc's process-lifetime pidfd of the calling process; it is excluded.
TEST(LeakCheck, TheLibrarysPidfdOfItselfIsNotALeak) {
  auto before = take_snapshot();
  {
    mproc::Process p([] {});
    p.start();
    ASSERT_TRUE(p.join(30s));
  }
  EXPECT_TRUE(wait_for_no_leaks(before, 5s).empty()) << wait_for_no_leaks(before, 0s).describe();
}

TEST(LeakCheck, NamesARunningChildAndThenItsZombie) {
  auto before = take_snapshot();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(pid, 0);
  Leaks l = compare(before, take_snapshot());
  ASSERT_EQ(l.processes.size(), 1u) << l.describe();
  EXPECT_EQ(l.processes[0].rfind("pid " + std::to_string(pid) + " (state ", 0), 0u)
      << l.processes[0];
  EXPECT_NE(l.processes[0].find("leak_check_test"), std::string::npos) << l.processes[0];
  ASSERT_EQ(l.pids.size(), 1u);
  EXPECT_EQ(l.pids[0], pid);
  EXPECT_TRUE(l.zombies.empty());

  ::kill(pid, SIGKILL);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);  // a zombie
  l = compare(before, take_snapshot());
  EXPECT_TRUE(l.processes.empty()) << l.describe();
  ASSERT_EQ(l.zombies.size(), 1u) << l.describe();
  EXPECT_EQ(l.zombies[0].rfind("pid " + std::to_string(pid) + " (state Z", 0), 0u) << l.zombies[0];

  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  EXPECT_TRUE(compare(before, take_snapshot()).empty());
}

// A grandchild whose parent died is reparented away from the test process; it keeps the test's
// process group, where the check still finds it (under ctest, which runs the test without a
// terminal, the test process leads its own group).
TEST(LeakCheck, FindsAnOrphanedGrandchildInTheProcessGroup) {
  if (::getpgrp() != ::getpid()) GTEST_SKIP() << "the test process does not lead its group";
  auto before = take_snapshot();
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  pid_t child = ::fork();
  if (child == 0) {
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::pause();
      ::_exit(0);
    }
    (void)!::write(p[1], &grandchild, sizeof grandchild);
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  ::close(p[1]);
  pid_t grandchild = 0;
  ASSERT_EQ(::read(p[0], &grandchild, sizeof grandchild), static_cast<ssize_t>(sizeof grandchild));
  ::close(p[0]);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  Leaks l = compare(before, take_snapshot());
  ::kill(grandchild, SIGKILL);
  ASSERT_EQ(l.processes.size(), 1u) << l.describe();
  EXPECT_EQ(l.processes[0].rfind("pid " + std::to_string(grandchild) + " (", 0), 0u)
      << l.processes[0];
  // Once dead it is init's zombie, not the test's.
  EXPECT_TRUE(wait_for_no_leaks(before, 5s).empty()) << wait_for_no_leaks(before, 0s).describe();
}

TEST(LeakCheck, NamesANewDevShmEntryAndIgnoresItOnceRemoved) {
  const std::string name = "mproc_test_" + std::to_string(::getpid()) + "_leak_check";
  auto before = take_snapshot();
  int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  Leaks l = compare(before, take_snapshot());
  ::shm_unlink(("/" + name).c_str());
  ASSERT_EQ(l.shm.size(), 1u) << l.describe();
  EXPECT_EQ(l.shm[0], "/dev/shm/" + name);
  EXPECT_TRUE(compare(before, take_snapshot()).empty());
}

// The settle time lets a descendant that is on its way out finish dying.
TEST(LeakCheck, WaitsForADescendantThatIsExiting) {
  auto before = take_snapshot();
  pid_t pid = ::fork();
  if (pid == 0) {
    std::this_thread::sleep_for(200ms);
    ::_exit(0);
  }
  ASSERT_GT(pid, 0);
  std::thread reaper([pid] { ::waitpid(pid, nullptr, 0); });
  Leaks l = wait_for_no_leaks(before, 10s);
  reaper.join();
  EXPECT_TRUE(l.empty()) << l.describe();
}

}  // namespace
