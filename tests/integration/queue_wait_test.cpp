// mproc::wait over queues: a Queue, SimpleQueue or JoinableQueue waited for beside processes,
// connections and descriptors. A queue is ready when it holds a complete message; a process when
// it has ended. Every multi-process wait here is bounded (timeouts, and the children die with the
// test), so a lost wake-up fails a test instead of hanging it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include "helpers/queue_access.hpp"

using namespace std::chrono_literals;
using Ready = std::vector<std::size_t>;

namespace {

// The mproc::wait registration in a queue's shared region (0: none).
std::uint32_t watch_bits(mproc::detail::QueueShared* s) {
  return s->data_waiters.load() & mproc::detail::kWatchMask;
}

// A Queue whose shared region a test can look at (through helpers/queue_access.hpp).
struct PeekQueue : mproc::Queue<int> {
  using mproc::Queue<int>::Queue;
  mproc::detail::QueueShared* shared() {
    using Access = mproc::detail::QueueCoreTestAccess;
    return Access::shared(Access::core<int>(*this));
  }
};

// Shared anonymous memory for counters the test's processes update.
template <class T>
T* shared_object() {
  void* mem = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  return ::new (mem) T();
}
template <class T>
void free_shared(T* p) {
  p->~T();
  munmap(p, sizeof(T));
}

// Waits (bounded) until pred() holds; false if it never did.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 20s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(200us);
  }
  return true;
}

TEST(QueueWait, ReadyAtOnceWhenNonEmpty) {
  mproc::Queue<int> q;
  mproc::SimpleQueue<int> sq;
  mproc::JoinableQueue<int> jq;
  q.put(1);
  sq.put(2);
  jq.put(3);
  EXPECT_EQ(mproc::wait({q}, 0s), Ready{0});
  EXPECT_EQ(mproc::wait({q}), Ready{0});  // no timeout: returns at once all the same
  EXPECT_EQ(mproc::wait({sq}, 1s), Ready{0});
  EXPECT_EQ(mproc::wait({jq}, 1s), Ready{0});
  EXPECT_EQ(mproc::wait({q, sq, jq}, 0s), (Ready{0, 1, 2}));
  // Waiting takes nothing.
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_EQ(sq.get(), 2);
  EXPECT_EQ(jq.get_nowait(), 3);
  EXPECT_EQ(mproc::wait({q, sq, jq}, 0s), Ready{});
}

TEST(QueueWait, TimeoutWithNothingReadyReturnsEmpty) {
  mproc::Queue<int> q;
  mproc::JoinableQueue<int> jq;
  EXPECT_EQ(mproc::wait({q}, 0s), Ready{});
  EXPECT_EQ(mproc::wait({q}, -5s), Ready{});
  EXPECT_EQ(mproc::wait({q, jq}, 30ms), Ready{});
  EXPECT_EQ(mproc::wait_until({q}, std::chrono::steady_clock::now() + 20ms), Ready{});
  EXPECT_EQ(mproc::wait_until({q}, std::chrono::system_clock::now() - 1s), Ready{});
}

TEST(QueueWait, QueueBesideConnectionsReportsEachReadyObject) {
  mproc::Queue<int> q;
  auto [a, b] = mproc::Pipe();
  b.send(7);
  EXPECT_EQ(mproc::wait({q, a}, 1s), Ready{1});
  q.put(1);
  EXPECT_EQ(mproc::wait({q, a}, 1s), (Ready{0, 1}));
  EXPECT_EQ(a.recv<int>(), 7);
  EXPECT_EQ(mproc::wait({a, q}, 1s), Ready{1});
  // A range of queues.
  std::vector<mproc::Queue<int>> qs(3);
  qs[2].put(5);
  EXPECT_EQ(mproc::wait(qs, 1s), Ready{2});
}

// In the tests below the side that puts gives the waiter 5 s to wake while the wait's own timeout
// is 20 s: a lost wake-up (which the wait's last look at its deadline would hide) fails the test.
TEST(QueueWait, WakesOnPutFromAnotherThread) {
  mproc::Queue<int> q;
  std::atomic<bool> woke{false};
  bool woke_in_time = false;
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    q.put(42);
    woke_in_time = eventually([&] { return woke.load(); }, 5s);
  });
  const Ready ready = mproc::wait({q}, 20s);
  woke.store(true);
  t.join();
  EXPECT_EQ(ready, Ready{0});
  EXPECT_TRUE(woke_in_time);
  EXPECT_EQ(q.get_nowait(), 42);
}

