// Unit tests of mproc::Process and the process queries.
//
// Children report back through a MAP_SHARED|MAP_ANONYMOUS page (or a pipe for stderr). Every wait
// is bounded: a child that is not released within kLong gives up and exits with a distinct code,
// and the test's own joins time out after kLong.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mproc/process.hpp>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helpers/proc_state.hpp"
#include "helpers/shared_page.hpp"

namespace mproc_test {

using namespace std::chrono_literals;

constexpr auto kLong = std::chrono::seconds(30);
constexpr int kGaveUp = 77;  // exit code of a child nobody released

struct Flags {
  std::atomic<int> go{0};
  std::atomic<int> ready{0};
  std::atomic<int> value{0};
  std::atomic<int> pid{0};
  std::atomic<int> pid2{0};
  char text[256] = {};
  char text2[256] = {};
};

// Waits (bounded) until `flag` becomes nonzero; true if it did.
bool await(const std::atomic<int>& flag, std::chrono::milliseconds limit = kLong) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (flag.load() == 0) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A child body that waits for the parent's `go` and returns `code` (kGaveUp if never released).
int wait_for_go(Flags* f, int code) {
  f->ready = 1;
  return await(f->go) ? code : kGaveUp;
}

void copy_text(char (&dst)[256], const std::string& s) {
  std::snprintf(dst, sizeof dst, "%s", s.c_str());
}

// Reads everything from `fd` until EOF (bounded).
std::string read_all(int fd) {
  std::string out;
  char buf[512];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 30000) <= 0) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Waits (bounded) until the child `pid` has exited and can be reaped, without reaping it.
// (Stronger than /proc showing 'Z': a leader is a zombie before its other threads are gone.)
bool await_reapable(int pid) {
  auto end = std::chrono::steady_clock::now() + kLong;
  for (;;) {
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      return false;
    }
    if (info.si_pid == pid) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
}

bool pid_gone(int pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

int current_process_number(const std::string& name) {
  auto dash = name.rfind('-');
  return std::stoi(name.substr(dash + 1));
}

// A named (non-anonymous) namespace, so the printed type name is predictable.
struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Starts `p`, whose target writes its stderr into the pipe (`read_fd`, `write_fd`); returns
// {exitcode, everything the child wrote}.
std::pair<int, std::string> run_capturing_stderr(mproc::Process& p, int write_fd, int read_fd) {
  p.start();
  ::close(write_fd);
  std::string err = read_all(read_fd);
  ::close(read_fd);
  EXPECT_TRUE(p.join(kLong));
  return {p.exitcode().value_or(-1000), err};
}

// ---------------------------------------------------------------------------------------------
// Exit codes

TEST(ProcessExitCode, ReturnZeroGivesZero) {
  mproc::Process p([] { return 0; });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(ProcessExitCode, ReturnSevenGivesSeven) {
  mproc::Process p([] { return 7; });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 7);
}

// With SIGCHLD ignored the kernel reaps the child itself and its status is gone: join returns,
// exitcode() says so, and nothing stays registered (the pidfd is closed with the last handle).
TEST(ProcessExitCode, IgnoredSigchldGivesUnknownAndLeavesNothingBehind) {
  struct sigaction ign {
  }, old{};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ASSERT_EQ(sigaction(SIGCHLD, &ign, &old), 0);
  // Many short children: some end (and are reaped by the kernel) before start() has opened
  // their pidfd, which must not be an error either.
  for (int i = 0; i < 50; ++i) {
    mproc::Process p([] { return 3; });
    p.start();
    ASSERT_TRUE(p.join(kLong));
    EXPECT_EQ(p.exitcode(), mproc::kExitCodeUnknown);
    EXPECT_FALSE(p.is_alive());
  }
  EXPECT_TRUE(mproc::active_children().empty());
  sigaction(SIGCHLD, &old, nullptr);
}

TEST(ProcessExitCode, VoidTargetGivesZero) {
  SharedPage<Flags> f;
  mproc::Process p([&] { f->value = 11; });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(f->value.load(), 11);
}

TEST(ProcessExitCode, OnlyTheLowEightBitsOfTheReturnValueSurvive) {
  mproc::Process p([] { return 300; });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 300 & 0xff);
}

