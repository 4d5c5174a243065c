// Hostile tests of the start methods spawn and forkserver (mproc/start_method.hpp): children killed
// during their bootstrap, the forkserver killed under a Pool, a program without mproc::init, the
// descriptors a fresh child holds, and a shared library replaced on disk before a fresh child
// loads it. Every failure must be a clear, bounded error that leaves nothing behind (the leak
// check of every test binary sees zombies, descendants and descriptors). Every wait is bounded.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mproc/detail/travel.hpp>
#include <mproc/errors.hpp>
#include <mproc/partial.hpp>
#include <mproc/pipe.hpp>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/start_method.hpp>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "helpers/watchdog.hpp"
#include "start/start.hpp"

namespace mproc_test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using mproc::StartMethod;

constexpr auto kLong = 30s;
constexpr const char* kDieEnv = "MPROC_TEST_DIE_IN_BOOT";

// ---- a test-only hook: a spawned child killed before it acknowledges its target -----------------
//
// When kDieEnv is set (the tests set it around one start; spawned children inherit the
// environment) and this program was started with `--mproc-spawn` (a spawned child, or a Pool's
// spawned zygote), it kills itself with SIGKILL in a static initialiser: before main, so before
// mproc::init reads its boot channel.
bool spawned_by_mproc() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t end0 = all.find('\0');
  if (end0 == std::string::npos) return false;
  const std::string flag = "--mproc-spawn";
  return all.compare(end0 + 1, flag.size(), flag) == 0 && all.size() > end0 + 1 + flag.size() &&
         all[end0 + 1 + flag.size()] == '\0';
}

const bool g_died_in_boot = [] {
  if (std::getenv(kDieEnv) != nullptr && spawned_by_mproc()) ::raise(SIGKILL);
  return false;
}();

// Sets kDieEnv for its lifetime.
struct DieInBoot {
  DieInBoot() { ::setenv(kDieEnv, "1", 1); }
  ~DieInBoot() { ::unsetenv(kDieEnv); }
  DieInBoot(const DieInBoot&) = delete;
  DieInBoot& operator=(const DieInBoot&) = delete;
};

int add(int a, int b) { return a + b; }
int square(int x) { return x * x; }
int slow_square(int x) {
  std::this_thread::sleep_for(20ms);
  return x * x;
}

// A target that kills the process decoding it, unless that process is `starter`: under spawn and
// forkserver the child decodes its target before it acknowledges it, so this child dies in the
// middle of its bootstrap (after the boot message arrived, before the acknowledgement).
struct DiesWhenDecoded {
  int starter = 0;
  int operator()() const { return 9; }
  template <class A>
  void serialize(A& a) {
    a(starter);
    if constexpr (A::is_loading::value) {
      if (::getpid() != starter) ::raise(SIGKILL);
    }
  }
};

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

// ---- 2. killed during bootstrap -----------------------------------------------------------------

TEST(KilledInBoot, ASpawnedChildKilledBeforeMainIsAProcessErrorAndTheProcessStartsAgain) {
  Watchdog dog(90s);
  mproc::Process p({.start_method = StartMethod::spawn}, add, 40, 2);
  {
    DieInBoot die;
    try {
      p.start();
      ADD_FAILURE() << "start() returned for a child killed during its bootstrap";
    } catch (const mproc::ProcessError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("mproc::Process::start: the new process (spawn, pid "), std::string::npos)
          << what;
      EXPECT_NE(what.find("could not start its target"), std::string::npos) << what;
      // It says that the child ended, and how, whenever it died.
      EXPECT_NE(what.find("it ended before it could run its target (killed by signal 9"),
                std::string::npos)
          << what;
    }
  }
  // Nothing of the failed start is left: not started, no pid; the same object starts again, with
  // another method too.
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_TRUE(mproc::active_children().empty());
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 42);
}

TEST(KilledInBoot, AFailedSpawnStartCanBeRetriedWithFork) {
  Watchdog dog(90s);
  // The Process's method is the program's (fork, set by the test main) unless asked: ask spawn
  // through the program's choice, then fall back to fork for the same object.
  mproc::set_start_method(StartMethod::spawn, true);
  mproc::Process p(mproc::ProcessOptions{}, add, 1, 2);
  {
    DieInBoot die;
    EXPECT_THROW(p.start(), mproc::ProcessError);
  }
  mproc::set_start_method(StartMethod::fork, true);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 3);
}

class KilledWhileDecoding : public ::testing::TestWithParam<StartMethod> {
 protected:
  Watchdog dog_{std::chrono::seconds(90)};
};

