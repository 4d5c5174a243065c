// mproc::Pool under each start method (fork, spawn, forkserver): the same tasks, the same
// outcomes, the same failure model; what cannot travel to a fresh image; code from a library the
// parent loaded with dlopen, before and after the pool started. Every wait is bounded.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <mproc/partial.hpp>
#include <mproc/pool.hpp>
#include <mproc/start_method.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "helpers/watchdog.hpp"

namespace mproc_test {
namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;

int square(int x) { return x * x; }
std::string label(const std::string& prefix, int x) { return prefix + std::to_string(x); }
int die_on(int x) {
  if (x == 3) ::raise(SIGKILL);
  return x;
}
int throws_on(int x) {
  if (x == 2) throw std::invalid_argument("two is not allowed");
  return x;
}
int pid_of_worker(int) { return static_cast<int>(::getpid()); }
int g_seed = 0;  // set by the initializer in each worker
void seed(int s) { g_seed = s; }
int seeded(int x) { return x + g_seed; }

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

class PoolMethods : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::PoolOptions opts(int n = 2) const {
    return mproc::PoolOptions{.processes = n, .start_method = GetParam()};
  }
  Watchdog dog_{std::chrono::seconds(120)};
};

TEST_P(PoolMethods, MapApplyAndImap) {
  mproc::Pool pool(opts());
  std::vector<int> xs(100);
  std::iota(xs.begin(), xs.end(), 0);
  const std::vector<int> sq = pool.map(square, xs);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(sq[static_cast<std::size_t>(i)], i * i);
  EXPECT_EQ(pool.apply_async(square, 12).get(30s), 144);
  int expect = 0;
  for (int v : pool.imap(square, xs)) {
    EXPECT_EQ(v, expect * expect);
    ++expect;
  }
  EXPECT_EQ(expect, 100);
}

TEST_P(PoolMethods, LambdasAndPartials) {
  mproc::Pool pool(opts());
  auto twice = [](int x) { return 2 * x; };
  EXPECT_EQ(pool.map(twice, std::vector<int>{1, 2, 3}), (std::vector<int>{2, 4, 6}));
  EXPECT_EQ(pool.apply_async(mproc::partial(label, std::string("n=")), 5).get(30s), "n=5");
}

TEST_P(PoolMethods, InitializerRunsInEachWorker) {
  auto o = opts();
  o.initializer = mproc::partial(seed, 100);
  mproc::Pool pool(o);
  EXPECT_EQ(pool.map(seeded, std::vector<int>{1, 2, 3}), (std::vector<int>{101, 102, 103}));
}

TEST_P(PoolMethods, ATaskErrorIsARemoteError) {
  mproc::Pool pool(opts());
  auto r = pool.apply_async(throws_on, 2);
  try {
    (void)r.get(30s);
    FAIL() << "no error";
  } catch (const mproc::RemoteError& e) {
    EXPECT_NE(std::string(e.what()).find("two is not allowed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.apply_async(throws_on, 1).get(30s), 1);
}

TEST_P(PoolMethods, AKilledWorkerFailsItsTaskAloneAndIsReplaced) {
  mproc::Pool pool(opts());
  auto lost = pool.apply_async(die_on, 3);
  EXPECT_THROW((void)lost.get(30s), mproc::WorkerLost);
  std::vector<int> xs = {1, 2, 4, 5};
  EXPECT_EQ(pool.map(square, xs), (std::vector<int>{1, 4, 16, 25}));
}

TEST_P(PoolMethods, WorkersAreNotTheCallerAndNotForkedFromIt) {
  mproc::Pool pool(opts(1));
  const int pid = pool.apply_async(pid_of_worker, 0).get(30s);
  EXPECT_NE(pid, static_cast<int>(::getpid()));
}

TEST_P(PoolMethods, ContextMakesAPoolOfItsMethod) {
  auto ctx = mproc::get_context(GetParam());
  mproc::Pool pool = ctx.pool({.processes = 1});
  EXPECT_EQ(pool.apply_async(square, 5).get(30s), 25);
  EXPECT_EQ(pool.start_method(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(, PoolMethods,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn,
                                           StartMethod::forkserver),
                         MethodName{});

class PoolFreshImage : public ::testing::TestWithParam<StartMethod> {
 protected:
  Watchdog dog_{std::chrono::seconds(120)};
};

TEST_P(PoolFreshImage, CapturingLambdaIsAValueErrorAtSubmit) {
  mproc::Pool pool({.processes = 1, .start_method = GetParam()});
  int k = 3;
  try {
    (void)pool.apply_async([k](int x) { return k * x; }, 2);
    FAIL() << "no error";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc::partial"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.apply_async(square, 3).get(30s), 9);  // the pool goes on
}

TEST_P(PoolFreshImage, CapturingInitializerIsAValueError) {
  int k = 3;
  try {
    mproc::Pool pool({.processes = 1, .initializer = [k] { seed(k); }, .start_method = GetParam()});
    FAIL() << "no error";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("initializer"), std::string::npos) << e.what();
  }
}

using PluginFn = int (*)(int);

TEST_P(PoolFreshImage, CodeFromALibraryLoadedBeforeAndAfterThePoolStarted) {
  void* before = ::dlopen(MPROC_TEST_PLUGIN_A, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(before, nullptr) << ::dlerror();
  auto fa = reinterpret_cast<PluginFn>(::dlsym(before, "mproc_test_plugin_value"));
  mproc::Pool pool({.processes = 2, .start_method = GetParam()});
  EXPECT_EQ(pool.apply_async(fa, 2).get(30s), 1014);
  void* after = ::dlopen(MPROC_TEST_PLUGIN_B, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(after, nullptr) << ::dlerror();
  auto fb = reinterpret_cast<PluginFn>(::dlsym(after, "mproc_test_plugin_value"));
  EXPECT_EQ(pool.map(fb, std::vector<int>{1, 2}), (std::vector<int>{2007, 2014}));
  // Partials of library functions travel too.
  EXPECT_EQ(pool.apply_async(mproc::partial(fb, 3)).get(30s), 2021);
}

INSTANTIATE_TEST_SUITE_P(, PoolFreshImage,
                         ::testing::Values(StartMethod::spawn, StartMethod::forkserver),
                         MethodName{});

}  // namespace
}  // namespace mproc_test