// A child's report of an uncaught exception, as Python prints it: `head`, the traceback (where
// the library records them: a build with MPROC_TRACEBACKS=OFF has none), then `last` (TYPE: WHAT).
void expect_child_report(const std::string& err, const std::string& head, const std::string& last) {
  ASSERT_GE(err.size(), head.size() + last.size()) << err;
  EXPECT_EQ(err.substr(0, head.size()), head) << err;
  EXPECT_EQ(err.substr(err.size() - last.size()), last) << err;
  const std::string middle = err.substr(head.size(), err.size() - head.size() - last.size());
  if (!middle.empty()) {
    const std::string traceback = "Traceback (most recent call last):\n";
    EXPECT_EQ(middle.substr(0, traceback.size()), traceback) << err;
  }
}

TEST(ProcessExitCode, UncaughtExceptionGivesOneAndPrintsTypeAndMessage) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  mproc::Process p([w = fds[1], r = fds[0]] {
    ::close(r);
    dup2(w, STDERR_FILENO);
    throw ParseError("bad input on line 3");
  });
  auto [code, err] = run_capturing_stderr(p, fds[1], fds[0]);
  EXPECT_EQ(code, 1);
  expect_child_report(err, "Process " + p.name() + ":\n",
                      "mproc_test::ParseError: bad input on line 3\n");
}

TEST(ProcessExitCode, NonStdExceptionPrintsItsTypeAndGivesOne) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  mproc::Process p({.name = "thrower"}, [w = fds[1], r = fds[0]] {
    ::close(r);
    dup2(w, STDERR_FILENO);
    throw 42;
  });
  auto [code, err] = run_capturing_stderr(p, fds[1], fds[0]);
  EXPECT_EQ(code, 1);
  expect_child_report(err, "Process thrower:\n", "int\n");
}

TEST(ProcessOutput, BufferedStdoutOfTheChildIsFlushedAtExit) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  mproc::Process p([w = fds[1], r = fds[0]] {
    ::close(r);
    dup2(w, STDOUT_FILENO);  // a pipe: stdout is fully buffered, nothing is written until a flush
    std::printf("c-stdio ");
    std::ios::sync_with_stdio(false);  // std::cout now has its own buffer
    std::cout << "c++-stream";
    return 0;
  });
  auto [code, out] = run_capturing_stderr(p, fds[1], fds[0]);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "c-stdio c++-stream");
}

TEST(ProcessOutput, ParentOutputBufferedBeforeStartIsNotDuplicated) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  mproc::Process printer([w = fds[1], r = fds[0]] {
    ::close(r);
    int saved = dup(STDOUT_FILENO);
    dup2(w, STDOUT_FILENO);
    std::printf("from-parent ");  // buffered in this (grand)parent before it starts a child
    mproc::Process child([] { std::printf("from-child"); });
    child.start();
    child.join();
    std::fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    return child.exitcode() == 0 ? 0 : 1;
  });
  auto [code, out] = run_capturing_stderr(printer, fds[1], fds[0]);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "from-parent from-child");
}

struct CountOnDestroy {
  std::atomic<int>* counter;
  ~CountOnDestroy() { ++*counter; }
};

void nested_exit(Flags* f) {
  CountOnDestroy guard{&f->value};
  mproc::exit(3);
  f->text[0] = 'X';  // never reached
}

TEST(ProcessExitCode, ExitFromNestedFunctionGivesItsCodeAndRunsDestructors) {
  SharedPage<Flags> f;
  mproc::Process p([&] {
    CountOnDestroy outer{&f->value};
    nested_exit(&*f);
    f->text[1] = 'Y';  // never reached
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 3);
  EXPECT_EQ(f->value.load(), 2);  // both RAII objects were destroyed
  EXPECT_EQ(f->text[0], '\0');
  EXPECT_EQ(f->text[1], '\0');
}

TEST(ProcessExitCode, SystemExitIsNotCaughtAsStdException) {
  mproc::Process p([] {
    try {
      mproc::exit(4);
    } catch (const std::exception&) {
      return 99;
    }
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 4);
}

TEST(ProcessExitCode, ThrownSystemExitGivesItsCode) {
  mproc::Process p([] { throw mproc::SystemExit(12); });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 12);
}

TEST(ProcessExitCode, ExitFromAnotherThreadOfTheChildEndsTheChild) {
  mproc::Process p([] {
    std::thread t([] { mproc::exit(6); });
    t.join();  // never returns: the process ends first
    std::this_thread::sleep_for(kLong);
    return kGaveUp;
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 6);
}

TEST(ProcessExitCodeDeathTest, ExitOutsideAChildCallsStdExit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::fputs("leaving", stderr);
        mproc::exit(4);
      },
      testing::ExitedWithCode(4), "leaving");
}