TEST_P(KilledWhileDecoding, IsAProcessErrorAndLeavesNothing) {
  mproc::Process p({.start_method = GetParam()}, DiesWhenDecoded{static_cast<int>(::getpid())});
  try {
    p.start();
    ADD_FAILURE() << "start() returned for a child killed while decoding its target";
  } catch (const mproc::ProcessError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(std::string("the new process (") +
                        std::string(mproc::start_method_name(GetParam())) + ", pid "),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("could not start its target"), std::string::npos) << what;
  }
  EXPECT_TRUE(mproc::active_children().empty());
  // Several in a row: each failure is complete (a forkserver goes on serving).
  for (int i = 0; i < 5; ++i) {
    mproc::Process q({.start_method = GetParam()}, DiesWhenDecoded{static_cast<int>(::getpid())});
    EXPECT_THROW(q.start(), mproc::ProcessError);
  }
  mproc::Process ok({.start_method = GetParam()}, add, 2, 5);
  ok.start();
  ASSERT_TRUE(ok.join(kLong));
  EXPECT_EQ(ok.exitcode(), 7);
}

INSTANTIATE_TEST_SUITE_P(, KilledWhileDecoding,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

TEST(KilledInBoot, ASpawnPoolWhoseZygoteDiesInItsBootstrapThrowsFromItsConstructor) {
  Watchdog dog(90s);
  {
    DieInBoot die;
    try {
      mproc::Pool pool({.processes = 2, .start_method = StartMethod::spawn});
      ADD_FAILURE() << "the Pool was made although its zygote died during its bootstrap";
    } catch (const mproc::ProcessError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("could not start its target"), std::string::npos) << what;
      EXPECT_NE(what.find("mproc::Pool: cannot start the zygote process (spawn): "),
                std::string::npos)
          << what;
    }
  }
  EXPECT_TRUE(mproc::active_children().empty());
  // The next spawn Pool works.
  mproc::Pool pool({.processes = 2, .start_method = StartMethod::spawn});
  EXPECT_EQ(pool.apply_async(square, 9).get(kLong), 81);
}

// ---- 3. the forkserver killed while a Pool uses it ----------------------------------------------
//
// Observed: a Pool under forkserver does not depend on the server once it is made. Its zygote is
// the server's child, but it clears the death signal the server set and watches the Pool's process
// through its parent_process() sentinel instead (src/pool/launcher.cpp, set_up), and its workers
// are the zygote's children. Killing the server orphans the zygote (it is reparented) and nothing
// else: the tasks running finish, later tasks run, a worker that dies is still replaced, and the
// Pool ends as usual, leaving nothing. The next forkserver start starts a new server.

int die_on(int x) {
  if (x == 3) ::raise(SIGKILL);
  return x;
}

TEST(ForkserverKilled, APoolUsingItGoesOnWithoutTheServer) {
  Watchdog dog(90s);
  mproc::Pool pool({.processes = 2, .start_method = StartMethod::forkserver});
  EXPECT_EQ(pool.apply_async(square, 4).get(kLong), 16);
  const pid_t server = mproc::detail::forkserver_pid();
  ASSERT_GT(server, 0);
  std::vector<int> xs(200);
  std::vector<int> want(200);
  for (int i = 0; i < 200; ++i) {
    xs[static_cast<std::size_t>(i)] = i;
    want[static_cast<std::size_t>(i)] = i * i;
  }
  auto running = pool.map_async(slow_square, xs, std::size_t{1});
  std::this_thread::sleep_for(100ms);  // tasks are running in the workers
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  try {
    EXPECT_EQ(running.get(kLong), want);
  } catch (const mproc::Error& e) {
    ADD_FAILURE() << "the map failed after the server was killed: " << e.what();
  }
  // The zygote still serves: a worker that dies fails its task alone and is replaced.
  EXPECT_THROW((void)pool.apply_async(die_on, 3).get(kLong), mproc::WorkerLost);
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
  pool.close();
  pool.join();
  // A new server serves the next start.
  mproc::Process p({.start_method = StartMethod::forkserver}, add, 20, 22);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 42);
  EXPECT_NE(mproc::detail::forkserver_pid(), server);
}

TEST(ForkserverKilled, APoolTerminatedAfterTheServerDiedLeavesNothing) {
  Watchdog dog(90s);
  {
    mproc::Pool pool({.processes = 2, .start_method = StartMethod::forkserver});
    auto running = pool.map_async(slow_square, std::vector<int>(200, 2), std::size_t{1});
    std::this_thread::sleep_for(100ms);
    ASSERT_EQ(::kill(mproc::detail::forkserver_pid(), SIGKILL), 0);
    pool.terminate();
    EXPECT_THROW((void)running.get(kLong), mproc::BrokenPool);
  }
  // The killed server stays a zombie of this process until the next forkserver start reaps it
  // (see AKilledServerIsReapedWithoutAnotherStart): start one. The leak check after this
  // test sees any zygote or worker still running.
  mproc::Process p({.start_method = StartMethod::forkserver}, add, 1, 2);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 3);
}

