// mproc::Process under each start method (fork, spawn, forkserver), and the start-method API.
//
// Every target here can travel to a fresh program image (functions, lambdas without captures,
// function objects with serialize(), partial), so one parameterised suite runs under all three
// methods. Children report through exit codes and files named by the test. Every wait is bounded.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mproc/partial.hpp>
#include <mproc/process.hpp>
#include <mproc/start_method.hpp>
#include <string>
#include <thread>
#include <vector>

#include "helpers/sanitizer.hpp"
#include "helpers/watchdog.hpp"
#include "start/start.hpp"

namespace mproc_test {
namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;

constexpr auto kLong = 30s;

int add(int a, int b) { return a + b; }
void nothing() {}
int throw_runtime() { throw std::runtime_error("boom in the child"); }
int call_exit(int code) { mproc::exit(code); }
int sleep_long() {
  std::this_thread::sleep_for(60s);
  return 3;
}
int label_length(const std::string& prefix, int x) {
  return static_cast<int>((prefix + std::to_string(x)).size());
}
// 10 when the parent is `expected` (fork, spawn), 20 otherwise (a forkserver's child).
int parent_is(int expected) { return ::getppid() == expected ? 10 : 20; }
// Writes what the child knows of itself to `path`.
void describe_self(const std::string& path) {
  std::ofstream out(path);
  auto parent = mproc::parent_process();
  out << mproc::current_process().name() << "\n"
      << (parent ? parent->pid() : -1) << "\n"
      << (parent ? parent->name() : std::string("none")) << "\n"
      << mproc::current_process().daemon() << "\n";
}
int wait_for_parent_exit_then(int code) {
  auto parent = mproc::parent_process();
  if (!parent) return 99;
  return parent->is_alive() ? code : 98;
}

struct Scale {
  int k = 0;
  std::string tag;
  int operator()(int x) const { return k * x + static_cast<int>(tag.size()); }
  template <class A>
  void serialize(A& a) {
    a(k, tag);
  }
};

std::string temp_path(const char* name) {
  return ::testing::TempDir() + "/mproc_methods_" + std::to_string(::getpid()) + "_" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all;
}

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

class ProcessMethods : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::ProcessOptions opts(std::string name = {}, bool daemon = false) const {
    return mproc::ProcessOptions{
        .name = std::move(name), .daemon = daemon, .start_method = GetParam()};
  }
  int run(mproc::Process& p) {
    p.start();
    EXPECT_TRUE(p.join(kLong));
    return p.exitcode().value_or(-1000);
  }
  Watchdog dog_{std::chrono::seconds(120)};
};

TEST_P(ProcessMethods, FunctionReturnValueIsTheExitCode) {
  mproc::Process p(opts(), add, 40, 2);
  EXPECT_EQ(run(p), 42);
}

TEST_P(ProcessMethods, VoidFunctionExitsZero) {
  mproc::Process p(opts(), nothing);
  EXPECT_EQ(run(p), 0);
}

TEST_P(ProcessMethods, CaptureLessLambdaRuns) {
  mproc::Process p(
      opts(), [](int x, std::string s) { return x + static_cast<int>(s.size()); }, 5,
      std::string("abc"));
  EXPECT_EQ(run(p), 8);
}

TEST_P(ProcessMethods, FunctionObjectWithSerializeRuns) {
  mproc::Process p(opts(), Scale{3, "xy"}, 4);
  EXPECT_EQ(run(p), 14);
}

TEST_P(ProcessMethods, PartialBindsOwningData) {
  mproc::Process p(opts(), mproc::partial(label_length, std::string("item ")), 123);
  EXPECT_EQ(run(p), 8);
}

TEST_P(ProcessMethods, PartialOfALambdaRuns) {
  auto f = [](const std::vector<int>& v, int k) { return static_cast<int>(v.size()) * k; };
  mproc::Process p(opts(), mproc::partial(f, std::vector<int>{1, 2, 3}), 7);
  EXPECT_EQ(run(p), 21);
}

TEST_P(ProcessMethods, ExceptionGivesExitCodeOne) {
  mproc::Process p(opts(), throw_runtime);
  EXPECT_EQ(run(p), 1);
}

TEST_P(ProcessMethods, MprocExitSetsTheCode) {
  mproc::Process p(opts(), call_exit, 9);
  EXPECT_EQ(run(p), 9);
}

