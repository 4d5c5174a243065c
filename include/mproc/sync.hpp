// mproc/sync.hpp — process-shared synchronisation primitives.
//
// Defines `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Condition`, `Event` and `Barrier`,
// mirroring multiprocessing.synchronize (and threading's semantics, which it follows).
//
// Every primitive is a cheap handle to an object in anonymous shared memory (a memfd mapped
// MAP_SHARED; nothing is named in /dev/shm). Copying a handle gives another reference to the same
// object. Create it before `fork` (or `Process::start`) and use it in parent and children alike;
// every primitive works between threads of one process too.
//
// Timeouts: every blocking call comes in the forms of mproc/timeout.hpp, which states their
// semantics once: `x()` waits as long as it takes, `x(Timeout)` at most a duration (any
// `std::chrono::duration`), `x_until(Deadline)` at most until a time point (any clock), and
// `try_x()` where the call has a non-blocking form. A call that times out returns false (Barrier:
// breaks and throws BrokenBarrierError). Waits run on CLOCK_MONOTONIC, and a spurious wake-up
// re-waits only for the time left.
//
// Failure model:
//   * `Lock` and `RLock` are robust: if the holder dies (even by SIGKILL) or its thread exits while
//     holding the lock, the next acquirer gets the lock, and `owner_died()` tells it so until it
//     releases. The state the lock protected may be half-updated; that is for the caller to judge.
//   * Nothing else has an owner. A process killed while waiting in `Condition`, `Event`,
//     `Semaphore` or `Barrier` leaves nothing blocked (they are built on futex sequence words, not
//     on glibc's process-shared condition variable, which hangs in that case: glibc bug 21422).
//     A process killed while running a Barrier's action breaks the barrier for the others.
//   * A process killed while holding a `Semaphore` count does not give it back (as in Python).
//   * Destroying the last handle (in this process) of a `Lock` or `RLock` that a thread of this
//     process holds is a bug, as destroying a locked `std::mutex`, but it neither crashes nor
//     corrupts anything: the lock's memory stays mapped while that thread holds it (it cannot
//     release it any more), so that the thread's other lock operations and its exit stay safe;
//     when the thread exits, the next acquirer in another process gets the lock and is told that
//     the owner died. The memory is freed by the next lock created after that.
//   * Every primitive's shared memory is reserved when it is created: running out of memory is a
//     `std::system_error` from the constructor, never a SIGBUS later.
//
// Differences from Python (see docs/from-python.md):
//   * `Lock` is owned: only the thread that acquired it may release it (as `std::mutex`); this is
//     what makes dead-owner recovery possible. Use `Semaphore(1)` where one process acquires and
//     another releases. Re-acquiring a Lock you hold throws `std::system_error`
//     (`resource_deadlock_would_occur`) instead of deadlocking.
//   * `Condition::wait` may wake spuriously (as `std::condition_variable`); use `wait_for(pred)`.
//
// Travel to another program image (spawn, forkserver): every primitive here is encodable with
// `mproc::codec`, so it can be an argument of a Process or of a Pool task under any start method.
// Its shared memory's descriptor travels beside the bytes (mproc/detail/travel.hpp); the bytes are
// a kind byte and, per piece of shared memory, the descriptor's index, the size to map and the
// object's offset (a Condition adds its lock; a Barrier its default timeout). The receiver maps
// the same object: a lock taken there is taken here, and a receiver killed while holding a Lock
// makes the next acquirer here see `owner_died()`. Each received handle maps its memory once for
// its lifetime (copies share the mapping). Outside a travel scope (a Queue, a Pipe, `to_bytes`),
// encoding throws ValueError, as Python refuses to pickle a Lock outside process spawning; the size
// pass (`encoded_size`) works anywhere. A Barrier with an action does not travel (ValueError): the
// action is a std::function of this process. Bytes or descriptors that do not describe such an
// object (an index out of range, a socket, a file too small for the object, a misaligned offset,
// another kind) are a DecodeError naming the type, never a SIGBUS.
//
// Headers: the locks meet the standard's Lockable requirements by their member names alone, so
// this header does not include <mutex>: a file that uses `std::scoped_lock` or `std::unique_lock`
// with them includes <mutex> itself (likewise <functional> for anything of it besides
// std::function). A handle holds its shared object through `detail::Ref` (mproc/detail/ref.hpp)
// rather than std::shared_ptr, which would bring <memory> into every file that includes mproc
// (docs/design.md, "Header cost").
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/timeout.hpp>
#include <optional>