// SIGKILLs this process's forkserver if one runs; true if one was killed. The pid is pinned with a
// pidfd and checked to be this process's child before the signal, so a reused pid is never hit.
bool kill_forkserver() {
  const pid_t pid = mproc::detail::forkserver_pid();
  if (pid <= 0) return false;
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return false;
  // Read with stdio: the process may be reaped meanwhile (the read then fails with ESRCH).
  char buf[1024] = {};
  const std::string stat_path = "/proc/" + std::to_string(pid) + "/stat";
  if (FILE* f = std::fopen(stat_path.c_str(), "re")) {
    (void)!std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
  }
  const std::string all = buf;
  const std::size_t close = all.rfind(')');
  int ppid = -1;
  if (close != std::string::npos) {
    std::istringstream in(all.substr(close + 1));
    char state = 0;
    in >> state >> ppid;
  }
  const bool ours = ppid == ::getpid();
  if (ours) (void)::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
  ::close(fd);
  return ours;
}

// Threads start forkserver Processes and Pools while another thread kills the server again and
// again. Each start ends clearly and in bounded time: it runs (exit code, or kExitCodeUnknown when
// the server died before it reported), or start() throws ProcessError (the child died with the
// server before it acknowledged its target) or std::system_error naming the forkserver; a Pool
// works or its constructor throws. Nothing is left behind.
TEST(ForkserverKilled, AgainAndAgainWhileThreadsStartProcessesEveryStartEndsClearly) {
  Watchdog dog(120s);
  std::atomic<bool> stop{false};
  std::atomic<int> ran{0};
  std::atomic<int> unknown{0};
  std::atomic<int> refused{0};
  std::atomic<int> kills{0};
  std::mutex mu;
  std::vector<std::string> bad;
  auto wrong = [&](std::string what) {
    std::lock_guard<std::mutex> g(mu);
    bad.push_back(std::move(what));
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        mproc::Process p({.start_method = StartMethod::forkserver}, add, t, i);
        try {
          p.start();
        } catch (const mproc::ProcessError& e) {
          if (std::string(e.what()).find("could not start its target") == std::string::npos)
            wrong(std::string("ProcessError: ") + e.what());
          ++refused;
          continue;
        } catch (const std::system_error& e) {
          if (std::string(e.what()).find("(forkserver)") == std::string::npos)
            wrong(std::string("system_error: ") + e.what());
          ++refused;
          continue;
        }
        if (!p.join(kLong)) {
          wrong("a child did not end within 30 s");
          p.kill();
          (void)p.join(kLong);
          continue;
        }
        if (p.exitcode() == t + i) {
          ++ran;
        } else if (p.exitcode() == mproc::kExitCodeUnknown) {
          ++unknown;
        } else {
          wrong("exit code " + std::to_string(p.exitcode().value_or(-1000)));
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 20; ++i) {
      try {
        mproc::Pool pool({.processes = 1, .start_method = StartMethod::forkserver});
        if (pool.apply_async(square, i).get(kLong) != i * i) wrong("a pool's result is wrong");
      } catch (const mproc::ProcessError&) {
        ++refused;
      } catch (const std::system_error&) {
        ++refused;
      } catch (const std::exception& e) {
        wrong(std::string("Pool: ") + e.what());
      }
    }
  });
  std::thread killer([&] {
    while (!stop.load()) {
      if (kill_forkserver()) ++kills;
      std::this_thread::sleep_for(3ms);
    }
  });
  for (auto& th : threads) th.join();
  stop = true;
  killer.join();
  for (const std::string& b : bad) ADD_FAILURE() << b;
  EXPECT_GT(kills.load(), 0);
  EXPECT_GT(ran.load(), 0);
  std::printf("ran %d, exit code unknown %d, refused %d, servers killed %d\n", ran.load(),
              unknown.load(), refused.load(), kills.load());
  // The last server killed may still be a zombie (see below): the next start reaps it.
  mproc::Process last({.start_method = StartMethod::forkserver}, add, 1, 2);
  last.start();
  ASSERT_TRUE(last.join(kLong));
  EXPECT_EQ(last.exitcode(), 3);
}

// The children of `pid` (every thread's), from /proc/<pid>/task/<tid>/children.
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    char buf[4096] = {};
    if (FILE* f = std::fopen((task.path() / "children").c_str(), "re")) {
      (void)!std::fread(buf, 1, sizeof buf - 1, f);
      std::fclose(f);
    }
    std::istringstream in(buf);
    for (pid_t c; in >> c;) out.push_back(c);
  }
  return out;
}

// The command line of `pid`, arguments separated by spaces ("" once it is gone).
std::string cmdline_of(pid_t pid) {
  char buf[4096] = {};
  std::size_t n = 0;
  if (FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/cmdline").c_str(), "re")) {
    n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
  }
  for (std::size_t i = 0; i < n; ++i)
    if (buf[i] == '\0') buf[i] = ' ';
  return std::string(buf, n);
}

