// Interruption requests (<mproc/interrupt.hpp>): a SIGINT handler that calls mproc::interrupt()
// makes a thread blocked without a timeout in any blocking call throw mproc::Interrupted, whether
// the signal is delivered to that thread or to another; after clear_interrupt() the calls wait
// again; nothing is left half done; before arming, nothing changes.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mproc/detail/queue_core.hpp>
#include <mproc/errors.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/pipe.hpp>
#include <mproc/queue.hpp>
#include <mproc/sync.hpp>
#include <string>
#include <thread>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/shared_page.hpp"
#include "helpers/watchdog.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;
using mproc_test::eventually;
using mproc_test::SharedPage;
using mproc_test::Watchdog;

namespace {

std::atomic<int> g_signals{0};

extern "C" void on_sigint_interrupt(int) {
  g_signals.fetch_add(1, std::memory_order_relaxed);
  mproc::interrupt();
}

extern "C" void on_sigint_count(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

// Installs `handler` for SIGINT (with SA_RESTART, the harder case: the kernel restarts what it
// can) and restores the previous disposition; leaves no request behind.
class SigintHandler {
 public:
  explicit SigintHandler(void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintHandler() {
    sigaction(SIGINT, &old_, nullptr);
    mproc::clear_interrupt();
  }
  SigintHandler(const SigintHandler&) = delete;
  SigintHandler& operator=(const SigintHandler&) = delete;

 private:
  struct sigaction old_ {};
};

// Where the SIGINT goes: to the blocked thread itself (its sleep ends with EINTR), or raised in
// the test's own thread (the blocked thread must notice the request by itself).
enum class Delivery { kToBlockedThread, kRaiseElsewhere };

std::string name_of(Delivery d) {
  return d == Delivery::kToBlockedThread ? "pthread_kill(blocked thread)" : "raise() elsewhere";
}

// Runs `call` on a thread, lets it fall asleep, sends SIGINT as `how` says, and returns how the
// call ended: "Interrupted: <what>", "returned", or "<type>: <what>". The outcome does not depend
// on whether the thread was already asleep (the request is sticky). Bounded by the watchdog.
template <class Call>
std::string outcome_of(Call call, Delivery how) {
  mproc::clear_interrupt();
  std::promise<std::string> result;
  auto done = result.get_future();
  std::atomic<bool> started{false};
  std::thread t([&] {
    started.store(true);
    try {
      call();
      result.set_value("returned");
    } catch (const mproc::Interrupted& e) {
      result.set_value(std::string("Interrupted: ") + e.what());
    } catch (const std::exception& e) {
      result.set_value(std::string("other: ") + e.what());
    }
  });
  while (!started.load()) std::this_thread::yield();
  std::this_thread::sleep_for(100ms);  // most likely asleep by now; correctness does not need it
  if (how == Delivery::kToBlockedThread) {
    pthread_kill(t.native_handle(), SIGINT);
  } else {
    raise(SIGINT);
  }
  t.join();
  return done.get();
}

// The call throws Interrupted naming `operation`, for both deliveries.
template <class Call>
void expect_interrupted(Call call, const std::string& operation) {
  for (Delivery how : {Delivery::kToBlockedThread, Delivery::kRaiseElsewhere}) {
    const std::string r = outcome_of(call, how);
    EXPECT_EQ(r, "Interrupted: " + operation + ": interrupted by mproc::interrupt()")
        << name_of(how);
    mproc::clear_interrupt();
  }
}

class Interrupt : public ::testing::Test {
 protected:
  void SetUp() override { mproc::enable_interrupts(); }
  void TearDown() override { mproc::clear_interrupt(); }
  Watchdog dog_{std::chrono::seconds(60)};
  SigintHandler handler_{&on_sigint_interrupt};
};

// First in the file, so that it runs before any other test of this binary arms interruption (ctest
// runs each test in a process of its own).
TEST(InterruptNotArmed, BlockingCallsBehaveAsBeforeWhenNeverArmed) {
  if (mproc::interrupts_enabled()) GTEST_SKIP() << "armed by an earlier test in this process";
  Watchdog dog(std::chrono::seconds(60));
  SigintHandler handler(&on_sigint_count);
  mproc::Queue<int> q;
  g_signals = 0;
  std::promise<std::string> result;
  auto done = result.get_future();
  std::thread t([&] {
    try {
      (void)q.get(300ms);
      result.set_value("returned");
    } catch (const mproc::Empty&) {
      result.set_value("Empty");
    } catch (const std::exception& e) {
      result.set_value(std::string("other: ") + e.what());
    }
  });
  std::this_thread::sleep_for(50ms);
  pthread_kill(t.native_handle(), SIGINT);
  t.join();
  EXPECT_EQ(done.get(), "Empty");  // the signal neither ended the wait nor made it throw
  EXPECT_EQ(g_signals.load(), 1);
  EXPECT_FALSE(mproc::interrupts_enabled());
  EXPECT_FALSE(mproc::interrupt_requested());
  q.put(7);
  EXPECT_EQ(q.get(), 7);
}

TEST_F(Interrupt, RequestIsStickyUntilCleared) {
  mproc::Queue<int> q;
  EXPECT_FALSE(mproc::interrupt_requested());
  mproc::interrupt();
  EXPECT_TRUE(mproc::interrupt_requested());
  EXPECT_THROW((void)q.get(), mproc::Interrupted);
  EXPECT_THROW((void)q.get(), mproc::Interrupted);  // every later call sees it
  EXPECT_THROW((void)q.get(1s), mproc::Interrupted);
  mproc::clear_interrupt();
  EXPECT_FALSE(mproc::interrupt_requested());
  EXPECT_THROW((void)q.get(50ms), mproc::Empty);
}

TEST_F(Interrupt, InterruptedDerivesFromError) {
  mproc::interrupt();
  mproc::Event e;
  try {
    e.wait();
    FAIL() << "no exception";
  } catch (const mproc::Error& err) {
    EXPECT_NE(dynamic_cast<const mproc::Interrupted*>(&err), nullptr);
    EXPECT_STREQ(err.what(), "mproc::Event::wait: interrupted by mproc::interrupt()");
  }
}

TEST_F(Interrupt, CallsThatNeedNotWaitReturnTheirResult) {
  mproc::Queue<int> q(1);
  q.put(5);
  mproc::Lock lock;
  mproc::Semaphore sem(1);
  mproc::Event ev;
  ev.set();
  auto ends1 = mproc::Pipe();
  auto& a = ends1.first;
  auto& b = ends1.second;
  a.send(9);
  mproc::interrupt();
  EXPECT_EQ(q.get(), 5);
  q.put(6);  // room again
  EXPECT_THROW(q.put(7), mproc::Interrupted);
  lock.acquire();
  lock.release();
  sem.acquire();
  ev.wait();
  EXPECT_TRUE(b.poll());
  EXPECT_EQ(b.recv<int>(), 9);
  EXPECT_THROW((void)b.recv<int>(), mproc::Interrupted);
  mproc::clear_interrupt();
  EXPECT_EQ(q.get(), 6);
}

TEST_F(Interrupt, TimedWaitsStillTimeOutWhenArmed) {
  mproc::Queue<int> q;
  mproc::Event ev;
  mproc::Semaphore sem(0);
  EXPECT_THROW((void)q.get(120ms), mproc::Empty);
  EXPECT_FALSE(ev.wait(120ms));
  EXPECT_FALSE(sem.acquire(120ms));
}

TEST_F(Interrupt, ForkedChildDoesNotInheritTheRequest) {
  mproc::interrupt();
  Child child([] {
    if (mproc::interrupt_requested()) return 1;
    if (!mproc::interrupts_enabled()) return 2;
    mproc::Queue<int> q;
    try {
      (void)q.get(30ms);
    } catch (const mproc::Empty&) {
      return 0;
    }
    return 3;
  });
  EXPECT_EQ(child.wait(), 0);
  EXPECT_TRUE(mproc::interrupt_requested());
}

// ---- queues ---------------------------------------------------------------------------------

TEST_F(Interrupt, QueueGetThrowsInterrupted) {
  mproc::Queue<int> q;
  expect_interrupted([&] { (void)q.get(); }, "mproc::Queue::get");
  EXPECT_THROW((void)q.get(50ms), mproc::Empty);  // waits again
  q.put(3);
  EXPECT_EQ(q.get(), 3);
}

TEST_F(Interrupt, QueueGetManyThrowsInterrupted) {
  mproc::Queue<int> q;
  expect_interrupted([&] { (void)q.get_many(8); }, "mproc::Queue::get");
  q.put(1);
  EXPECT_EQ(q.get_many(8), std::vector<int>{1});
}

TEST_F(Interrupt, QueuePutOnFullQueueThrowsInterruptedAndPutsNothing) {
  mproc::Queue<int> q(1);
  q.put(1);
  expect_interrupted([&] { q.put(2); }, "mproc::Queue::put");
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get(), 1);
  EXPECT_THROW((void)q.get(50ms), mproc::Empty);
  q.put(3);
  EXPECT_EQ(q.get(), 3);
}

TEST_F(Interrupt, StreamedPutInterruptedHalfWayIsNeverDelivered) {
  mproc::QueueOptions o;
  o.capacity = 4096;
  mproc::Queue<std::string> q(0, o);
  const std::string big(2 * q.capacity(), 'x');  // streamed: larger than the ring
  expect_interrupted([&] { q.put(big); }, "mproc::Queue::put");
  // The ring is full of the abandoned stream's chunks: a consumer passes them (and ends the
  // stream), then the next message comes.
  std::string got;
  std::thread consumer([&] { got = q.get(); });
  q.put("small");
  consumer.join();
  EXPECT_EQ(got, "small");
  EXPECT_EQ(q.qsize(), 0u);
}

TEST_F(Interrupt, SimpleQueueGetThrowsInterrupted) {
  mproc::SimpleQueue<int> q;
  expect_interrupted([&] { (void)q.get(); }, "mproc::Queue::get");
  q.put(4);
  EXPECT_EQ(q.get(), 4);
}

TEST_F(Interrupt, JoinableQueueJoinThrowsInterrupted) {
  mproc::JoinableQueue<int> q;
  q.put(1);
  expect_interrupted([&] { q.join(); }, "mproc::JoinableQueue::join");
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  q.join();  // done: returns
}

// ---- locks and the other primitives -----------------------------------------------------------

// Another thread holds `lock` for the whole interrupted wait; then releases it.
template <class L>
void check_lock_wait(L& lock, const std::string& operation) {
  std::promise<void> held;
  std::promise<void> let_go;
  auto let_go_f = let_go.get_future();
  std::thread holder([&] {
    lock.acquire();
    held.set_value();
    let_go_f.wait();
    lock.release();
  });
  held.get_future().wait();
  bool owned_after = true;
  expect_interrupted(
      [&] {
        try {
          lock.acquire();
        } catch (...) {
          owned_after = lock.is_owned();
          throw;
        }
      },
      operation);
  EXPECT_FALSE(owned_after);  // the interrupted acquisition holds nothing
  let_go.set_value();
  holder.join();
  // The lock is usable: by another thread, and by this one.
  std::thread other([&] {
    lock.acquire();
    lock.release();
  });
  other.join();
  EXPECT_TRUE(lock.acquire(1s));
  lock.release();
}

TEST_F(Interrupt, LockAcquireThrowsInterruptedAndLeavesTheLockUsable) {
  mproc::Lock lock;
  check_lock_wait(lock, "mproc::Lock::acquire");
}

TEST_F(Interrupt, RLockAcquireThrowsInterruptedAndLeavesTheLockUsable) {
  mproc::RLock lock;
  check_lock_wait(lock, "mproc::RLock::acquire");
}

TEST_F(Interrupt, LockHeldByAnotherProcessInterruptsAndRecovers) {
  mproc::Lock lock;
  mproc::Event held, let_go;
  Child holder([&] {
    lock.acquire();
    held.set();
    (void)let_go.wait(30s);
    lock.release();
    return 0;
  });
  ASSERT_TRUE(held.wait(30s));
  expect_interrupted([&] { lock.acquire(); }, "mproc::Lock::acquire");
  let_go.set();
  EXPECT_EQ(holder.wait(), 0);
  EXPECT_TRUE(lock.acquire(5s));
  lock.release();
}

TEST_F(Interrupt, SemaphoreAcquireThrowsInterrupted) {
  mproc::Semaphore sem(0);
  expect_interrupted([&] { sem.acquire(); }, "mproc::Semaphore::acquire");
  EXPECT_EQ(sem.get_value(), 0);
  sem.release();
  EXPECT_TRUE(sem.acquire(1s));
}

TEST_F(Interrupt, EventWaitThrowsInterrupted) {
  mproc::Event ev;
  expect_interrupted([&] { ev.wait(); }, "mproc::Event::wait");
  EXPECT_FALSE(ev.wait(50ms));
  ev.set();
  ev.wait();
}

TEST_F(Interrupt, ConditionWaitThrowsInterruptedHoldingTheLock) {
  mproc::Condition cond;
  bool held_after = false;
  expect_interrupted(
      [&] {
        cond.acquire();
        try {
          cond.wait();
        } catch (...) {
          held_after = true;
          cond.release();  // throws LockError if not held
          throw;
        }
        cond.release();
      },
      "mproc::Condition::wait");
  EXPECT_TRUE(held_after);
  // Still works: a notify reaches a waiter.
  std::atomic<bool> flag{false};
  std::thread waiter([&] {
    cond.acquire();
    (void)cond.wait_for([&] { return flag.load(); }, 30s);
    cond.release();
  });
  std::this_thread::sleep_for(20ms);
  cond.acquire();
  flag = true;
  cond.notify_all();
  cond.release();
  waiter.join();
  EXPECT_TRUE(flag.load());
}

TEST_F(Interrupt, BarrierWaitThrowsInterruptedAndBreaksTheBarrier) {
  mproc::Barrier barrier(2);
  for (Delivery how : {Delivery::kToBlockedThread, Delivery::kRaiseElsewhere}) {
    barrier.reset();
    EXPECT_EQ(outcome_of([&] { (void)barrier.wait(); }, how),
              "Interrupted: mproc::Barrier::wait: interrupted by mproc::interrupt()")
        << name_of(how);
    mproc::clear_interrupt();
    EXPECT_TRUE(barrier.broken());
    EXPECT_THROW((void)barrier.wait(), mproc::BrokenBarrierError);
  }
  barrier.reset();
  std::thread other([&] { (void)barrier.wait(); });
  (void)barrier.wait();
  other.join();
}

// ---- connections and mproc::wait -----------------------------------------------------------

TEST_F(Interrupt, ConnectionRecvThrowsInterrupted) {
  auto ends2 = mproc::Pipe();
  auto& a = ends2.first;
  auto& b = ends2.second;
  expect_interrupted([&] { (void)b.recv<int>(); }, "mproc::Connection::recv");
  a.send(11);
  EXPECT_EQ(b.recv<int>(), 11);  // the framing is intact
}

TEST_F(Interrupt, ConnectionRecvBytesThrowsInterrupted) {
  auto ends3 = mproc::Pipe(false);
  auto& a = ends3.first;
  auto& b = ends3.second;
  expect_interrupted([&] { (void)a.recv_bytes(); }, "mproc::Connection::recv");
  b.send_bytes(std::vector<std::byte>(3, std::byte{1}));
  EXPECT_EQ(a.recv_bytes().size(), 3u);
}

TEST_F(Interrupt, ConnectionPollWithoutLimitThrowsInterrupted) {
  auto ends4 = mproc::Pipe();
  [[maybe_unused]] auto& a = ends4.first;
  auto& b = ends4.second;
  expect_interrupted([&] { (void)b.poll(std::chrono::hours(1)); }, "mproc::Connection::poll");
  EXPECT_FALSE(b.poll(30ms));
}

TEST_F(Interrupt, WaitOnConnectionsThrowsInterrupted) {
  auto ends5 = mproc::Pipe();
  auto& a = ends5.first;
  auto& b = ends5.second;
  auto ends6 = mproc::Pipe();
  [[maybe_unused]] auto& c = ends6.first;
  auto& d = ends6.second;
  expect_interrupted([&] { (void)mproc::wait({b, d}); }, "mproc::wait");
  a.send(1);
  EXPECT_EQ(mproc::wait({b, d}), std::vector<std::size_t>{0});
}

TEST_F(Interrupt, WaitOnOneQueueThrowsInterrupted) {
  mproc::Queue<int> q;
  expect_interrupted([&] { (void)mproc::wait({q}); }, "mproc::wait");
  q.put(1);
  EXPECT_EQ(mproc::wait({q}), std::vector<std::size_t>{0});
}

TEST_F(Interrupt, WaitOnQueuesAndConnectionsThrowsInterrupted) {
  mproc::Queue<int> q1, q2;
  auto ends7 = mproc::Pipe();
  [[maybe_unused]] auto& a = ends7.first;
  auto& b = ends7.second;
  expect_interrupted([&] { (void)mproc::wait({mproc::Waitable(q1), q2, b}); }, "mproc::wait");
  q2.put(1);
  EXPECT_EQ(mproc::wait({mproc::Waitable(q1), q2, b}), std::vector<std::size_t>{1});
}

// ---- what the library does while it sleeps still happens when armed -------------------------
// (Waits that wake in slices of their own to do something must still reach their slice's end
// when an armed wait returns every kInterruptSlice.)

struct Board {
  std::atomic<int> started{0};
  std::atomic<int> value{0};
};

TEST_F(Interrupt, BarrierStillNoticesItsActionRunnerKilledWhenArmed) {
  SharedPage<Board> board;
  mproc::Barrier b(2, [&] {
    board->value = getpid();
    board->started = 1;
    pause();  // the process running the action is killed here
  });
  auto arrive = [&] {
    try {
      (void)b.wait(60s);
    } catch (const mproc::BrokenBarrierError&) {
      return 0;
    }
    return 1;
  };
  Child first(arrive);
  Child second(arrive);
  ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
  Child& runner = board->value == first.pid() ? first : second;
  Child& other = board->value == first.pid() ? second : first;
  runner.kill();
  EXPECT_EQ(runner.wait(), -SIGKILL);
  EXPECT_EQ(other.wait(30s), 0) << "the survivor must see BrokenBarrierError, not hang";
}

using Bytes = std::vector<unsigned char>;
Board* g_board = nullptr;

void encode_bytes(mproc::Writer& w, const void* obj) {
  const auto& b = *static_cast<const Bytes*>(obj);
  w.write(b.data(), b.size());
}

void decode_then_hang(mproc::Reader& r, void*) {
  unsigned char piece[8000];
  r.read(piece, sizeof piece);
  g_board->started = 1;
  for (;;) pause();
}

TEST_F(Interrupt, ProducerStillSettlesAKilledStreamConsumerWhenArmed) {
  using mproc::detail::Clock;
  const std::size_t cap = 16 * 1024;
  mproc::detail::QueueCore q(1, mproc::QueueOptions{.capacity = cap}, false);
  SharedPage<Board> board;
  g_board = &*board;
  Child producer([&] {
    const Bytes big(10 * cap, 7);
    return q.put(mproc::detail::EncodeJob{big.size(), &encode_bytes, &big}, Clock::now() + 30s) ? 0
                                                                                                : 1;
  });
  Child doomed([&] {
    (void)q.get(&decode_then_hang, nullptr, Clock::now() + 30s);
    return 0;
  });
  ASSERT_TRUE(eventually([&] { return board->started.load() == 1; }));
  doomed.kill();
  EXPECT_EQ(doomed.wait(), -SIGKILL);
  // The producer, blocked on a ring full of chunks nobody will read, passes them in its idle
  // slices and finishes.
  EXPECT_EQ(producer.wait(20s), 0) << "the producer stayed blocked";
  EXPECT_EQ(q.qsize(), 0u);
}

// ---- exemption --------------------------------------------------------------------------------

TEST_F(Interrupt, ExemptThreadIsNotInterrupted) {
  mproc::Queue<int> q;
  mproc::interrupt();
  std::thread t([&] {
    mproc::detail::InterruptExempt exempt;
    EXPECT_FALSE(mproc::detail::interrupts_armed());
    EXPECT_EQ(q.get(), 5);  // waits for the value despite the request
  });
  std::this_thread::sleep_for(50ms);
  q.put(5);
  t.join();
  EXPECT_THROW((void)q.get(), mproc::Interrupted);
}

}  // namespace