namespace mproc {

class Writer;
class Reader;
template <class T, class Enable>
struct codec;
class Lock;
class RLock;
class Semaphore;
class BoundedSemaphore;
class Condition;
class Event;
class Barrier;

namespace detail {
struct MutexState;
struct SemaphoreState;
struct EventState;
struct ConditionState;
struct BarrierState;

// What Lock and RLock share: a robust, process-shared mutex in shared memory, and the acquire /
// Lockable forms both expose (documented on Lock). Every form forwards to `acquire_at`.
class MPROC_API MutexHandle {
 public:
  void acquire() { (void)acquire_at(Expiry()); }
  // Exactly a bool: `acquire(2)` is a compile error, not `acquire(true)`.
  template <std::same_as<bool> Block>
  [[nodiscard]] bool acquire(Block block) {
    return block ? acquire_at(Expiry()) : try_acquire();
  }
  [[nodiscard]] bool acquire(Timeout timeout) { return acquire_at(timeout.when()); }
  [[nodiscard]] bool acquire_until(Deadline deadline) { return acquire_at(deadline.when()); }
  // Takes the lock only if that needs no waiting; true when acquired.
  bool try_acquire();
  void release();
  [[nodiscard]] bool owner_died() const noexcept;
  [[nodiscard]] bool is_owned() const noexcept;

  void lock() { acquire(); }
  [[nodiscard]] bool try_lock() { return try_acquire(); }
  // TimedLockable: std::unique_lock and std::timed_mutex's users pass a duration / a time point.
  [[nodiscard]] bool try_lock_for(Timeout timeout) { return acquire_at(timeout.when()); }
  [[nodiscard]] bool try_lock_until(Deadline deadline) { return acquire_at(deadline.when()); }
  void unlock() { release(); }

  // The one implementation of every blocking form: blocks until acquired or `deadline` passes
  // (nullopt: no limit); true when acquired. Not exposed by Lock and RLock.
  bool acquire_at(const Expiry& deadline);
  // Condition support: releases every level the caller holds, returns how many; `restore` takes
  // the lock again and reinstates the count.
  std::uint32_t release_all();
  void restore(std::uint32_t depth);
  // The shared mutex (for the codecs of the handles that hold one).
  const Ref<MutexState>& state_ref() const noexcept { return state_; }

 protected:
  explicit MutexHandle(bool recursive);
  explicit MutexHandle(Ref<MutexState> state) noexcept : state_(std::move(state)) {}
  Ref<MutexState> state_;
};
}  // namespace detail

// A non-recursive, owned, robust lock.
//
// Thread safety: safe. Process safety: safe across fork.
// Meets Lockable and TimedLockable, so `std::scoped_lock`, `std::unique_lock` and `Condition` work.
//
//   mproc::Lock lock;
//   mproc::Process p([&] { std::scoped_lock g(lock); ++shared->counter; });
//
// Mirrors multiprocessing.Lock (see the header comment for the ownership difference).
class MPROC_API Lock : private detail::MutexHandle {
 public:
  // Creates an unlocked lock in anonymous shared memory. Throws std::system_error if the shared
  // memory cannot be created.
  Lock();

  // acquire(): blocks until the lock is acquired. Mirrors Lock.acquire().
  // acquire(false), try_acquire(): take the lock only if it is free now; true when taken.
  //   Mirrors Lock.acquire(block=False). (`acquire(true)` is acquire(); the argument must be a
  //   bool: an int is a compile error, since it would otherwise read as a timeout in seconds.)
  // acquire(Timeout), acquire_until(Deadline): block at most that long (timeout.hpp); true when
  //   acquired. Mirrors Lock.acquire(timeout=...).
  // Every form throws std::system_error(resource_deadlock_would_occur) if the calling thread
  // already holds the lock.
  using MutexHandle::acquire;
  using MutexHandle::acquire_until;
  using MutexHandle::try_acquire;

  // Releases the lock. Throws LockError if the calling thread does not hold it.
  // Mirrors Lock.release().
  using MutexHandle::release;

  // True while the caller holds the lock and took it over from an owner that died holding it.
  // Cleared by release().
  using MutexHandle::owner_died;
  // True when the calling thread holds the lock.
  using MutexHandle::is_owned;