// The pid of the Pool's zygote, or 0: under spawn, this process's child whose title (argv[2]) is
// PoolZygote; under forkserver, the server's only child (a fork of the server has the server's
// command line).
pid_t find_zygote(StartMethod method) {
  if (method == StartMethod::forkserver) {
    const std::vector<pid_t> kids = children_of(mproc::detail::forkserver_pid());
    return kids.size() == 1 ? kids[0] : 0;
  }
  for (pid_t c : children_of(::getpid()))
    if (cmdline_of(c).find("--mproc-spawn PoolZygote") != std::string::npos) return c;
  return 0;
}

// The Pool's zygote killed while tasks run, under spawn (the zygote is this process's child) and
// forkserver (the server's): the Pool breaks, every unfinished task fails with BrokenPool naming
// the zygote, later submissions throw BrokenPool, and the Pool's destructor leaves nothing.
class ZygoteKilled : public ::testing::TestWithParam<StartMethod> {
 protected:
  Watchdog dog_{std::chrono::seconds(90)};
};

TEST_P(ZygoteKilled, ThePoolBreaksWithBrokenPoolNamingTheZygote) {
  mproc::Pool pool({.processes = 2, .start_method = GetParam()});
  EXPECT_EQ(pool.apply_async(square, 4).get(kLong), 16);
  const pid_t zygote = find_zygote(GetParam());
  ASSERT_GT(zygote, 0) << "the Pool's zygote was not found";
  auto running = pool.map_async(slow_square, std::vector<int>(200, 3), std::size_t{1});
  std::this_thread::sleep_for(100ms);
  ASSERT_EQ(::kill(zygote, SIGKILL), 0);
  try {
    (void)running.get(kLong);
    ADD_FAILURE() << "the map finished although the zygote and its workers were killed";
  } catch (const mproc::BrokenPool& e) {
    EXPECT_NE(std::string(e.what()).find("zygote"), std::string::npos) << e.what();
  } catch (const mproc::TimeoutError&) {
    ADD_FAILURE() << "the map neither finished nor failed within 30 s of the zygote's death";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected error: " << e.what();
  }
  EXPECT_THROW((void)pool.apply_async(square, 2), mproc::BrokenPool);
}

// The server killed first (the zygote goes on, orphaned), then the zygote: the Pool still sees
// its zygote die, and breaks as above.
TEST(ZygoteKilledAfterTheServer, ThePoolBreaksWithBrokenPoolNamingTheZygote) {
  Watchdog dog(90s);
  mproc::Pool pool({.processes = 2, .start_method = StartMethod::forkserver});
  EXPECT_EQ(pool.apply_async(square, 4).get(kLong), 16);
  const pid_t zygote = find_zygote(StartMethod::forkserver);
  ASSERT_GT(zygote, 0);
  ASSERT_TRUE(kill_forkserver());
  EXPECT_EQ(pool.apply_async(square, 5).get(kLong), 25);
  auto running = pool.map_async(slow_square, std::vector<int>(200, 3), std::size_t{1});
  std::this_thread::sleep_for(100ms);
  ASSERT_EQ(::kill(zygote, SIGKILL), 0);
  try {
    (void)running.get(kLong);
    ADD_FAILURE() << "the map finished although the zygote and its workers were killed";
  } catch (const mproc::BrokenPool& e) {
    EXPECT_NE(std::string(e.what()).find("zygote"), std::string::npos) << e.what();
  } catch (const mproc::TimeoutError&) {
    ADD_FAILURE() << "the map neither finished nor failed within 30 s of the zygote's death";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected error: " << e.what();
  }
  EXPECT_THROW((void)pool.apply_async(square, 2), mproc::BrokenPool);
  // Reap the killed server (see AKilledServerIsReapedWithoutAnotherStart).
  mproc::Process p({.start_method = StartMethod::forkserver}, add, 1, 2);
  p.start();
  ASSERT_TRUE(p.join(kLong));
}

