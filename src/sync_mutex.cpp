// The robust mutex underneath Lock, RLock, Condition and Barrier.
#include <errno.h>

#include <atomic>
#include <mproc/interrupt.hpp>
#include <new>

#include "posix/region.hpp"
#include "posix/robust_mutex.hpp"
#include "posix/thread_id.hpp"
#include "sync_state.hpp"

namespace mproc::detail {
namespace {

int finish(MutexState* s, int r) noexcept {
  if (r == 0) {
    s->owner_died = 0;
    s->depth = 1;
  } else if (r == EOWNERDEAD) {
    robust_mutex_make_consistent(s->mutex);
    s->owner_died = 1;
    s->depth = 1;
  }
  return r;
}

}  // namespace

MutexState::MutexState(bool is_recursive) noexcept : recursive(is_recursive) {
  robust_mutex_init(mutex);
}

// The lock word carries the owner's thread id, so ownership is a single relaxed load.
bool mutex_owned(const MutexState* s) noexcept {
  return robust_mutex_word(s->mutex).owner == this_thread_id();
}

// ---------------------------------------------------------------------------------------------
// Regions of mutexes whose last handle went while a thread of this process held them (see
// make_mutex_state). A lock-free stack: parking and draining take no lock, so a fork at any moment
// leaves the child a usable list (in the child no thread holds what the parent's threads held, so
// the child's first drain frees them all).

namespace {

// True while a thread of this process holds `s`: the lock word carries the owner's thread id
// (cleared by the kernel, with FUTEX_OWNER_DIED set, when the owner dies), and that id is a live
// thread of this process.
bool held_in_this_process(const MutexState* s) noexcept {
  const pid_t owner = robust_mutex_word(s->mutex).owner;
  if (owner == 0) return false;
  if (owner == this_thread_id()) return true;
  return thread_alive_in_this_process(owner);
}

struct Parked {
  std::shared_ptr<Region> region;
  const MutexState* mutex;
  Parked* next;
};

// Never destroyed, and never unmapped at exit: a thread may hold a parked mutex until the end.
std::atomic<Parked*> g_parked{nullptr};

void push_parked(Parked* p) noexcept {
  Parked* head = g_parked.load(std::memory_order_relaxed);
  do {
    p->next = head;
  } while (!g_parked.compare_exchange_weak(head, p, std::memory_order_release,
                                           std::memory_order_relaxed));
}

// Frees the parked regions no thread of this process holds any more.
void drain_parked() noexcept {
  Parked* p = g_parked.exchange(nullptr, std::memory_order_acquire);
  while (p) {
    Parked* next = p->next;
    if (held_in_this_process(p->mutex)) {
      push_parked(p);
    } else {
      delete p;  // unmaps
    }
    p = next;
  }
}

// What a mutex's Ref owns: its region, unmapped when the last Ref goes, or parked while a thread of
// this process holds the mutex.
class MutexRegion {
 public:
  MutexRegion(std::shared_ptr<Region> region, const MutexState* state) noexcept
      : region_(std::move(region)), state_(state) {}
  MutexRegion(const MutexRegion&) = delete;
  MutexRegion& operator=(const MutexRegion&) = delete;
  ~MutexRegion() {
    if (held_in_this_process(state_)) {
      region_->close_fd();  // only the mapping must stay
      if (auto* p = new (std::nothrow) Parked{region_, state_, nullptr}) {
        push_parked(p);
      } else {
        region_->abandon();  // no memory for the list: leave it mapped for good
      }
    }
  }

 private:
  std::shared_ptr<Region> region_;
  const MutexState* state_;
};

}  // namespace

Ref<MutexState> make_mutex_state(bool recursive) {
  if (g_parked.load(std::memory_order_relaxed) != nullptr) drain_parked();
  std::error_code ec;
  const char* failed_call = "";
  auto region = Region::create(sizeof(MutexState), "mproc-lock", ec, failed_call);
  if (!region) throw_region_error(ec, failed_call, "mproc-lock", sizeof(MutexState));
  auto* s = ::new (region->data()) MutexState(recursive);
  return Ref<MutexState>(make_ref<MutexRegion>(std::move(region), s), s);
}

Ref<MutexState> adopt_mutex_state(std::shared_ptr<Region> region, MutexState* s) {
  if (g_parked.load(std::memory_order_relaxed) != nullptr) drain_parked();
  return Ref<MutexState>(make_ref<MutexRegion>(std::move(region), s), s);
}

// A blocked acquirer sleeps at most this long before it looks at the lock again. The kernel wakes
// a waiter when a robust lock's owner dies, and also when a woken waiter dies before taking a lock
// its owner released; but when an owner dies and the waiter woken for it dies too before taking
// the lock, nobody is woken. With this re-check such a chain of deaths delays the other waiters by
// at most this much instead of blocking them until someone else touches the lock.
//
// While interruption is armed (<mproc/interrupt.hpp>) the slices are kInterruptSlice, and before
// each a pending request ends the wait with kInterrupted. pthread_mutex_clocklock either takes the
// lock or, at the slice's end, leaves it untouched: an interrupted acquisition holds nothing, and a
// lock taken at the last moment is kept (the acquisition succeeded).
constexpr auto kRecheck = std::chrono::milliseconds(100);

int mutex_acquire(MutexState* s, const Expiry& deadline) noexcept {
  if (s->recursive && mutex_owned(s)) {
    ++s->depth;
    return 0;
  }
  int r = robust_mutex_trylock(s->mutex);  // the uncontended case: no clock read
  if (r == EBUSY && mutex_owned(s)) r = EDEADLK;
  while (r == EBUSY) {
    const bool armed = interrupts_armed();
    if (armed && interrupt_pending()) return kInterrupted;
    const Clock::time_point slice_end =
        Clock::now() + (armed ? std::chrono::duration_cast<Clock::duration>(kInterruptSlice)
                              : std::chrono::duration_cast<Clock::duration>(kRecheck));
    const bool last = deadline && *deadline <= slice_end;
    r = robust_mutex_lock_until(s->mutex, last ? *deadline : slice_end);
    if (r == ETIMEDOUT && !last) r = EBUSY;  // not our deadline yet: look again
  }
  return finish(s, r);
}

int mutex_try_acquire(MutexState* s) noexcept {
  if (s->recursive && mutex_owned(s)) {
    ++s->depth;
    return 0;
  }
  int r = robust_mutex_trylock(s->mutex);
  if (r == EBUSY && mutex_owned(s)) r = EDEADLK;
  return finish(s, r);
}

int mutex_release(MutexState* s) noexcept {
  if (s->recursive) {
    if (!mutex_owned(s)) return EPERM;
    if (s->depth > 1) {
      --s->depth;
      return 0;
    }
  }
  // pthread checks ownership itself (EPERM) for robust mutexes; depth and owner_died are reset by
  // the next acquirer, so nothing here touches the state of a lock the caller does not hold.
  return robust_mutex_unlock(s->mutex);
}

}  // namespace mproc::detail
