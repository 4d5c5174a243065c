// Interruption of Process::join and of the Pool's waits (AsyncResult::get, map, imap's next,
// Pool::join): the call throws Interrupted, the pool stays usable.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mproc/errors.hpp>
#include <mproc/futures.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/sync.hpp>
#include <string>
#include <thread>
#include <vector>

#include "helpers/watchdog.hpp"

using namespace std::chrono_literals;

namespace {

extern "C" void on_sigint(int) { mproc::interrupt(); }

int sqr(int x) { return x * x; }
int slow_sqr(int x) {
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return x * x;
}

class InterruptPool : public ::testing::Test {
 protected:
  void SetUp() override {
    mproc::enable_interrupts();
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  void TearDown() override {
    sigaction(SIGINT, &old_, nullptr);
    mproc::clear_interrupt();
  }
  mproc_test::Watchdog dog_{std::chrono::seconds(90)};
  struct sigaction old_ {};
};

template <class Call>
std::string outcome_of(Call call, bool to_blocked) {
  mproc::clear_interrupt();
  std::promise<std::string> result;
  auto done = result.get_future();
  std::thread t([&] {
    try {
      call();
      result.set_value("returned");
    } catch (const mproc::Interrupted& e) {
      result.set_value(std::string("Interrupted: ") + e.what());
    } catch (const std::exception& e) {
      result.set_value(std::string("other: ") + e.what());
    }
  });
  std::this_thread::sleep_for(150ms);
  if (to_blocked) {
    pthread_kill(t.native_handle(), SIGINT);
  } else {
    raise(SIGINT);
  }
  t.join();
  mproc::clear_interrupt();
  return done.get();
}

TEST_F(InterruptPool, ProcessJoinThrowsInterrupted) {
  mproc::Event stop;
  mproc::Process p([](mproc::Event e) { (void)e.wait(60s); }, stop);
  p.start();
  for (bool to_blocked : {true, false})
    EXPECT_EQ(outcome_of([&] { p.join(); }, to_blocked),
              "Interrupted: mproc::Process::join: interrupted by mproc::interrupt()");
  EXPECT_TRUE(p.is_alive());
  stop.set();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(InterruptPool, AsyncResultGetMapImapAndJoinThrowInterrupted) {
  mproc::Pool pool(6);  // room for every slow task and the quick one
  auto slow = pool.apply_async(slow_sqr, 3);
  for (bool to_blocked : {true, false}) {
    EXPECT_EQ(outcome_of([&] { (void)slow.get(); }, to_blocked),
              "Interrupted: mproc::Pool: waiting for a result: interrupted by mproc::interrupt()");
    EXPECT_EQ(outcome_of([&] { (void)pool.map(slow_sqr, std::vector<int>{1}); }, to_blocked),
              "Interrupted: mproc::Pool: waiting for a result: interrupted by mproc::interrupt()");
    EXPECT_EQ(outcome_of(
                  [&] {
                    for (int v : pool.imap(slow_sqr, std::vector<int>{1})) (void)v;
                  },
                  to_blocked),
              "Interrupted: mproc::Pool: waiting for a result: interrupted by mproc::interrupt()");
  }
  // A ready result is returned despite a request; the pool still works.
  auto quick = pool.apply_async(sqr, 4);
  EXPECT_EQ(quick.get(), 16);
  mproc::interrupt();
  EXPECT_EQ(quick.get(), 16);
  mproc::clear_interrupt();
  pool.close();
  EXPECT_EQ(outcome_of([&] { pool.join(); }, false),
            "Interrupted: mproc::Pool::join: interrupted by mproc::interrupt()");
  pool.terminate();
}

TEST_F(InterruptPool, AsCompletedAndWaitThrowInterruptedAndCancelIsNotInterrupted) {
  mproc::Pool pool(1);
  std::vector<mproc::AsyncResult<int>> fs = {pool.apply_async(slow_sqr, 2)};
  for (bool to_blocked : {true, false}) {
    EXPECT_EQ(outcome_of(
                  [&] {
                    for (const auto& f : mproc::as_completed(fs)) (void)f;
                  },
                  to_blocked),
              "Interrupted: mproc::as_completed/wait: interrupted by mproc::interrupt()");
    EXPECT_EQ(outcome_of([&] { (void)mproc::wait(fs); }, to_blocked),
              "Interrupted: mproc::as_completed/wait: interrupted by mproc::interrupt()");
  }
  // cancel() never blocks on a task: a pending request does not stop it.
  auto queued = pool.apply_async(sqr, 5);
  mproc::interrupt();
  EXPECT_TRUE(queued.cancel());
  EXPECT_TRUE(queued.cancelled());
  EXPECT_TRUE(fs[0].cancel(mproc::CancelMode::kill_running));
  mproc::clear_interrupt();
  EXPECT_TRUE(fs[0].cancelled());
  EXPECT_EQ(pool.apply(sqr, 6), 36);
}

}  // namespace