  // Lockable / TimedLockable: lock(), try_lock(), try_lock_for(Timeout),
  // try_lock_until(Deadline), unlock() (std::unique_lock passes its duration or time point).
  using MutexHandle::lock;
  using MutexHandle::try_lock;
  using MutexHandle::try_lock_for;
  using MutexHandle::try_lock_until;
  using MutexHandle::unlock;

 private:
  friend class Condition;
  friend struct codec<Lock, void>;
  explicit Lock(detail::Ref<detail::MutexState> state) noexcept : MutexHandle(std::move(state)) {}
};

// A recursive, owned, robust lock: the holder may acquire it again; it is free when released as
// many times as acquired.
//
// Thread safety: safe. Process safety: safe across fork.
// Mirrors multiprocessing.RLock: release by a thread that does not hold it throws LockError.
class MPROC_API RLock : private detail::MutexHandle {
 public:
  RLock();

  // As Lock's, except that the holder may acquire again (each level must be released).
  using MutexHandle::acquire;
  using MutexHandle::acquire_until;
  using MutexHandle::try_acquire;
  // Releases one level. Throws LockError if the calling thread does not hold the lock.
  using MutexHandle::is_owned;
  using MutexHandle::owner_died;
  using MutexHandle::release;
  // How many times the calling thread holds the lock (0 if it does not).
  [[nodiscard]] std::uint32_t depth() const noexcept;

  using MutexHandle::lock;
  using MutexHandle::try_lock;
  using MutexHandle::try_lock_for;
  using MutexHandle::try_lock_until;
  using MutexHandle::unlock;

 private:
  friend class Condition;
  friend struct codec<RLock, void>;
  explicit RLock(detail::Ref<detail::MutexState> state) noexcept : MutexHandle(std::move(state)) {}
};

// A counting semaphore. Not owned: any process may release.
//
// Thread safety: safe. Process safety: safe across fork.
// Memory ordering: release() happens-before the acquire() it satisfies.
// Mirrors multiprocessing.Semaphore.
class MPROC_API Semaphore {
 public:
  // Throws ValueError if `value` is negative or above `max_value()`.
  explicit Semaphore(int value = 1);

  // acquire(): blocks until the count is above zero, then decrements it.
  //   Mirrors Semaphore.acquire().
  // acquire(false), try_acquire(): decrement only if that needs no waiting; true when done.
  //   Mirrors Semaphore.acquire(block=False). The argument must be a bool (an int does not
  //   compile).
  // acquire(Timeout), acquire_until(Deadline): block at most that long (timeout.hpp); true when
  //   acquired. Mirrors Semaphore.acquire(timeout=...).
  void acquire() { (void)acquire_at(detail::Expiry()); }
  template <std::same_as<bool> Block>
  [[nodiscard]] bool acquire(Block block) {
    return block ? acquire_at(detail::Expiry()) : try_acquire();
  }
  [[nodiscard]] bool acquire(Timeout timeout) { return acquire_at(timeout.when()); }
  [[nodiscard]] bool acquire_until(Deadline deadline) { return acquire_at(deadline.when()); }
  bool try_acquire() noexcept;
  // Adds `n` (>= 1) to the count and wakes that many waiters. Throws ValueError if the count would
  // exceed the maximum (for BoundedSemaphore: its initial value). Mirrors Semaphore.release(n).
  void release(int n = 1);
  // The current count (a snapshot). Mirrors Semaphore.get_value().
  [[nodiscard]] int get_value() const noexcept;

  void lock() { acquire(); }
  [[nodiscard]] bool try_lock() { return try_acquire(); }
  void unlock() { release(); }

  static constexpr int max_value() noexcept { return 0x7fffffff; }

 protected:
  Semaphore(int value, int bound);
  explicit Semaphore(detail::Ref<detail::SemaphoreState> state) noexcept
      : state_(std::move(state)) {}

 private:
  friend struct codec<Semaphore, void>;
  friend struct codec<BoundedSemaphore, void>;
  // The one implementation of the blocking forms (nullopt: no limit).
  bool acquire_at(const detail::Expiry& deadline);

  detail::Ref<detail::SemaphoreState> state_;
};

// A semaphore that may not be released above its initial value: doing so throws ValueError.
// Mirrors multiprocessing.BoundedSemaphore.
class MPROC_API BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(int value = 1) : Semaphore(value, value) {}