// ---------------------------------------------------------------------------------------------
// Signals

TEST(ProcessSignal, KillGivesMinusNine) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 0);
  p.start();
  ASSERT_TRUE(await(f->ready));
  p.kill();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

TEST(ProcessSignal, TerminateGivesMinusFifteen) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 0);
  p.start();
  ASSERT_TRUE(await(f->ready));
  p.terminate();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), -SIGTERM);
}

TEST(ProcessSignal, InterruptGivesMinusTwo) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 0);
  p.start();
  ASSERT_TRUE(await(f->ready));
  p.interrupt();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), -SIGINT);
}

TEST(ProcessSignal, SignallingAnExitedProcessDoesNothing) {
  mproc::Process p([] { return 8; });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_NO_THROW(p.terminate());
  EXPECT_NO_THROW(p.kill());
  EXPECT_NO_THROW(p.interrupt());
  EXPECT_EQ(p.exitcode(), 8);
}

// ---------------------------------------------------------------------------------------------
// Join, liveness, pid, sentinel

TEST(ProcessJoin, TimedJoinIsFalseWhileRunningThenTrue) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 5);
  p.start();
  EXPECT_FALSE(p.join(20ms));
  EXPECT_EQ(p.exitcode(), std::nullopt);
  f->go = 1;
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 5);
  EXPECT_TRUE(p.join(0s));  // stays true
}

TEST(ProcessJoin, NegativeTimeoutActsAsZero) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 5);
  p.start();
  EXPECT_FALSE(p.join(-5s));
  EXPECT_TRUE(p.is_alive());
  f->go = 1;
  // Wait for the exit without reaping, then a negative timeout still reports (and reaps) it.
  pollfd pfd{p.sentinel(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 30000), 1);
  EXPECT_TRUE(p.join(-5s));
  EXPECT_EQ(p.exitcode(), 5);
}

TEST(ProcessJoin, JoinUntilTakesDeadlinesOfAnyClock) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 6);
  p.start();
  EXPECT_FALSE(p.join_until(std::chrono::steady_clock::now() + 10ms));
  EXPECT_FALSE(p.join_until(std::chrono::system_clock::now() - 1s));  // past: only checks
  EXPECT_FALSE(p.join_until(std::chrono::system_clock::now() + 10ms));
  f->go = 1;
  ASSERT_TRUE(p.join_until(std::chrono::steady_clock::now() + kLong));
  EXPECT_EQ(p.exitcode(), 6);
}

TEST(ProcessJoin, IsAliveFollowsTheChild) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 0);
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  p.start();
  EXPECT_TRUE(p.is_alive());
  f->go = 1;
  ASSERT_TRUE(p.join(kLong));
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(ProcessJoin, ThreadsJoiningTheSameProcessAllSeeItExit) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 9);
  p.start();
  std::atomic<int> joined{0};
  std::atomic<int> seen_code{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      if (p.join(kLong)) ++joined;
      auto c = p.exitcode();
      if (c) seen_code += *c;
    });
  }
  std::this_thread::sleep_for(10ms);
  f->go = 1;
  for (auto& t : threads) t.join();
  EXPECT_EQ(joined.load(), 4);
  EXPECT_EQ(seen_code.load(), 4 * 9);
  EXPECT_EQ(p.exitcode(), 9);
  EXPECT_TRUE(mproc::active_children().empty());
}