TEST_P(ProcessMethods, KillAndTerminateGiveNegativeSignals) {
  mproc::Process a(opts(), sleep_long);
  mproc::Process b(opts(), sleep_long);
  a.start();
  b.start();
  EXPECT_TRUE(a.is_alive());
  a.kill();
  b.terminate();
  ASSERT_TRUE(a.join(kLong));
  ASSERT_TRUE(b.join(kLong));
  EXPECT_EQ(a.exitcode(), -SIGKILL);
  EXPECT_EQ(b.exitcode(), -SIGTERM);
  EXPECT_FALSE(a.is_alive());
}

TEST_P(ProcessMethods, JoinTimesOutWhileRunning) {
  mproc::Process p(opts(), sleep_long);
  p.start();
  EXPECT_FALSE(p.join(50ms));
  EXPECT_FALSE(p.exitcode().has_value());
  p.kill();
  EXPECT_TRUE(p.join(kLong));
}

TEST_P(ProcessMethods, SentinelBecomesReadableAtExit) {
  mproc::Process p(opts(), add, 1, 2);
  p.start();
  pollfd fd{p.sentinel(), POLLIN, 0};
  ASSERT_EQ(::poll(&fd, 1, 30000), 1);
  EXPECT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 3);
}

TEST_P(ProcessMethods, ChildKnowsItsNameAndParent) {
  const std::string path = temp_path("self");
  mproc::Process p(opts("worker-7", true), describe_self, path);
  EXPECT_EQ(run(p), 0);
  const std::string expected = "worker-7\n" + std::to_string(::getpid()) + "\nMainProcess\n1\n";
  EXPECT_EQ(read_file(path), expected);
  std::remove(path.c_str());
}

TEST_P(ProcessMethods, ParentSentinelIsTheStarter) {
  mproc::Process p(opts(), wait_for_parent_exit_then, 5);
  EXPECT_EQ(run(p), 5);
}

TEST_P(ProcessMethods, TheForkserversChildrenAreTheServers) {
  mproc::Process p(opts(), parent_is, static_cast<int>(::getpid()));
  EXPECT_EQ(run(p), GetParam() == StartMethod::forkserver ? 20 : 10);
}

TEST_P(ProcessMethods, ManyChildrenInARow) {
  std::vector<mproc::Process> ps;
  for (int i = 0; i < 20; ++i) ps.emplace_back(opts(), add, i, 1);
  for (auto& p : ps) p.start();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(ps[i].join(kLong));
    EXPECT_EQ(ps[i].exitcode(), i + 1);
  }
}

// The forkserver binds its symbols at load through LD_BIND_NOW, which its children must not see.
int bind_now_unset() { return std::getenv("LD_BIND_NOW") == nullptr ? 0 : 1; }

TEST_P(ProcessMethods, ChildEnvironmentIsTheProgramsOwn) {
  if (std::getenv("LD_BIND_NOW") != nullptr) GTEST_SKIP() << "LD_BIND_NOW is set for the test";
  mproc::Process p(opts(), bind_now_unset);
  EXPECT_EQ(run(p), 0);
}

TEST_P(ProcessMethods, StartTwiceThrows) {
  mproc::Process p(opts(), nothing);
  p.start();
  EXPECT_THROW(p.start(), mproc::ProcessError);
  EXPECT_TRUE(p.join(kLong));
}

INSTANTIATE_TEST_SUITE_P(, ProcessMethods,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         MethodName{});

// ---- what cannot travel ---------------------------------------------------------------------

class FreshImage : public ::testing::TestWithParam<StartMethod> {};

TEST_P(FreshImage, LambdaWithCapturesIsAClearErrorNamingPartial) {
  int k = 3;
  mproc::Process p(
      {.start_method = GetParam()}, [k](int x) { return k * x; }, 2);
  try {
    p.start();
    FAIL() << "start() did not throw";
  } catch (const mproc::ValueError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("mproc::partial"), std::string::npos) << what;
    EXPECT_NE(what.find("cannot travel to a fresh program image"), std::string::npos) << what;
  }
  EXPECT_FALSE(p.pid().has_value());
  // Nothing was started: the same Process can still run with fork.
}

