// Lock, RLock, Semaphore, Condition, Event and Barrier (see <mproc/sync.hpp>).
#include <errno.h>

#include <climits>
#include <mproc/sync.hpp>
#include <string>
#include <system_error>

#include "posix/error.hpp"
#include "posix/region.hpp"
#include "sync_state.hpp"

namespace mproc {
namespace detail {
namespace {

[[noreturn]] void throw_mutex_error(int r, const MutexState* s) {
  const std::string op = std::string(s->recursive ? "mproc::RLock" : "mproc::Lock") + "::acquire";
  if (r == EDEADLK)
    throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                            op + ": the calling thread already holds this lock");
  throw_errno(r, (op + ": cannot take the lock: pthread_mutex_lock").c_str());
}

// Acquisition results: true when acquired, false on timeout/busy; throws on misuse.
bool acquired(int r, const MutexState* s) {
  switch (r) {
    case 0:
    case EOWNERDEAD:
      return true;
    case ETIMEDOUT:
    case EBUSY:
      return false;
    default:
      throw_mutex_error(r, s);
  }
}

}  // namespace

MutexHandle::MutexHandle(bool recursive) : state_(make_mutex_state(recursive)) {}

bool MutexHandle::acquire_at(const Expiry& deadline) {
  return acquired(mutex_acquire(state_.get(), deadline), state_.get());
}

bool MutexHandle::try_acquire() { return acquired(mutex_try_acquire(state_.get()), state_.get()); }

void MutexHandle::release() {
  if (mutex_release(state_.get()) != 0)
    throw LockError("mproc: release of a lock that the calling thread does not hold");
}

bool MutexHandle::owner_died() const noexcept {
  return mutex_owned(state_.get()) && state_->owner_died != 0;
}

bool MutexHandle::is_owned() const noexcept { return mutex_owned(state_.get()); }

std::uint32_t MutexHandle::release_all() {
  MutexState* s = state_.get();
  if (!mutex_owned(s))
    throw LockError("mproc: release of a lock that the calling thread does not hold");
  std::uint32_t depth = s->depth;
  s->depth = 1;
  (void)mutex_release(s);
  return depth;
}

void MutexHandle::restore(std::uint32_t depth) {
  MutexState* s = state_.get();
  int r = mutex_acquire(s, Expiry());
  if (r != 0 && r != EOWNERDEAD) throw_mutex_error(r, s);
  s->depth = depth;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Lock, RLock

Lock::Lock() : MutexHandle(false) {}
RLock::RLock() : MutexHandle(true) {}

std::uint32_t RLock::depth() const noexcept { return is_owned() ? state_->depth : 0; }

// ---------------------------------------------------------------------------------------------
// Semaphore

Semaphore::Semaphore(int value) : Semaphore(value, max_value()) {}

Semaphore::Semaphore(int value, int bound) {
  if (value < 0) throw ValueError("mproc::Semaphore: initial value must be >= 0");
  state_ = detail::make_shared_state<detail::SemaphoreState>(
      "mproc-semaphore", static_cast<std::uint32_t>(value), static_cast<std::uint32_t>(bound));
}

bool Semaphore::try_acquire() noexcept {
  auto& value = state_->value;
  std::uint32_t v = value.load(std::memory_order_relaxed);
  while (v > 0) {
    if (value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed))
      return true;
  }
  return false;
}

bool Semaphore::acquire_at(const detail::Expiry& deadline) {
  auto* s = state_.get();
  for (;;) {
    if (try_acquire()) return true;
    if (detail::expired(deadline)) return false;
    s->waiters.fetch_add(1, std::memory_order_seq_cst);
    int r = detail::futex_wait(&s->value, 0, deadline);
    s->waiters.fetch_sub(1, std::memory_order_relaxed);
    if (r == ETIMEDOUT) return try_acquire();
  }
}

void Semaphore::release(int n) {
  if (n < 1) throw ValueError("mproc::Semaphore: release count must be >= 1");
  auto* s = state_.get();
  std::uint32_t v = s->value.load(std::memory_order_relaxed);
  do {
    if (static_cast<std::uint64_t>(v) + static_cast<std::uint64_t>(n) > s->bound)
      throw ValueError("mproc::Semaphore: semaphore or lock released too many times");
  } while (!s->value.compare_exchange_weak(v, v + static_cast<std::uint32_t>(n),
                                           std::memory_order_seq_cst, std::memory_order_relaxed));
  if (s->waiters.load(std::memory_order_seq_cst) > 0) detail::futex_wake(&s->value, n);
}

int Semaphore::get_value() const noexcept {
  return static_cast<int>(state_->value.load(std::memory_order_relaxed));
}

// ---------------------------------------------------------------------------------------------
// Event

Event::Event() : state_(detail::make_shared_state<detail::EventState>("mproc-event")) {}

bool Event::is_set() const noexcept { return state_->flag.load(std::memory_order_acquire) != 0; }

void Event::set() {
  auto* s = state_.get();
  if (s->flag.exchange(1, std::memory_order_seq_cst) == 0 &&
      s->waiters.load(std::memory_order_seq_cst) > 0)
    detail::futex_wake_all(&s->flag);
}

void Event::clear() noexcept { state_->flag.store(0, std::memory_order_relaxed); }

bool Event::wait_at(const detail::Expiry& deadline) {
  auto* s = state_.get();
  if (s->flag.load(std::memory_order_acquire) != 0) return true;
  s->waiters.fetch_add(1, std::memory_order_seq_cst);
  while (s->flag.load(std::memory_order_seq_cst) == 0) {
    if (detail::futex_wait(&s->flag, 0, deadline) == ETIMEDOUT) break;
  }
  s->waiters.fetch_sub(1, std::memory_order_relaxed);
  return s->flag.load(std::memory_order_acquire) != 0;
}

// ---------------------------------------------------------------------------------------------
// Condition

Condition::Condition() : Condition(RLock()) {}
Condition::Condition(Lock lock)
    : mutex_(static_cast<const detail::MutexHandle&>(lock)),
      state_(detail::make_shared_state<detail::ConditionState>("mproc-condition")) {}
Condition::Condition(RLock lock)
    : mutex_(static_cast<const detail::MutexHandle&>(lock)),
      state_(detail::make_shared_state<detail::ConditionState>("mproc-condition")) {}

void Condition::check_owned(const char* what) const {
  if (!mutex_.is_owned()) throw LockError(what);
}

bool Condition::wait_at(const detail::Expiry& deadline) {
  check_owned("mproc::Condition: cannot wait on un-acquired lock");
  auto* s = state_.get();
  std::uint32_t seq = s->seq.load(std::memory_order_seq_cst);
  s->waiters.fetch_add(1, std::memory_order_seq_cst);
  std::uint32_t depth = mutex_.release_all();
  int r = detail::futex_wait(&s->seq, seq, deadline);
  s->waiters.fetch_sub(1, std::memory_order_relaxed);
  mutex_.restore(depth);
  return r != ETIMEDOUT;
}

void Condition::notify(int n) {
  check_owned("mproc::Condition: cannot notify on un-acquired lock");
  if (n <= 0) return;
  auto* s = state_.get();
  s->seq.fetch_add(1, std::memory_order_seq_cst);
  if (s->waiters.load(std::memory_order_seq_cst) > 0) detail::futex_wake(&s->seq, n);
}

void Condition::notify_all() { notify(INT_MAX); }

// ---------------------------------------------------------------------------------------------
// Barrier

namespace {

constexpr auto kActionProbe = std::chrono::milliseconds(100);

// Ends generation `g` broken, under the barrier's lock: every waiter of g wakes and throws.
void break_barrier(detail::BarrierState* s) noexcept {
  std::uint32_t g = s->generation.load(std::memory_order_relaxed);
  s->broken.store(1, std::memory_order_relaxed);
  s->broken_history.fetch_or(std::uint64_t{1} << (g % 64), std::memory_order_relaxed);
  s->count = 0;
  s->generation.store(g + 1, std::memory_order_seq_cst);
  detail::futex_wake_all(&s->generation);
}

// Takes the barrier's lock; a dead previous holder (e.g. killed in the action) breaks the barrier.
void lock_barrier(detail::BarrierState* s) {
  int r = detail::mutex_acquire(&s->lock, detail::Expiry());
  if (r == EOWNERDEAD) {
    if (!s->broken.load(std::memory_order_relaxed)) break_barrier(s);
  } else if (r != 0) {
    detail::throw_errno(r,
                        "mproc::Barrier::wait: cannot take the barrier's lock: pthread_mutex_lock");
  }
}

struct BarrierGuard {
  detail::BarrierState* s;
  explicit BarrierGuard(detail::BarrierState* st) : s(st) { lock_barrier(s); }
  ~BarrierGuard() { (void)detail::mutex_release(&s->lock); }
  BarrierGuard(const BarrierGuard&) = delete;
  BarrierGuard& operator=(const BarrierGuard&) = delete;
};

[[noreturn]] void throw_broken() {
  throw BrokenBarrierError("mproc::Barrier: the barrier is broken");
}

}  // namespace

Barrier::Barrier(int parties, std::function<void()> action,
                 std::optional<std::chrono::duration<double>> timeout)
    : action_(std::move(action)), timeout_(timeout) {
  if (parties < 1) throw ValueError("mproc::Barrier: parties must be >= 1");
  state_ = detail::make_shared_state<detail::BarrierState>(
      "mproc-barrier", static_cast<std::uint32_t>(parties), static_cast<bool>(action_));
}

int Barrier::wait() {
  if (timeout_) return wait(*timeout_);
  return wait_at(detail::Expiry());
}

int Barrier::wait_at(const detail::Expiry& deadline) {
  auto* s = state_.get();
  std::uint32_t g;
  std::uint32_t index;
  {
    BarrierGuard guard(s);
    if (s->broken.load(std::memory_order_relaxed)) throw_broken();
    g = s->generation.load(std::memory_order_relaxed);
    index = s->count++;
    if (s->count == s->parties) {
      if (action_) {
        try {
          action_();
        } catch (...) {
          break_barrier(s);
          throw;
        }
      }
      s->broken_history.fetch_and(~(std::uint64_t{1} << (g % 64)), std::memory_order_relaxed);
      s->count = 0;
      s->generation.store(g + 1, std::memory_order_seq_cst);
      detail::futex_wake_all(&s->generation);
      return static_cast<int>(index);
    }
  }
  // Sleep until the generation moves on. With an action, wake now and then to find out whether the
  // process running it died (its robust lock then reports EOWNERDEAD).
  const bool probe = s->has_action.load(std::memory_order_relaxed) != 0;
  while (s->generation.load(std::memory_order_seq_cst) == g) {
    detail::Expiry slice = deadline;
    if (probe) {
      auto next = detail::Clock::now() + kActionProbe;
      if (!slice || next < *slice) slice = next;
    }
    int r = detail::futex_wait(&s->generation, g, slice);
    if (r != ETIMEDOUT || s->generation.load(std::memory_order_seq_cst) != g) continue;
    if (detail::expired(deadline)) {
      BarrierGuard guard(s);
      if (s->generation.load(std::memory_order_relaxed) == g) break_barrier(s);
      break;
    }
    int t = detail::mutex_try_acquire(&s->lock);
    if (t == 0 || t == EOWNERDEAD) {
      if (t == EOWNERDEAD && s->generation.load(std::memory_order_relaxed) == g) break_barrier(s);
      (void)detail::mutex_release(&s->lock);
    }
  }
  if (s->broken_history.load(std::memory_order_relaxed) & (std::uint64_t{1} << (g % 64)))
    throw_broken();
  return static_cast<int>(index);
}

void Barrier::reset() {
  auto* s = state_.get();
  BarrierGuard guard(s);
  if (s->count > 0) break_barrier(s);
  s->broken.store(0, std::memory_order_relaxed);
  s->count = 0;
}

void Barrier::abort() {
  auto* s = state_.get();
  BarrierGuard guard(s);
  if (!s->broken.load(std::memory_order_relaxed)) break_barrier(s);
}

int Barrier::parties() const noexcept { return static_cast<int>(state_->parties); }

int Barrier::n_waiting() const noexcept {
  auto* s = state_.get();
  if (s->broken.load(std::memory_order_relaxed)) return 0;
  return static_cast<int>(__atomic_load_n(&s->count, __ATOMIC_RELAXED));
}

bool Barrier::broken() const noexcept {
  return state_->broken.load(std::memory_order_relaxed) != 0;
}

}  // namespace mproc