TEST(ProcessJoin, PidAndSentinel) {
  SharedPage<Flags> f;
  mproc::Process p([&] {
    f->pid = getpid();
    return wait_for_go(&*f, 0);
  });
  EXPECT_EQ(p.pid(), std::nullopt);
  try {
    (void)p.sentinel();
    ADD_FAILURE() << "sentinel() before start() did not throw";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "process not started");
  }
  p.start();
  ASSERT_TRUE(p.pid().has_value());
  ASSERT_TRUE(await(f->ready));
  EXPECT_EQ(*p.pid(), f->pid.load());
  EXPECT_GT(*p.pid(), 0);
  pollfd pfd{p.sentinel(), POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 0), 0);  // running: not readable
  f->go = 1;
  pfd.revents = 0;
  ASSERT_EQ(poll(&pfd, 1, 30000), 1);
  EXPECT_TRUE(pfd.revents & POLLIN);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(*p.pid(), f->pid.load());  // still reported after the exit
}

// ---------------------------------------------------------------------------------------------
// Targets and arguments

int add(int a, int b) { return a + b; }

struct Multiply {
  int factor;
  int operator()(int x) const { return factor * x; }
};

TEST(ProcessTarget, ArgumentsAreCopiedAtConstruction) {
  SharedPage<Flags> f;
  std::string s = "abc";
  int n = 4;
  std::vector<int> v{1, 2, 3};
  mproc::Process p(
      [&f](const std::string& s2, int n2, std::vector<int> v2) {
        copy_text(f->text, s2 + std::to_string(n2) + std::to_string(v2.size()));
      },
      s, n, v);
  s = "changed";
  n = 100;
  v.clear();
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_STREQ(f->text, "abc43");
}

TEST(ProcessTarget, FunctionPointerFunctorAndMoveOnlyArgument) {
  mproc::Process a(&add, 2, 3);
  mproc::Process b(Multiply{6}, 7);
  mproc::Process c([](std::unique_ptr<int> q) { return *q + 1; }, std::make_unique<int>(41));
  a.start();
  b.start();
  c.start();
  ASSERT_TRUE(a.join(kLong));
  ASSERT_TRUE(b.join(kLong));
  ASSERT_TRUE(c.join(kLong));
  EXPECT_EQ(a.exitcode(), 5);
  EXPECT_EQ(b.exitcode(), 42);
  EXPECT_EQ(c.exitcode(), 42);
}

TEST(ProcessTarget, ParentDropsTheTargetAfterStart) {
  auto keep = std::make_shared<int>(1);
  mproc::Process p([keep] { return *keep; });
  EXPECT_EQ(keep.use_count(), 2);
  p.start();
  EXPECT_EQ(keep.use_count(), 1);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 1);
}

// ---------------------------------------------------------------------------------------------
// Names, daemon flag, current and parent process

TEST(ProcessName, DefaultNamesCountUp) {
  mproc::Process a([] {});
  mproc::Process b([] {});
  ASSERT_EQ(a.name().rfind("Process-", 0), 0u) << a.name();
  const int n = current_process_number(a.name());
  EXPECT_GE(n, 1);
  EXPECT_EQ(b.name(), "Process-" + std::to_string(n + 1));
  EXPECT_FALSE(a.daemon());
}