 private:
  friend struct codec<BoundedSemaphore, void>;
  explicit BoundedSemaphore(detail::Ref<detail::SemaphoreState> state) noexcept
      : Semaphore(std::move(state)) {}
};

// A condition variable bound to a Lock or RLock (an RLock of its own by default).
//
// `Condition` is itself Lockable (it forwards to its lock), so the Python idiom
// `with cond: cond.wait_for(pred)` reads `std::scoped_lock g(cond); cond.wait_for(pred);`.
// `wait` and `notify` throw LockError if the caller does not hold the lock.
// `wait` may return spuriously (as std::condition_variable); `wait_for(pred)` never does.
// A waiter killed while waiting leaves no trace: notifications go to the live waiters.
//
// Thread safety: safe. Process safety: safe across fork.
// Mirrors multiprocessing.Condition.
class MPROC_API Condition {
 public:
  Condition();                     // with a new RLock
  explicit Condition(Lock lock);   // shares `lock`
  explicit Condition(RLock lock);  // shares `lock`

  // Take and release the lock, with the forms of Lock::acquire: acquire() blocks,
  // acquire(Timeout) and acquire_until(Deadline) return false when the time passed first.
  // Mirror Condition.acquire() and Condition.release().
  void acquire() { (void)mutex_.acquire_at(detail::Expiry()); }
  [[nodiscard]] bool acquire(Timeout timeout) { return mutex_.acquire_at(timeout.when()); }
  [[nodiscard]] bool acquire_until(Deadline deadline) { return mutex_.acquire_at(deadline.when()); }
  void release() { mutex_.release(); }
  void lock() { acquire(); }
  [[nodiscard]] bool try_lock() { return mutex_.try_acquire(); }
  void unlock() { release(); }

  // Releases the lock, blocks until notified (or spuriously woken), takes the lock again.
  // Mirrors Condition.wait().
  void wait() { (void)wait_at(detail::Expiry()); }
  // As wait(), at most a duration / until a time point (timeout.hpp); false when the time passed
  // first (the lock is taken again either way). Mirrors Condition.wait(timeout).
  [[nodiscard]] bool wait(Timeout timeout) { return wait_at(timeout.when()); }
  [[nodiscard]] bool wait_until(Deadline deadline) { return wait_at(deadline.when()); }
  // Waits until `pred()` is true (evaluated under the lock, first before any wait); returns its
  // last value: false only when the timeout or deadline passed first.
  // Mirrors Condition.wait_for(predicate, timeout).
  template <class Pred>
  bool wait_for(Pred pred) {
    return wait_for_at(pred, detail::Expiry());
  }
  template <class Pred>
  bool wait_for(Pred pred, Timeout timeout) {
    return wait_for_at(pred, timeout.when());
  }
  template <class Pred>
  bool wait_for_until(Pred pred, Deadline deadline) {
    return wait_for_at(pred, deadline.when());
  }

  // Wakes up to `n` waiters. Mirrors Condition.notify(n).
  void notify(int n = 1);
  // Wakes every waiter. Mirrors Condition.notify_all().
  void notify_all();

 private:
  friend struct codec<Condition, void>;
  struct Mutex : detail::MutexHandle {
    explicit Mutex(const detail::MutexHandle& h) : detail::MutexHandle(h) {}
    explicit Mutex(detail::Ref<detail::MutexState> state) noexcept
        : detail::MutexHandle(std::move(state)) {}
  };
  Condition(Mutex mutex, detail::Ref<detail::ConditionState> state) noexcept;
  // The implementations of the blocking forms (nullopt: no limit).
  bool wait_at(const detail::Expiry& deadline);
  template <class Pred>
  bool wait_for_at(Pred& pred, const detail::Expiry& deadline) {
    bool result = static_cast<bool>(pred());
    while (!result) {
      if (detail::expired(deadline)) break;
      (void)wait_at(deadline);
      result = static_cast<bool>(pred());
    }
    return result;
  }
  void check_owned(const char* what) const;
  Mutex mutex_;
  detail::Ref<detail::ConditionState> state_;
};

// A boolean flag processes can wait on.
//
// Thread safety: safe. Process safety: safe across fork.
// Memory ordering: set() happens-before every wait() that returns because of it.
// Mirrors multiprocessing.Event.
class MPROC_API Event {
 public:
  Event();

