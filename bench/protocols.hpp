// bench/protocols.hpp — the protocols each group measures, written once for every implementation.
//
// mproc's workloads and the raw-syscall floors instantiate the same templates with different lock,
// event and queue types, so the rows of a group differ only in the primitive. bench/python/ follows
// the same steps line for line.
#pragma once

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "harness.hpp"

namespace mproc_bench {

// lock.uncontended: one process takes and releases a free lock `n` times.
template <class Lockable>
void lock_uncontended(Lockable& lock, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    lock.lock();
    lock.unlock();
  }
}

// lock.handoff: strict alternation between two processes through a lock.
//
// `turns` counts the hand-offs done so far and says whose turn it is: side 0 may advance it when it
// is even, side 1 when it is odd. Each side loops { lock; read turns; if it is its turn, advance
// it; unlock } until `turns` reaches `limit`, so every hand-off makes the lock (and the cache line
// it protects) move to the other process, and the side that waits keeps taking the lock to look.
// One op = one hand-off (`limit` of them per repetition, split between the two sides).
struct Turns {
  alignas(64) std::atomic<std::uint64_t> turns{0};  // read and written only under the lock
};

template <class Lockable>
void lock_handoff_side(Lockable& lock, Turns& t, unsigned side, std::uint64_t limit) {
  for (;;) {
    lock.lock();
    const std::uint64_t c = t.turns.load(std::memory_order_relaxed);
    if (c >= limit) {
      lock.unlock();
      return;
    }
    const bool mine = c % 2 == side;
    if (mine) t.turns.store(c + 1, std::memory_order_relaxed);
    lock.unlock();
    if (!mine) sched_yield();
  }
}

// event.pingpong: two events, one round trip per op.
//   A: set e1; wait e2; clear e2          B: wait e1; clear e1; set e2
// B clears e1 before it sets e2, and A clears e2 before it sets e1 again, so no round is lost.
template <class Event>
void event_pingpong_a(Event& e1, Event& e2, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    e1.set();
    e2.wait();
    e2.clear();
  }
}

template <class Event>
void event_pingpong_b(Event& e1, Event& e2, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    e1.wait();
    e1.clear();
    e2.set();
  }
}

// Throws when a protocol ended in a state it cannot end in (a broken primitive, not slowness).
inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(what);
}

// ---------------------------------------------------------------------------------------- queues
//
// The queue protocols take a `Channel`: anything with
//   void put(const Msg&);                 Msg get();
//   std::size_t put_many(std::span<const Msg>);  std::vector<Msg> get_many(std::size_t max);
// (mproc::Queue<Msg> as it is; the floors wrap a pipe, bench/anchors_boost.cpp a Boost queue).
// One op is one message. The consumer checks what it gets (order, count), so a broken queue
// fails the row instead of timing it.

// The 64-byte message: a sequence number, the producer's index and padding, trivially copyable.
struct Msg64 {
  std::uint64_t seq;
  std::uint32_t producer;
  std::array<std::byte, 52> pad;
};
static_assert(sizeof(Msg64) == 64 && std::is_trivially_copyable_v<Msg64>,
              "Msg64 must be 64 trivially copyable bytes");

// Messages per put_many / get_many in the batch protocols.
inline constexpr std::size_t kBatch = 256;

// The message size of queue.spsc_64KiB (its rows and its group's bytes per op).
inline constexpr std::size_t kBulkBytes = 64 * 1024;

// queue.spsc_64B: the producer puts messages 0 ... n-1; the consumer gets n and checks the order.
template <class Channel>
void spsc_produce(Channel& ch, std::uint64_t n) {
  Msg64 m{};
  for (std::uint64_t i = 0; i < n; ++i) {
    m.seq = i;
    ch.put(m);
  }
}

template <class Channel>
void spsc_consume(Channel& ch, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    const Msg64 m = ch.get();
    check(m.seq == i, "spsc: a message came out of order");
  }
}

// queue.spsc_64B_batch: the same n messages, in batches of up to kBatch per put_many / get_many
// (a batch the consumer gets may be shorter: whatever was there, at least one).
template <class Channel>
void spsc_produce_batch(Channel& ch, std::uint64_t n) {
  std::vector<Msg64> batch(kBatch);
  for (std::uint64_t i = 0; i < n;) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, n - i));
    for (std::size_t j = 0; j < k; ++j) batch[j].seq = i + j;
    const std::size_t put = ch.put_many(std::span<const Msg64>(batch.data(), k));
    check(put == k, "spsc batch: put_many put fewer messages than asked");
    i += k;
  }
}

template <class Channel>
void spsc_consume_batch(Channel& ch, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n;) {
    const std::size_t max = static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, n - i));
    const std::vector<Msg64> got = ch.get_many(max);
    check(!got.empty() && got.size() <= max, "spsc batch: get_many returned a wrong count");
    for (const Msg64& m : got) check(m.seq == i++, "spsc batch: a message came out of order");
  }
}

// queue.mpsc_64B: producer `p` of `producers` puts its share of n (harness.hpp `share`), numbered
// from 0; the single consumer gets all n and checks each producer's order.
template <class Channel>
void mpsc_produce(Channel& ch, unsigned p, unsigned producers, std::uint64_t n) {
  Msg64 m{};
  m.producer = p;
  const std::uint64_t mine = share(n, p, producers);
  for (std::uint64_t i = 0; i < mine; ++i) {
    m.seq = i;
    ch.put(m);
  }
}

template <class Channel>
void mpsc_consume(Channel& ch, unsigned producers, std::uint64_t n) {
  std::array<std::uint64_t, 64> next{};
  check(producers <= next.size(), "mpsc: too many producers");
  for (std::uint64_t i = 0; i < n; ++i) {
    const Msg64 m = ch.get();
    check(m.producer < producers && m.seq == next[m.producer]++,
          "mpsc: a producer's messages came out of order");
  }
}