TEST(QueueWait, WakesOnPutFromAnotherProcess) {
  mproc::Queue<int> q;
  mproc::Queue<int> ack;
  mproc::Process p([&] {
    std::this_thread::sleep_for(100ms);
    q.put(42);
    // Stays alive while the parent should wake for the queue (its death would wake it too).
    if (!ack.try_get() && !eventually([&] { return !ack.empty(); }, 5s)) std::_Exit(3);
  });
  p.start();
  const Ready ready = mproc::wait({q, p}, 20s);
  EXPECT_EQ(ready, Ready{0});
  EXPECT_EQ(q.get(1s), 42);
  ack.put(0);
  ASSERT_TRUE(p.join(20s));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(QueueWait, ReturnsDeadProcessWhenNeighbourKilledWhileWaiting) {
  // The supervised pipeline: a stage blocks on its input queue and its upstream process; the
  // upstream is SIGKILLed before it sends anything.
  mproc::Queue<int> in;
  mproc::Queue<int> never;
  mproc::Process upstream([&] { (void)never.get(30s); });
  upstream.start();
  const int pid = *upstream.pid();
  std::thread killer([pid] {
    std::this_thread::sleep_for(100ms);
    ::kill(pid, SIGKILL);
  });
  const Ready ready = mproc::wait({in, upstream}, 20s);
  killer.join();
  EXPECT_EQ(ready, Ready{1});
  ASSERT_TRUE(upstream.join(20s));
  EXPECT_EQ(upstream.exitcode(), -SIGKILL);
}

TEST(QueueWait, StageProcessNoticesDeadSiblingWhileWaiting) {
  // The same from inside a pipeline stage: the stage (a child) waits on its queue and on its
  // sibling upstream (whose sentinel it inherited), and reports what it saw through `report`.
  mproc::Queue<int> in;
  mproc::Queue<int> report;
  mproc::Queue<int> never;
  mproc::Process upstream([&] { (void)never.get(30s); });
  upstream.start();
  mproc::Process stage([&] {
    const Ready ready = mproc::wait({in, upstream}, 20s);
    report.put(ready.size() == 1 ? static_cast<int>(ready[0]) : -1);
  });
  stage.start();
  std::this_thread::sleep_for(100ms);
  upstream.kill();
  EXPECT_EQ(report.get(20s), 1);
  ASSERT_TRUE(upstream.join(20s));
  ASSERT_TRUE(stage.join(20s));
  EXPECT_EQ(stage.exitcode(), 0);
}

TEST(QueueWait, ClosedQueueHandleThrowsClosed) {
  mproc::Queue<int> q;
  q.put(1);
  q.close();
  EXPECT_THROW((void)mproc::wait({q}, 0s), mproc::Closed);
}

// Every round the controller puts one item into an empty queue, and every waiter (processes and
// threads of one process, each in mproc::wait when it can be) must see the queue ready before the
// controller takes the item back and starts the next round. A lost wake-up leaves a waiter in
// wait until its 20 s timeout: it records a failure and the round never completes. Odd rounds
// wait beside a descriptor that never becomes ready (the helper-thread path), even rounds on the
// queue alone (the waiting thread sleeps itself).
TEST(QueueWait, SeveralWaitersOnOneQueueAllSeeEveryPut) {
  constexpr int kProcs = 3;
  constexpr int kThreads = 2;                      // per waiter process
  constexpr int kWaiters = kProcs * kThreads + 2;  // + 2 threads in this process
  constexpr std::uint32_t kRounds = 1000;
  struct Board {
    std::atomic<std::uint32_t> round{0};
    std::atomic<std::uint32_t> saw{0};
    std::atomic<std::uint32_t> failures{0};
  };
  Board* b = shared_object<Board>();
  ASSERT_NE(b, nullptr);
  mproc::Queue<int> q;
  auto [never_end, never_sender] = mproc::Pipe(false);  // nothing is ever sent
  auto waiter = [&q, &never = never_end, b] {
    for (std::uint32_t r = 0; r < kRounds; ++r) {
      const Ready ready = r % 2 == 0 ? mproc::wait({q}, 20s) : mproc::wait({q, never}, 20s);
      if (ready != Ready{0}) {
        b->failures.fetch_add(1);
        return;
      }
      b->saw.fetch_add(1);
      if (!eventually([&] { return b->round.load() > r; })) {
        b->failures.fetch_add(1);
        return;
      }
    }
  };
  std::vector<std::unique_ptr<mproc::Process>> procs;
  for (int i = 0; i < kProcs; ++i) {
    procs.push_back(std::make_unique<mproc::Process>([&waiter] {
      std::vector<std::thread> ts;
      for (int k = 0; k < kThreads; ++k) ts.emplace_back(waiter);
      for (auto& t : ts) t.join();
    }));
    procs.back()->start();
  }
  std::vector<std::thread> local;
  for (int k = 0; k < 2; ++k) local.emplace_back(waiter);

  std::uint32_t completed = 0;
  for (std::uint32_t r = 0; r < kRounds; ++r) {
    if (r % 3 == 0) std::this_thread::sleep_for(200us);  // let the waiters fall asleep
    q.put(static_cast<int>(r));
    const std::uint32_t want = kWaiters * (r + 1);
    if (!eventually([&] { return b->saw.load() >= want || b->failures.load() != 0; })) break;
    if (b->failures.load() != 0) break;
    EXPECT_EQ(q.get(1s), static_cast<int>(r));
    b->round.store(r + 1);
    ++completed;
  }
  for (auto& t : local) t.join();
  for (auto& p : procs) {
    EXPECT_TRUE(p->join(60s));
    EXPECT_EQ(p->exitcode(), 0);
  }
  EXPECT_EQ(completed, kRounds);
  EXPECT_EQ(b->failures.load(), 0u);
  EXPECT_EQ(b->saw.load(), kWaiters * kRounds);
  free_shared(b);
}

// Waiters (mproc::wait, then try_get) compete with consumers blocked in get(): every item is
// taken exactly once, and each of them ends on its sentinel (the last items put, so a waiter that
// missed its wake-up for them would time out).
TEST(QueueWait, WaitersCompetingWithBlockedConsumersTakeEveryItemOnce) {
  constexpr int kWaitingProcs = 2;
  constexpr int kConsumers = 2;
  constexpr int kItems = 20000;
  struct Tally {
    std::atomic<std::uint64_t> sum{0};
    std::atomic<std::uint32_t> count{0};
    std::atomic<std::uint32_t> timeouts{0};
  };
  Tally* t = shared_object<Tally>();
  ASSERT_NE(t, nullptr);
  mproc::Queue<int> q(0, mproc::QueueOptions{.capacity = 16 * 1024});
  std::vector<std::unique_ptr<mproc::Process>> procs;
  for (int i = 0; i < kWaitingProcs; ++i) {
    procs.push_back(std::make_unique<mproc::Process>([&q, t] {
      for (;;) {
        if (mproc::wait({q}, 20s).empty()) {
          t->timeouts.fetch_add(1);
          return;
        }
        std::optional<int> v = q.try_get();  // another consumer may have taken it first
        if (!v) continue;
        if (*v < 0) return;
        t->sum.fetch_add(static_cast<std::uint64_t>(*v));
        t->count.fetch_add(1);
      }
    }));
    procs.back()->start();
  }
  for (int i = 0; i < kConsumers; ++i) {
    procs.push_back(std::make_unique<mproc::Process>([&q, t] {
      for (;;) {
        const int v = q.get(20s);
        if (v < 0) return;
        t->sum.fetch_add(static_cast<std::uint64_t>(v));
        t->count.fetch_add(1);
      }
    }));
    procs.back()->start();
  }
  std::uint64_t want = 0;
  for (int i = 1; i <= kItems; ++i) {
    q.put(i);
    want += static_cast<std::uint64_t>(i);
    if (i % 1000 == 0) std::this_thread::sleep_for(1ms);  // let the queue run empty now and then
  }
  for (int i = 0; i < kWaitingProcs + kConsumers; ++i) q.put(-1);
  for (auto& p : procs) {
    EXPECT_TRUE(p->join(10s));  // less than a wait's timeout: a waiter that slept through fails
    EXPECT_EQ(p->exitcode(), 0);
  }
  EXPECT_EQ(t->timeouts.load(), 0u);
  EXPECT_EQ(t->count.load(), static_cast<std::uint32_t>(kItems));
  EXPECT_EQ(t->sum.load(), want);
  EXPECT_TRUE(q.empty());
  free_shared(t);
}

// A waiter SIGKILLed while registered for a wake-up costs at most one extra wake: the next put
// clears its registration, later puts and gets work, and later waiters are woken as before.
TEST(QueueWait, WaiterKilledWhileRegisteredDoesNotBreakLaterPutsAndGets) {
  PeekQueue q;
  mproc::detail::QueueShared* s = q.shared();
  mproc::Process w([&] { (void)mproc::wait({q}, 30s); });
  w.start();
  // Registered: the waiter is asleep on the queue.
  ASSERT_TRUE(eventually([&] { return watch_bits(s) != 0; }));
  w.kill();
  ASSERT_TRUE(w.join(20s));
  EXPECT_EQ(w.exitcode(), -SIGKILL);
  EXPECT_NE(watch_bits(s), 0u);  // its registration is left behind ...
  q.put(1);
  EXPECT_EQ(watch_bits(s), 0u);  // ... until the next put
  for (int i = 2; i <= 1000; ++i) q.put(i);
  EXPECT_EQ(watch_bits(s), 0u);
  for (int i = 1; i <= 1000; ++i) ASSERT_EQ(q.get(1s), i);
  // A new waiter in another process is woken by a put as before.
  mproc::Queue<int> report;
  mproc::Process w2([&] {
    const Ready ready = mproc::wait({q}, 20s);
    report.put(ready == Ready{0} ? 1 : 0);
  });
  w2.start();
  ASSERT_TRUE(eventually([&] { return watch_bits(s) != 0; }));
  q.put(5);
  EXPECT_EQ(report.get(5s), 1);
  EXPECT_EQ(q.get(1s), 5);
  ASSERT_TRUE(w2.join(20s));
  EXPECT_EQ(w2.exitcode(), 0);
}

}  // namespace