INSTANTIATE_TEST_SUITE_P(, ZygoteKilled,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

// Spawned children killed at every moment of their bootstrap: a thread SIGKILLs each new spawned
// child of this process as soon as it sees it, while starts go on. Each start ends clearly: start()
// throws ProcessError (killed before it acknowledged), or it started and its exit code is the
// target's or -SIGKILL. Nothing hangs; nothing is left.
class KilledAtRandomMoments : public ::testing::TestWithParam<StartMethod> {};

TEST_P(KilledAtRandomMoments, EveryStartEndsClearly) {
  Watchdog dog(120s);
  const bool spawn = GetParam() == StartMethod::spawn;
  if (!spawn) {  // the server runs before the killer looks for its children
    mproc::Process first({.start_method = StartMethod::forkserver}, add, 0, 0);
    first.start();
    ASSERT_TRUE(first.join(kLong));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    const pid_t me = spawn ? ::getpid() : mproc::detail::forkserver_pid();
    std::set<pid_t> seen;
    while (!stop.load()) {
      for (pid_t c : children_of(me)) {
        if (seen.count(c) != 0) continue;
        const int fd = static_cast<int>(::syscall(SYS_pidfd_open, c, 0));
        if (fd < 0) continue;
        // Still this process's child, and a spawned one (pinned by the pidfd from here on). A
        // child seen before its exec still has this program's command line: looked at again on
        // the next round.
        const std::vector<pid_t> now = children_of(me);
        if (std::count(now.begin(), now.end(), c) > 0 &&
            (!spawn || cmdline_of(c).find("--mproc-spawn") != std::string::npos)) {
          seen.insert(c);
          if (::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0) == 0) ++kills;
        }
        ::close(fd);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200 + (kills.load() % 7) * 150));
    }
  });
  int started = 0;
  int refused = 0;
  std::set<std::string> reasons;
  for (int i = 0; i < 100; ++i) {
    mproc::Process p({.start_method = GetParam()}, add, i, 1);
    try {
      p.start();
    } catch (const mproc::ProcessError& e) {
      const std::string what = e.what();
      const std::size_t at = what.find("could not start its target: ");
      EXPECT_NE(at, std::string::npos) << what;
      if (at != std::string::npos) reasons.insert(what.substr(at + 28));
      ++refused;
      continue;
    }
    ++started;
    ASSERT_TRUE(p.join(kLong));
    const int code = p.exitcode().value_or(-1000);
    EXPECT_TRUE(code == i + 1 || code == -SIGKILL) << code;
  }
  stop = true;
  killer.join();
  std::printf("started %d, refused %d, killed %d\n", started, refused, kills.load());
  for (const std::string& r : reasons) std::printf("  refused because: %s\n", r.c_str());
  EXPECT_GT(kills.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(, KilledAtRandomMoments,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

// A starter killed while its fresh child runs: the child does not outlive it (spawn: the death
// signal towards the starter; forkserver: the starter's server ends with it and kills its
// children). The starter is a fork child of the test that starts the fresh child and reports its
// pid through a pipe; the test kills the starter and waits (bounded) for the grandchild to go.
int sleep_long() {
  std::this_thread::sleep_for(60s);
  return 3;
}

int start_grandchild(StartMethod method, int report_fd) {
  mproc::Process g({.start_method = method}, sleep_long);
  g.start();
  const int pid = g.pid().value_or(-1);
  (void)!::write(report_fd, &pid, sizeof pid);
  std::this_thread::sleep_for(60s);
  return 4;
}

bool gone_within(pid_t pid, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
    if (f == nullptr) return true;
    char buf[512] = {};
    (void)!std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    const char* close = std::strrchr(buf, ')');
    if (close != nullptr && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X')) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

class StarterKilled : public ::testing::TestWithParam<StartMethod> {
 protected:
  Watchdog dog_{std::chrono::seconds(90)};
};

TEST_P(StarterKilled, TheFreshChildDoesNotOutliveIt) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  mproc::Process starter({.start_method = StartMethod::fork}, start_grandchild, GetParam(), fds[1]);
  starter.start();
  ::close(fds[1]);
  pollfd pfd{fds[0], POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 30000), 1);
  int grandchild = -1;
  ASSERT_EQ(::read(fds[0], &grandchild, sizeof grandchild),
            static_cast<ssize_t>(sizeof grandchild));
  ::close(fds[0]);
  ASSERT_GT(grandchild, 0);
  starter.kill();
  ASSERT_TRUE(starter.join(kLong));
  EXPECT_EQ(starter.exitcode(), -SIGKILL);
  EXPECT_TRUE(gone_within(grandchild, 20s))
      << "the fresh child " << grandchild << " outlived its starter: " << cmdline_of(grandchild);
}

INSTANTIATE_TEST_SUITE_P(, StarterKilled,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

// A killed server is reaped when a child's channel ends without its status, without waiting for
// the next forkserver start: the leak check would report a zombie server ("a zombie: pid N (state
// Z, parent <this test>): [exe]").
TEST(ForkserverKilled, AKilledServerIsReapedWithoutAnotherStart) {
  Watchdog dog(90s);
  mproc::Process p({.start_method = StartMethod::forkserver}, slow_square, 2);
  p.start();
  ASSERT_EQ(::kill(mproc::detail::forkserver_pid(), SIGKILL), 0);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), mproc::kExitCodeUnknown);
}

TEST(ForkserverKilled, APoolCreatedAfterTheServerWasKilledGetsANewServer) {
  Watchdog dog(90s);
  mproc::Process first({.start_method = StartMethod::forkserver}, add, 1, 1);
  first.start();
  ASSERT_TRUE(first.join(kLong));
  const pid_t server = mproc::detail::forkserver_pid();
  ASSERT_GT(server, 0);
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  mproc::Pool pool({.processes = 2, .start_method = StartMethod::forkserver});
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
  EXPECT_NE(mproc::detail::forkserver_pid(), server);
}

// ---- 4. a program without mproc::init -----------------------------------------------------------

std::string helper(const std::string& name) {
  const char* dir = std::getenv("MPROC_TEST_HELPERS");
  fs::path base = dir && *dir ? fs::path(dir) : fs::read_symlink("/proc/self/exe").parent_path();
  return (base / name).string();
}

struct HelperRun {
  int status = -1;
  std::string out;
};

// fork + exec of `exe`, its standard output through a pipe (bounded: 30 s, then the helper and
// its process group are killed).
HelperRun run_helper(const std::string& exe) {
  HelperRun r;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return r;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    if (::dup2(p[1], 1) < 0) ::_exit(126);
    ::execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[1]);
  char buf[4096];
  for (;;) {
    pollfd pfd{p[0], POLLIN, 0};
    if (::poll(&pfd, 1, 30000) <= 0) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      r.out += "(timed out)";
      break;
    }
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(NoInit, SpawnAndForkserverThrowNamingInitAndMainRunsOnce) {
  Watchdog dog(90s);
  const HelperRun r = run_helper(helper("no_init_main"));
  ASSERT_TRUE(WIFEXITED(r.status)) << r.status << "\n" << r.out;
  EXPECT_EQ(WEXITSTATUS(r.status), 0) << r.out;
  int mains = 0;
  std::set<std::string> errors;
  for (const std::string& line : lines_of(r.out)) {
    if (line.rfind("main ", 0) == 0) ++mains;
    const std::size_t sp = line.find(' ');
    if (line.find(" ProcessError ") != std::string::npos) errors.insert(line.substr(0, sp));
  }
  EXPECT_EQ(mains, 1) << "main ran " << mains << " times:\n" << r.out;
  EXPECT_EQ(errors, (std::set<std::string>{"spawn-process", "forkserver-process", "spawn-pool",
                                           "forkserver-pool"}))
      << r.out;
  for (const char* what : {"spawn-process ProcessError mproc::Process::start: the start method "
                           "spawn runs this program again",
                           "forkserver-process ProcessError mproc::Process::start: the start "
                           "method forkserver runs this program again"}) {
    EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
  }
  EXPECT_EQ(r.out.find("started"), std::string::npos) << r.out;
}

// ---- 5. a fresh child holds only what it was given ----------------------------------------------

// Writes the child's descriptors to `path`, one line each: "<fd> <what> <link target>", where
// <what> is "conn" for `conn_fd`, "sentinel" for the parent_process() sentinel (with the pid its
// fdinfo names appended), "other" for anything else.
int list_fds_to(const std::string& path, int conn_fd) {
  auto parent = mproc::parent_process();
  const int sentinel = parent ? parent->sentinel() : -1;
  std::string out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 3;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == ::dirfd(d)) continue;
    char target[512] = {};
    const std::string link = "/proc/self/fd/" + std::string(e->d_name);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0) target[n] = '\0';
    std::string what = fd == conn_fd ? "conn" : fd == sentinel ? "sentinel" : "other";
    if (fd == sentinel) {
      std::ifstream info("/proc/self/fdinfo/" + std::string(e->d_name));
      for (std::string line; std::getline(info, line);) {
        if (line.rfind("Pid:", 0) == 0) what += ":" + std::to_string(std::atoi(line.c_str() + 4));
      }
    }
    out += std::to_string(fd) + " " + what + " " + target + "\n";
  }
  ::closedir(d);
  std::ofstream f(path);
  f << out;
  return f ? 0 : 4;
}

