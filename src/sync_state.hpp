// sync_state.hpp — the objects of <mproc/sync.hpp> as they lie in shared memory.
//
// Standard-layout, no pointers, never copied or moved, never destroyed (the memory outlives any one
// process's handle). Every 32-bit word a process may sleep on is a lock-free std::atomic<uint32_t>
// used as a futex without FUTEX_PRIVATE_FLAG.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mproc/detail/ref.hpp>
#include <type_traits>
#include <utility>

#include "posix/futex.hpp"
#include "posix/region.hpp"

namespace mproc::detail {

inline constexpr std::size_t kCacheLine = 64;

// A robust, process-shared, error-checking pthread mutex. The kernel's robust-futex list (kept by
// glibc per thread) marks it FUTEX_OWNER_DIED and wakes a waiter when the owning thread dies, so a
// SIGKILLed holder never blocks the others. Recursion (RLock) is counted here, not by pthread, so
// that Condition can release every level at once.
struct alignas(kCacheLine) MutexState {
  pthread_mutex_t mutex;
  std::uint32_t depth = 0;       // levels held by the owner; written by the owner only
  std::uint32_t owner_died = 0;  // 1 when the current holder recovered the lock from a dead owner
  bool recursive;

  explicit MutexState(bool is_recursive) noexcept;
  MutexState(const MutexState&) = delete;
  MutexState& operator=(const MutexState&) = delete;
};

// Creates an unlocked mutex in an anonymous region of its own (Lock, RLock). Throws
// std::system_error when the region cannot be created.
//
// Lifetime: the region is unmapped when the last reference in this process goes, except when a
// thread of this process still holds the mutex then (a program error, as destroying a locked
// std::mutex). glibc keeps every robust mutex a thread holds on that thread's robust list, which
// glibc and the kernel follow at the thread's next robust lock operation and at its exit; an
// unmapped (or since reused) mutex there would crash a later, unrelated lock operation, or let the
// kernel write into whatever was mapped at that address. So such a region is parked instead: it
// stays mapped (its fd closed) until no thread of this process holds the mutex (its holder exited,
// which also marks it owner-died for other processes), and is freed by the next make_mutex_state.
Ref<MutexState> make_mutex_state(bool recursive);

// A handle's reference to the mutex at `s` in `region` (a region received from another process),
// with the same lifetime rule as make_mutex_state's (unmapped with the last reference, parked while
// a thread of this process holds it).
Ref<MutexState> adopt_mutex_state(std::shared_ptr<Region> region, MutexState* s);

// Results of mutex_acquire besides 0: EOWNERDEAD (acquired; previous owner died), ETIMEDOUT/EBUSY
// (not acquired), EDEADLK (caller already holds a non-recursive lock), kInterrupted (not acquired;
// an interruption request, mproc/interrupt.hpp), other errno values.
int mutex_acquire(MutexState* s, const Expiry& deadline) noexcept;
int mutex_try_acquire(MutexState* s) noexcept;
// 0, or EPERM when the caller does not hold the lock.
int mutex_release(MutexState* s) noexcept;
bool mutex_owned(const MutexState* s) noexcept;

struct alignas(kCacheLine) SemaphoreState {
  std::atomic<std::uint32_t> value;
  std::atomic<std::uint32_t> waiters{0};
  std::uint32_t bound;
  SemaphoreState(std::uint32_t v, std::uint32_t b) noexcept : value(v), bound(b) {}
};

struct alignas(kCacheLine) EventState {
  std::atomic<std::uint32_t> flag{0};
  std::atomic<std::uint32_t> waiters{0};
};

struct alignas(kCacheLine) ConditionState {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> waiters{0};
};

struct BarrierState {
  MutexState lock{false};
  alignas(kCacheLine) std::atomic<std::uint32_t> generation{0};  // futex word: bumps at each pass
  std::uint32_t parties;
  std::uint32_t count = 0;               // arrivals in the current generation (under lock)
  std::atomic<std::uint32_t> broken{0};  // 1 while broken
  std::atomic<std::uint32_t> has_action{0};
  std::atomic<std::uint64_t> broken_history{0};  // bit (g % 64): generation g ended broken
  explicit BarrierState(std::uint32_t n, bool action) noexcept : parties(n), has_action(action) {}
};

// A `Ref` to a new `T` at the start of a region of its own (make_shared_object's, for the handles
// of the public headers, which hold a Ref rather than a std::shared_ptr). The Ref's count owns the
// region's reference; `T` is never destroyed. Throws std::system_error when the region cannot be
// created.
template <class T, class... Args>
Ref<T> make_shared_state(const char* debug_name, Args&&... args) {
  std::shared_ptr<T> object = make_shared_object<T>(debug_name, std::forward<Args>(args)...);
  T* p = object.get();
  return Ref<T>(make_ref<std::shared_ptr<T>>(std::move(object)), p);
}

// A `Ref` to the `T` at `p` in `region` (received from another process), owning a reference to
// the region, as make_shared_state's.
template <class T>
Ref<T> adopt_shared_state(std::shared_ptr<Region> region, T* p) {
  return Ref<T>(make_ref<std::shared_ptr<Region>>(std::move(region)), p);
}

static_assert(std::is_standard_layout_v<SemaphoreState>);
static_assert(std::is_standard_layout_v<EventState>);
static_assert(std::is_standard_layout_v<ConditionState>);
static_assert(alignof(MutexState) == kCacheLine,
              "MutexState must be aligned to a cache line to prevent false sharing");

}  // namespace mproc::detail