  [[nodiscard]] bool is_set() const noexcept;
  // Sets the flag and wakes every waiter. No system call when nobody waits.
  void set();
  void clear() noexcept;
  // Blocks until the flag is set. Mirrors Event.wait().
  void wait() { (void)wait_at(detail::Expiry()); }
  // Blocks at most a duration / until a time point (timeout.hpp); returns the flag (false when
  // the time passed first). Mirrors Event.wait(timeout).
  [[nodiscard]] bool wait(Timeout timeout) { return wait_at(timeout.when()); }
  [[nodiscard]] bool wait_until(Deadline deadline) { return wait_at(deadline.when()); }

 private:
  friend struct codec<Event, void>;
  explicit Event(detail::Ref<detail::EventState> state) noexcept : state_(std::move(state)) {}
  bool wait_at(const detail::Expiry& deadline);  // nullopt: no limit

  detail::Ref<detail::EventState> state_;
};

// A barrier for a fixed number of parties, reusable pass after pass.
//
// `wait` blocks until `parties` callers have arrived, then releases them all and returns each a
// distinct arrival index in [0, parties). Before the release, the last arrival runs `action` (if
// any) in its own process. The barrier breaks — every waiter and every later caller gets
// BrokenBarrierError until reset() — when it is aborted, when a wait times out, when the action
// throws (the exception propagates to the caller that ran it), or when the process running the
// action dies.
//
// The action is a callable held by each handle (copied into forked children); it runs in whichever
// process arrives last.
//
// Thread safety: safe. Process safety: safe across fork.
// Mirrors multiprocessing.Barrier (threading.Barrier).
class MPROC_API Barrier {
 public:
  // Throws ValueError if `parties` < 1.
  explicit Barrier(int parties, std::function<void()> action = {},
                   std::optional<std::chrono::duration<double>> timeout = std::nullopt);

  // Blocks until all parties arrive; the default timeout (if any) applies. Returns this
  // caller's arrival index. Throws BrokenBarrierError if the barrier is or becomes broken.
  // Mirrors Barrier.wait().
  int wait();
  // As wait(), at most a duration / until a time point (timeout.hpp) instead of the default
  // timeout. When the time passes first the barrier breaks and every waiter, this one included,
  // gets BrokenBarrierError. Mirrors Barrier.wait(timeout).
  int wait(Timeout timeout) { return wait_at(timeout.when()); }
  int wait_until(Deadline deadline) { return wait_at(deadline.when()); }

  // Returns the barrier to its empty state; current waiters get BrokenBarrierError.
  void reset();
  // Breaks the barrier: current and later waiters get BrokenBarrierError until reset().
  void abort();

  [[nodiscard]] int parties() const noexcept;
  [[nodiscard]] int n_waiting() const noexcept;
  [[nodiscard]] bool broken() const noexcept;

 private:
  friend struct codec<Barrier, void>;
  Barrier(detail::Ref<detail::BarrierState> state,
          std::optional<std::chrono::duration<double>> timeout) noexcept;
  int wait_at(const detail::Expiry& deadline);  // nullopt: no limit

  detail::Ref<detail::BarrierState> state_;
  std::function<void()> action_;
  std::optional<std::chrono::duration<double>> timeout_;
};

// The codecs of the primitives (see "Travel" in the header comment). Encoding adds descriptors to
// the calling thread's TravelOut scope and throws ValueError outside one; decoding takes them from
// its TravelIn scope and throws DecodeError for anything that does not describe such an object.
// `size` needs no scope. Defined in src/sync.cpp.
#define MPROC_HANDLE_CODEC_(T)                 \
  template <>                                  \
  struct MPROC_API codec<T, void> {            \
    static std::size_t size(const T& v);       \
    static void encode(Writer& w, const T& v); \
    static T decode(Reader& r);                \
  }
MPROC_HANDLE_CODEC_(Lock);
MPROC_HANDLE_CODEC_(RLock);
MPROC_HANDLE_CODEC_(Semaphore);
MPROC_HANDLE_CODEC_(BoundedSemaphore);
MPROC_HANDLE_CODEC_(Condition);
MPROC_HANDLE_CODEC_(Event);
MPROC_HANDLE_CODEC_(Barrier);
#undef MPROC_HANDLE_CODEC_

}  // namespace mproc