int list_without_handles(std::string path) { return list_fds_to(path, -1); }

int list_with_connection(std::string path, mproc::Connection conn) {
  const int rc = list_fds_to(path, conn.fileno());
  conn.send(std::string("listed"));
  return rc;
}

int echo_plus_one(mproc::Connection conn) {
  conn.send(conn.recv<int>() + 1);
  return 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Extra descriptors the parent holds, inheritable (no O_CLOEXEC): a fresh child must not get them.
struct Inheritable {
  Inheritable() {
    file = ::open("/proc/self/cmdline", O_RDONLY);
    if (::pipe(pipe_fds) != 0) pipe_fds[0] = pipe_fds[1] = -1;
  }
  ~Inheritable() {
    ::close(file);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }
  Inheritable(const Inheritable&) = delete;
  Inheritable& operator=(const Inheritable&) = delete;
  int file = -1;
  int pipe_fds[2] = {-1, -1};
};

class FreshChildDescriptors : public ::testing::TestWithParam<StartMethod> {
 protected:
  std::string path(const char* name) const {
    return ::testing::TempDir() + "/mproc_start_fds_" + std::to_string(::getpid()) + "_" + name;
  }
  // Checks a listing: 0, 1, 2, the parent's pidfd sentinel (naming this process) and, when
  // `with_conn`, the Connection; nothing else.
  void check(const std::string& listing, bool with_conn) {
    std::set<int> fds;
    int sentinels = 0;
    int conns = 0;
    for (const std::string& line : lines_of(listing)) {
      std::istringstream in(line);
      int fd = -1;
      std::string what;
      in >> fd >> what;
      fds.insert(fd);
      if (what == "sentinel:" + std::to_string(::getpid())) {
        ++sentinels;
        EXPECT_NE(line.find("anon_inode:[pidfd]"), std::string::npos) << line;
      } else if (what == "conn") {
        ++conns;
        EXPECT_NE(line.find("socket:["), std::string::npos) << line;
      } else {
        EXPECT_TRUE(fd == 0 || fd == 1 || fd == 2)
            << "unexpected descriptor in the child: " << line << "\n"
            << listing;
      }
    }
    EXPECT_EQ(sentinels, 1) << listing;
    EXPECT_EQ(conns, with_conn ? 1 : 0) << listing;
    EXPECT_EQ(fds.size(), 3u + 1u + (with_conn ? 1u : 0u)) << listing;
    for (int std_fd : {0, 1, 2}) EXPECT_EQ(fds.count(std_fd), 1u) << listing;
  }
  Watchdog dog_{std::chrono::seconds(90)};
};

TEST_P(FreshChildDescriptors, AChildGivenNothingHoldsOnlyTheStandardOnesAndItsSentinel) {
  Inheritable extra;
  ASSERT_GE(extra.file, 0);
  ASSERT_GE(extra.pipe_fds[0], 0);
  const std::string out = path("nothing");
  mproc::Process p({.start_method = GetParam()}, list_without_handles, out);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  ASSERT_EQ(p.exitcode(), 0);
  check(read_text(out), false);
  std::remove(out.c_str());
}

TEST_P(FreshChildDescriptors, AChildGivenAConnectionHoldsItToo) {
  Inheritable extra;
  ASSERT_GE(extra.file, 0);
  ASSERT_GE(extra.pipe_fds[0], 0);
  const std::string out = path("conn");
  auto [mine, theirs] = mproc::Pipe();
  mproc::Process p({.start_method = GetParam()}, list_with_connection, out, std::move(theirs));
  p.start();
  ASSERT_TRUE(mine.poll(kLong));
  EXPECT_EQ(mine.recv<std::string>(), "listed");
  ASSERT_TRUE(p.join(kLong));
  ASSERT_EQ(p.exitcode(), 0);
  check(read_text(out), true);
  std::remove(out.c_str());
}

INSTANTIATE_TEST_SUITE_P(, FreshChildDescriptors,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

// A starter whose standard descriptors are closed: the boot channel and the descriptors of the
// handles take the lowest free numbers (0, 1, 2), and must still reach the fresh child as its
// descriptors, not as its standard ones. The starter is a fork child of the test; it reports
// through its exit code: the fresh child's exit code, or 100 + a step that failed.
int start_with_closed_std(StartMethod method) {
  ::close(0);
  ::close(1);
  ::close(2);
  try {
    auto [mine, theirs] = mproc::Pipe();
    mproc::Process p({.start_method = method}, echo_plus_one, std::move(theirs));
    p.start();
    mine.send(41);
    if (!mine.poll(kLong)) return 101;
    if (mine.recv<int>() != 42) return 102;
    if (!p.join(kLong)) return 103;
    return p.exitcode().value_or(104);
  } catch (...) {
    return 105;
  }
}

class ClosedStandardDescriptors : public ::testing::TestWithParam<StartMethod> {
 protected:
  Watchdog dog_{std::chrono::seconds(90)};
};

TEST_P(ClosedStandardDescriptors, AStarterWithoutThemStillStartsAFreshChild) {
  mproc::Process starter({.start_method = StartMethod::fork}, start_with_closed_std, GetParam());
  starter.start();
  ASSERT_TRUE(starter.join(kLong));
  EXPECT_EQ(starter.exitcode(), 0);
}

INSTANTIATE_TEST_SUITE_P(, ClosedStandardDescriptors,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

// ---- 6. a library replaced on disk, through the start methods ----------------------------------

using PluginFn = int (*)(int);

std::string hex(const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    s += kHex[b >> 4];
    s += kHex[b & 0xF];
  }
  return s;
}

std::string identity_of(const void* code) {
  const auto ref = mproc::detail::code_ref_of(code);
  return hex(mproc::detail::image_records(ref.image).at(0).build_id);
}

struct TempDir {
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "mproc-start-kill-XXXXXX").string();
    if (::mkdtemp(templ.data()) != nullptr) path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path path;
};

// The plugin's variant a, loaded from a copy in a scratch directory that is then replaced by
// variant b (a new file renamed over it, as a package manager or a rebuild would).
struct ReplacedPlugin {
  ReplacedPlugin() {
    lib = dir.path / "libplugin.so";
    fs::copy_file(MPROC_TEST_PLUGIN_A, lib);
    handle = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    other = ::dlopen(MPROC_TEST_PLUGIN_B, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr || other == nullptr) return;
    fn = reinterpret_cast<PluginFn>(::dlsym(handle, "mproc_test_plugin_value"));
    loaded_id = identity_of(reinterpret_cast<const void*>(fn));
    replacing_id = identity_of(::dlsym(other, "mproc_test_plugin_value"));
    fs::copy_file(MPROC_TEST_PLUGIN_B, dir.path / "next.so");
    fs::rename(dir.path / "next.so", lib);
  }
  ~ReplacedPlugin() {
    if (handle != nullptr) ::dlclose(handle);
    if (other != nullptr) ::dlclose(other);
  }
  ReplacedPlugin(const ReplacedPlugin&) = delete;
  ReplacedPlugin& operator=(const ReplacedPlugin&) = delete;
  // The message must name the file and both identities.
  void expect_named(const std::string& what) const {
    EXPECT_NE(what.find(lib.string() + " is not the file the sending process loaded"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("its build-id is " + replacing_id), std::string::npos) << what;
    EXPECT_NE(what.find("the sending process's was " + loaded_id), std::string::npos) << what;
  }
  TempDir dir;
  fs::path lib;
  void* handle = nullptr;
  void* other = nullptr;
  PluginFn fn = nullptr;
  std::string loaded_id;
  std::string replacing_id;
};

TEST(ReplacedLibrary, ASpawnProcessWhoseTargetIsInItThrowsNamingThePathAndBothBuildIds) {
  Watchdog dog(90s);
  ReplacedPlugin plugin;
  ASSERT_NE(plugin.fn, nullptr) << ::dlerror();
  ASSERT_NE(plugin.loaded_id, plugin.replacing_id);
  EXPECT_EQ(plugin.fn(3), 1021);  // the parent still runs the file it loaded
  for (int variant = 0; variant < 2; ++variant) {
    mproc::Process p =
        variant == 0
            ? mproc::Process({.start_method = StartMethod::spawn}, plugin.fn, 3)
            : mproc::Process({.start_method = StartMethod::spawn}, mproc::partial(plugin.fn, 3));
    try {
      p.start();
      (void)p.join(kLong);
      ADD_FAILURE() << "a spawn child started code from a replaced library; exit code "
                    << p.exitcode().value_or(-1000);
    } catch (const mproc::ProcessError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("could not start its target"), std::string::npos) << what;
      plugin.expect_named(what);
    }
    EXPECT_TRUE(mproc::active_children().empty());
  }
  // A target from an intact image still runs.
  mproc::Process ok({.start_method = StartMethod::spawn}, add, 3, 4);
  ok.start();
  ASSERT_TRUE(ok.join(kLong));
  EXPECT_EQ(ok.exitcode(), 7);
}

TEST(ReplacedLibrary, ASpawnPoolTaskInItFailsNamingThemAndThePoolGoesOn) {
  Watchdog dog(90s);
  mproc::Pool pool({.processes = 2, .start_method = StartMethod::spawn});
  EXPECT_EQ(pool.apply_async(square, 5).get(kLong), 25);
  ReplacedPlugin plugin;
  ASSERT_NE(plugin.fn, nullptr) << ::dlerror();
  ASSERT_NE(plugin.loaded_id, plugin.replacing_id);
  for (int variant = 0; variant < 2; ++variant) {
    try {
      const int got = variant == 0 ? pool.apply_async(plugin.fn, 3).get(kLong)
                                   : pool.apply_async(mproc::partial(plugin.fn, 3)).get(kLong);
      ADD_FAILURE() << "a pool task ran code from a replaced library: " << got;
    } catch (const mproc::TimeoutError&) {
      ADD_FAILURE() << "the task neither ran nor failed within 30 s";
    } catch (const mproc::Error& e) {
      plugin.expect_named(e.what());
    }
  }
  // The pool goes on: the same workers (or their replacements) run other tasks.
  EXPECT_EQ(pool.map(square, std::vector<int>{1, 2, 3, 4}), (std::vector<int>{1, 4, 9, 16}));
  EXPECT_EQ(pool.apply_async(add, 20, 22).get(kLong), 42);
}

}  // namespace
}  // namespace mproc_test