TEST_P(FreshImage, UnencodableArgumentIsNamed) {
  static int value = 5;
  mproc::Process p(
      {.start_method = GetParam()}, [](const int* v) { return *v; }, &value);
  try {
    p.start();
    FAIL() << "start() did not throw";
  } catch (const mproc::ValueError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("argument 1 (int*)"), std::string::npos) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(, FreshImage,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

// ---- the start-method API -------------------------------------------------------------------

TEST(StartMethodApi, NamesAndContexts) {
  EXPECT_EQ(mproc::get_all_start_methods(),
            (std::vector<std::string>{"fork", "spawn", "forkserver"}));
  EXPECT_EQ(mproc::start_method_from_name("spawn"), StartMethod::spawn);
  EXPECT_EQ(mproc::start_method_name(StartMethod::forkserver), "forkserver");
  try {
    (void)mproc::start_method_from_name("bogus");
    FAIL();
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "cannot find context for 'bogus'");
  }
  auto ctx = mproc::get_context("spawn");
  EXPECT_EQ(ctx.method(), StartMethod::spawn);
  EXPECT_EQ(ctx.get_start_method(), "spawn");
  EXPECT_FALSE(mproc::get_context().method().has_value());
}

TEST(StartMethodApi, SetTwiceNeedsForce) {
  mproc::reset_start_method();
  EXPECT_EQ(mproc::get_start_method(true), std::nullopt);
  mproc::set_start_method("spawn");
  EXPECT_EQ(mproc::get_start_method(), "spawn");
  try {
    mproc::set_start_method("fork");
    FAIL();
  } catch (const mproc::ProcessError& e) {
    EXPECT_STREQ(e.what(), "context has already been set");
  }
  mproc::set_start_method("forkserver", true);
  EXPECT_EQ(mproc::get_start_method(), "forkserver");
  EXPECT_THROW(mproc::set_start_method("nope", true), mproc::ValueError);
  EXPECT_EQ(mproc::get_start_method(), "forkserver");
}

TEST(StartMethodApi, ContextProcessUsesItsMethod) {
  Watchdog dog(60s);
  auto ctx = mproc::get_context(StartMethod::forkserver);
  mproc::Process p = ctx.process(parent_is, static_cast<int>(::getpid()));
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 20);
}

TEST(StartMethodApi, SetStartMethodReachesProcess) {
  Watchdog dog(60s);
  mproc::set_start_method("forkserver", true);
  mproc::Process p(parent_is, static_cast<int>(::getpid()));
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 20);
}

// ---- the default rule -----------------------------------------------------------------------

TEST(DefaultStartMethod, ForksWhileSingleThreaded) {
  mproc::reset_start_method();
  // ThreadSanitizer's runtime may have started its background thread.
  if (kThreadSanitized && mproc::detail::process_is_threaded()) GTEST_SKIP();
  ASSERT_FALSE(mproc::detail::process_is_threaded());
  EXPECT_EQ(mproc::get_start_method(), "fork");
  mproc::Process p(parent_is, static_cast<int>(::getpid()));
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 10);
}

TEST(DefaultStartMethod, UsesTheForkserverOnceThreadsExist) {
  mproc::reset_start_method();
  Watchdog dog(60s);  // a thread
  ASSERT_TRUE(mproc::detail::process_is_threaded());
  EXPECT_EQ(mproc::get_start_method(), "forkserver");
  mproc::Process p(parent_is, static_cast<int>(::getpid()));
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 20);
}

TEST(DefaultStartMethod, ForksWithAWarningWhenTheTargetCannotTravel) {
  mproc::reset_start_method();
  Watchdog dog(60s);
  const int me = static_cast<int>(::getpid());
  ::testing::internal::CaptureStderr();
  mproc::Process p([me] { return ::getppid() == me ? 10 : 20; });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(p.exitcode(), 10);
  EXPECT_NE(
      err.find("mproc: warning: mproc::Process::start forks a process that has other threads"),
      std::string::npos)
      << err;
  EXPECT_NE(err.find("mproc::partial"), std::string::npos) << err;
}

// ---- the forkserver's failures ---------------------------------------------------------------

TEST(Forkserver, KilledWhileServingReportsUnknownExitAndRestarts) {
  Watchdog dog(60s);
  mproc::Process p({.start_method = StartMethod::forkserver}, sleep_long);
  p.start();
  const pid_t server = mproc::detail::forkserver_pid();
  ASSERT_GT(server, 0);
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  // The child dies with its server (PR_SET_PDEATHSIG); its exit code never arrives.
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), mproc::kExitCodeUnknown);
  // The next start reaps the dead server and starts another.
  mproc::Process q({.start_method = StartMethod::forkserver}, add, 2, 3);
  q.start();
  ASSERT_TRUE(q.join(kLong));
  EXPECT_EQ(q.exitcode(), 5);
  EXPECT_NE(mproc::detail::forkserver_pid(), server);
}

TEST(Forkserver, StopEndsTheServerAndItsChildren) {
  Watchdog dog(60s);
  mproc::Process p({.start_method = StartMethod::forkserver}, sleep_long);
  p.start();
  mproc::detail::forkserver_stop();
  EXPECT_EQ(mproc::detail::forkserver_pid(), 0);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_FALSE(p.is_alive());
}

}  // namespace
}  // namespace mproc_test