// queue.spmc_64B: the single producer puts n messages; consumer `c` of `consumers` gets its share
// (harness.hpp `share`; together they get all n) and checks that what it gets goes up.
template <class Channel>
void spmc_consume(Channel& ch, unsigned c, unsigned consumers, std::uint64_t n) {
  const std::uint64_t mine = share(n, c, consumers);
  std::uint64_t last = 0;
  for (std::uint64_t i = 0; i < mine; ++i) {
    const Msg64 m = ch.get();
    check(i == 0 || m.seq > last, "spmc: messages came out of order");
    last = m.seq;
  }
}

// queue.spsc_64KiB: the producer puts one buffer of `bytes` n times, its first 8 bytes numbering
// it; the consumer gets n buffers and checks their size and number.
template <class Channel>
void bulk_produce(Channel& ch, std::vector<std::byte>& buf, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    std::memcpy(buf.data(), &i, sizeof i);
    ch.put(buf);
  }
}

template <class Channel>
void bulk_consume(Channel& ch, std::size_t bytes, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::vector<std::byte> v = ch.get();
    std::uint64_t seq = 0;
    check(v.size() == bytes, "bulk: a message of the wrong size");
    std::memcpy(&seq, v.data(), sizeof seq);
    check(seq == i, "bulk: a message came out of order");
  }
}

// queue.roundtrip: A puts a message on q1 and gets the answer from q2; B gets from q1 and puts
// what it got on q2. One op = one round trip (two messages).
template <class Channel>
void roundtrip_a(Channel& q1, Channel& q2, std::uint64_t n) {
  Msg64 m{};
  for (std::uint64_t i = 0; i < n; ++i) {
    m.seq = i;
    q1.put(m);
    m = q2.get();
    check(m.seq == i, "roundtrip: the answer is not the message sent");
  }
}

template <class Channel>
void roundtrip_b(Channel& q1, Channel& q2, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) q2.put(q1.get());
}

// pipe.roundtrip: A sends a value on its end and receives it back; B receives and sends it back.
// `Conn` has `void send(std::uint64_t)` and `std::uint64_t recv()`.
template <class Conn>
void pipe_roundtrip_a(Conn& a, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    a.send(i);
    check(a.recv() == i, "pipe roundtrip: the answer is not the value sent");
  }
}

template <class Conn>
void pipe_roundtrip_b(Conn& b, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) b.send(b.recv());
}

// ------------------------------------------------------------------------------------------ pool
//
// Rows whose natural unit of work is bigger than one op (a map of 10^6 items, a batch of 64
// CPU-bound tasks) or whose op leaves work behind that must not be timed (imap_first_result) run
// under `scaled_runner`: each call of `once()` does `ops_per_call` ops and returns the seconds to
// count for them; run(n) makes ceil(n / ops_per_call) calls, at most `max_calls`, and returns the
// counted time scaled to n ops, so the harness's time per op is the mean over the calls made.

template <class F>
std::unique_ptr<Runner> scaled_runner(std::uint64_t ops_per_call, std::uint64_t max_calls, F once) {
  class ScaledRunner final : public Runner {
   public:
    ScaledRunner(std::uint64_t per, std::uint64_t cap, F f)
        : per_(per), cap_(cap), once_(std::move(f)) {}
    double run(std::uint64_t iters) override {
      const std::uint64_t calls = std::clamp<std::uint64_t>((iters + per_ - 1) / per_, 1, cap_);
      double t = 0;
      for (std::uint64_t i = 0; i < calls; ++i) t += once_();
      return t * static_cast<double>(iters) / static_cast<double>(calls * per_);
    }

   private:
    std::uint64_t per_;
    std::uint64_t cap_;
    F once_;
  };
  return std::make_unique<ScaledRunner>(ops_per_call, max_calls, std::move(once));
}

// The CPUs this process may use (its affinity mask), at least 1.
inline unsigned usable_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
}

// pool.cpu_bound: one task burns `ns` nanoseconds of the CPU time of the thread that runs it (a
// xorshift loop that reads CLOCK_THREAD_CPUTIME_ID every 1024 steps), so every task lasts the same
// in C++ and in Python whatever the compiler makes of the loop. A batch is kCpuTasks tasks.
inline constexpr std::uint64_t kCpuTasks = 64;
inline constexpr std::int64_t kCpuTaskNs = 5'000'000;
// pool.cpu_bound_uneven: the CPU times of its batch cycle through these (387 ms in all).
inline constexpr std::array<std::int64_t, 5> kCpuUnevenNs{1'000'000, 2'000'000, 4'000'000,
                                                          8'000'000, 16'000'000};

// The batch of pool.cpu_bound: kCpuTasks tasks of kCpuTaskNs each.
inline std::vector<std::int64_t> cpu_bound_tasks() {
  return std::vector<std::int64_t>(kCpuTasks, kCpuTaskNs);
}

// The batch of pool.cpu_bound_uneven: kCpuTasks tasks whose CPU times cycle through kCpuUnevenNs.
inline std::vector<std::int64_t> cpu_bound_uneven_tasks() {
  std::vector<std::int64_t> tasks(kCpuTasks);
  for (std::size_t i = 0; i < tasks.size(); ++i) tasks[i] = kCpuUnevenNs[i % kCpuUnevenNs.size()];
  return tasks;
}

inline std::uint64_t burn_cpu(std::int64_t ns) noexcept {
  auto now = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  };
  const std::int64_t end = now() + ns;
  std::uint64_t x = 0x9E3779B97F4A7C15u;
  do {
    for (int i = 0; i < 1024; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  } while (now() < end);
  return x;
}

}  // namespace mproc_bench