TEST(ProcessName, OptionsAndSetters) {
  mproc::Process p({.name = "worker", .daemon = true}, [] {});
  EXPECT_EQ(p.name(), "worker");
  EXPECT_TRUE(p.daemon());
  p.set_name("renamed");
  p.set_daemon(false);
  EXPECT_EQ(p.name(), "renamed");
  EXPECT_FALSE(p.daemon());
  p.start();
  try {
    p.set_daemon(true);
    ADD_FAILURE() << "set_daemon after start did not throw";
  } catch (const mproc::ProcessError& e) {
    EXPECT_STREQ(e.what(), "process has already started");
  }
  EXPECT_NO_THROW(p.set_name("later"));
  EXPECT_EQ(p.name(), "later");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(ProcessName, CurrentProcessInTheMainProcess) {
  auto me = mproc::current_process();
  EXPECT_EQ(me.name(), "MainProcess");
  EXPECT_EQ(me.pid(), getpid());
  EXPECT_FALSE(me.daemon());
  EXPECT_FALSE(mproc::parent_process().has_value());
}

TEST(ProcessName, CurrentAndParentProcessInAChild) {
  SharedPage<Flags> f;
  mproc::Process p({.name = "kid", .daemon = true}, [&] {
    auto me = mproc::current_process();
    copy_text(f->text, me.name());
    f->pid = me.pid();
    f->value = me.daemon() ? 1 : 2;
    auto parent = mproc::parent_process();
    if (!parent) return 50;
    copy_text(f->text2, parent->name());
    f->pid2 = parent->pid();
    pollfd pfd{parent->sentinel(), POLLIN, 0};
    if (poll(&pfd, 1, 0) != 0) return 51;  // the parent is alive: not readable
    if (!parent->is_alive()) return 52;    // likewise
    if (parent->join(1ms)) return 53;      // does not exit meanwhile
    return 0;
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_STREQ(f->text, "kid");
  EXPECT_EQ(f->pid.load(), *p.pid());
  EXPECT_EQ(f->value.load(), 1);
  EXPECT_STREQ(f->text2, "MainProcess");
  EXPECT_EQ(f->pid2.load(), getpid());
}

TEST(ProcessName, GrandchildIsNamedAfterItsParentAndSeesIt) {
  SharedPage<Flags> f;
  mproc::Process p([&] {
    mproc::Process grandchild([&] {
      copy_text(f->text, mproc::current_process().name());
      auto parent = mproc::parent_process();
      copy_text(f->text2, parent ? parent->name() : std::string("none"));
      f->pid2 = parent ? parent->pid() : -1;
    });
    grandchild.start();
    if (!grandchild.join(kLong)) return 60;
    return *grandchild.exitcode();
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(std::string(f->text), p.name() + ":1");
  EXPECT_EQ(std::string(f->text2), p.name());
  EXPECT_EQ(f->pid2.load(), *p.pid());
}

// ---------------------------------------------------------------------------------------------
// Children: active_children, reaping, what a child does with its own children

TEST(ProcessChildren, ActiveChildrenListsTheRunningChildren) {
  ASSERT_TRUE(mproc::active_children().empty());
  SharedPage<Flags> f;
  mproc::Process a(wait_for_go, &*f, 1);
  mproc::Process b(wait_for_go, &*f, 2);
  mproc::Process done([] {});
  a.start();
  b.start();
  done.start();
  ASSERT_TRUE(done.join(kLong));
  auto kids = mproc::active_children();
  ASSERT_EQ(kids.size(), 2u);
  EXPECT_EQ(kids[0].pid(), a.pid());
  EXPECT_EQ(kids[1].pid(), b.pid());
  EXPECT_EQ(kids[0].name(), a.name());
  f->go = 1;
  // A returned handle shares the child: joining it reaps it for the original handle too.
  ASSERT_TRUE(kids[0].join(kLong));
  EXPECT_EQ(a.exitcode(), 1);
  ASSERT_TRUE(b.join(kLong));
  EXPECT_EQ(kids[1].exitcode(), 2);
  EXPECT_TRUE(mproc::active_children().empty());
}

TEST(ProcessChildren, DestroyedHandleIsReapedByActiveChildren) {
  SharedPage<Flags> f;
  int pid = 0;
  std::string name;
  {
    mproc::Process p(wait_for_go, &*f, 0);
    p.start();
    pid = *p.pid();
    name = p.name();
  }  // never kills, never blocks
  auto kids = mproc::active_children();
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_EQ(kids[0].name(), name);
  kids.clear();
  EXPECT_NE(proc_state(pid), 0);  // still there
  f->go = 1;
  ASSERT_TRUE(await_reapable(pid));
  EXPECT_TRUE(mproc::active_children().empty());
  EXPECT_TRUE(pid_gone(pid));
}

TEST(ProcessChildren, DestroyedHandleIsReapedByTheNextStart) {
  SharedPage<Flags> f;
  int pid = 0;
  {
    mproc::Process p(wait_for_go, &*f, 0);
    p.start();
    pid = *p.pid();
  }
  f->go = 1;
  ASSERT_TRUE(await_reapable(pid));
  mproc::Process next([] {});
  next.start();
  EXPECT_TRUE(pid_gone(pid));
  ASSERT_TRUE(next.join(kLong));
}

TEST(ProcessChildren, DestroyingAnExitedProcessReapsIt) {
  int pid = 0;
  {
    mproc::Process p([] {});
    p.start();
    pid = *p.pid();
    ASSERT_TRUE(await_reapable(pid));
  }
  EXPECT_TRUE(pid_gone(pid));
  EXPECT_TRUE(mproc::active_children().empty());
}

TEST(ProcessChildren, ChildJoinsItsChildrenAndTerminatesItsDaemonsWhenItEnds) {
  SharedPage<Flags> f;
  mproc::Process p([&] {
    mproc::Process worker([&] {
      std::this_thread::sleep_for(50ms);
      f->value = 1;  // only if the child waited for us
    });
    mproc::Process daemon({.daemon = true}, [&] {
      f->pid2 = getpid();
      std::this_thread::sleep_for(kLong);
      return kGaveUp;
    });
    worker.start();
    daemon.start();
    f->pid = *worker.pid();
    return await(f->pid2) ? 0 : 70;
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(f->value.load(), 1);
  ASSERT_GT(f->pid2.load(), 0);
  EXPECT_EQ(proc_state(f->pid2.load()), 0);  // the daemon was terminated and reaped
  EXPECT_EQ(proc_state(f->pid.load()), 0);
}

// ---------------------------------------------------------------------------------------------
// CPU counts

TEST(ProcessCpu, CountsAreConsistent) {
  const int all = mproc::cpu_count();
  const int mine = mproc::process_cpu_count();
  EXPECT_GE(mine, 1);
  EXPECT_GE(all, mine);
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(mine, CPU_COUNT(&set));
  EXPECT_EQ(all, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
}

// ---------------------------------------------------------------------------------------------
// Misuse

template <class E, class F>
void expect_throw_with(F&& f, const std::string& message) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected: " << message;
  } catch (const E& e) {
    EXPECT_EQ(std::string(e.what()), message);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(ProcessMisuse, StartTwiceThrowsProcessError) {
  mproc::Process p([] {});
  p.start();
  expect_throw_with<mproc::ProcessError>([&] { p.start(); }, "cannot start a process twice");
  ASSERT_TRUE(p.join(kLong));
  expect_throw_with<mproc::ProcessError>([&] { p.start(); }, "cannot start a process twice");
}

TEST(ProcessMisuse, JoinBeforeStartThrowsProcessError) {
  mproc::Process p([] {});
  const std::string msg = "can only join a started process";
  expect_throw_with<mproc::ProcessError>([&] { p.join(); }, msg);
  expect_throw_with<mproc::ProcessError>([&] { (void)p.join(1s); }, msg);
  expect_throw_with<mproc::ProcessError>(
      [&] { (void)p.join_until(std::chrono::steady_clock::now()); }, msg);
}

TEST(ProcessMisuse, SignalsBeforeStartThrowProcessError) {
  mproc::Process p([] {});
  expect_throw_with<mproc::ProcessError>([&] { p.terminate(); },
                                         "can only terminate a started process");
  expect_throw_with<mproc::ProcessError>([&] { p.kill(); }, "can only kill a started process");
  expect_throw_with<mproc::ProcessError>([&] { p.interrupt(); },
                                         "can only interrupt a started process");
}

TEST(ProcessMisuse, CloseWhileRunningThrowsValueError) {
  SharedPage<Flags> f;
  mproc::Process p(wait_for_go, &*f, 0);
  p.start();
  expect_throw_with<mproc::ValueError>(
      [&] { p.close(); },
      "Cannot close a process while it is still running. You should first call join() or "
      "terminate().");
  EXPECT_TRUE(p.is_alive());  // still usable
  f->go = 1;
  ASSERT_TRUE(p.join(kLong));
  EXPECT_NO_THROW(p.close());
}

TEST(ProcessMisuse, EveryMethodThrowsValueErrorAfterClose) {
  mproc::Process started([] { return 3; });
  started.start();
  ASSERT_TRUE(started.join(kLong));
  const int fd = started.sentinel();
  started.close();
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);  // the pidfd was released
  mproc::Process unstarted([] {});
  unstarted.close();
  for (mproc::Process* p : {&started, &unstarted}) {
    const std::string msg = "process object is closed";
    expect_throw_with<mproc::ValueError>([&] { p->start(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { p->join(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { (void)p->join(1ms); }, msg);
    expect_throw_with<mproc::ValueError>(
        [&] { (void)p->join_until(std::chrono::system_clock::now()); }, msg);
    expect_throw_with<mproc::ValueError>([&] { (void)p->is_alive(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { (void)p->exitcode(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { (void)p->pid(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { (void)p->sentinel(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { p->terminate(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { p->kill(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { p->interrupt(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { (void)p->name(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { p->set_name("x"); }, msg);
    expect_throw_with<mproc::ValueError>([&] { (void)p->daemon(); }, msg);
    expect_throw_with<mproc::ValueError>([&] { p->set_daemon(true); }, msg);
    EXPECT_NO_THROW(p->close());  // closing again does nothing
  }
}

TEST(ProcessMisuse, MovedFromHandleThrowsValueError) {
  mproc::Process a([] { return 2; });
  const std::string name = a.name();
  mproc::Process b(std::move(a));
  expect_throw_with<mproc::ValueError>([&] { (void)a.name(); },  // NOLINT(bugprone-use-after-move)
                                       "process object was moved from");
  EXPECT_EQ(b.name(), name);
  b.start();
  mproc::Process c([] {});
  c = std::move(b);
  ASSERT_TRUE(c.join(kLong));
  EXPECT_EQ(c.exitcode(), 2);
}

TEST(ProcessMisuse, DaemonCannotStartChildren) {
  SharedPage<Flags> f;
  mproc::Process p({.daemon = true}, [&] {
    mproc::Process grandchild([] {});
    try {
      grandchild.start();
    } catch (const mproc::ProcessError& e) {
      copy_text(f->text, e.what());
      return 0;
    }
    return 1;
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_STREQ(f->text, "daemonic processes are not allowed to have children");
}

TEST(ProcessMisuse, AChildCannotJoinOrStartItsParentsProcessObjects) {
  SharedPage<Flags> f;
  mproc::Process sibling(wait_for_go, &*f, 0);
  mproc::Process unstarted([] {});
  sibling.start();
  mproc::Process p([&] {
    std::string out;
    try {
      sibling.join();
    } catch (const mproc::ProcessError& e) {
      out += e.what();
    }
    out += "|";
    try {
      (void)sibling.is_alive();
    } catch (const mproc::ProcessError& e) {
      out += e.what();
    }
    out += "|";
    try {
      unstarted.start();
    } catch (const mproc::ProcessError& e) {
      out += e.what();
    }
    copy_text(f->text, out);
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_STREQ(f->text,
               "can only join a child process|can only test a child process|"
               "can only start a process object created by current process");
  EXPECT_TRUE(sibling.is_alive());
  f->go = 1;
  ASSERT_TRUE(sibling.join(kLong));
  EXPECT_EQ(sibling.exitcode(), 0);
}

// ---------------------------------------------------------------------------------------------
// The parent's exit handlers

std::atomic<int>* g_atexit_runs = nullptr;  // in shared memory once set

TEST(ProcessExit, ParentAtexitHandlersDoNotRunInTheChild) {
  static SharedPage<std::atomic<int>> runs;  // outlives the test: the handler runs at exit
  g_atexit_runs = &*runs;
  std::atexit([] {
    if (g_atexit_runs && mproc::current_process().name() != "MainProcess") ++*g_atexit_runs;
  });
  mproc::Process returns([] { return 0; });
  mproc::Process exits([] { mproc::exit(5); });
  mproc::Process throws_([] {
    std::fclose(stderr);  // keep the test output clean
    throw std::runtime_error("x");
  });
  returns.start();
  exits.start();
  throws_.start();
  ASSERT_TRUE(returns.join(kLong));
  ASSERT_TRUE(exits.join(kLong));
  ASSERT_TRUE(throws_.join(kLong));
  EXPECT_EQ(returns.exitcode(), 0);
  EXPECT_EQ(exits.exitcode(), 5);
  EXPECT_EQ(throws_.exitcode(), 1);
  EXPECT_EQ(runs->load(), 0);
}

}  // namespace mproc_test
