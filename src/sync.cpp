// Lock, RLock, Semaphore, Condition, Event and Barrier (see <mproc/sync.hpp>).
#include <errno.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/sync.hpp>
#include <optional>
#include <string>
#include <system_error>

#include "handle_travel.hpp"
#include "posix/error.hpp"
#include "posix/fd_io.hpp"
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

// Acquisition results: true when acquired, false on timeout/busy; throws on misuse, and Interrupted
// when an interruption request ended the wait (nothing is held then).
bool acquired(int r, const MutexState* s) {
  switch (r) {
    case 0:
    case EOWNERDEAD:
      return true;
    case ETIMEDOUT:
    case EBUSY:
      return false;
    case kInterrupted:
      throw_interrupted(s->recursive ? "mproc::RLock::acquire" : "mproc::Lock::acquire");
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

// Condition::wait's re-acquisition: never interrupted, so that wait returns (or throws) holding the
// lock, as on every way out.
void MutexHandle::restore(std::uint32_t depth) {
  MutexState* s = state_.get();
  InterruptExempt exempt;
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
    int r = detail::futex_wait_interruptible(&s->value, 0, deadline);
    s->waiters.fetch_sub(1, std::memory_order_relaxed);
    if (r == ETIMEDOUT) return try_acquire();
    if (r == detail::kInterrupted && !try_acquire())
      detail::throw_interrupted("mproc::Semaphore::acquire");
    if (r == detail::kInterrupted) return true;
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
  bool interrupted = false;
  while (s->flag.load(std::memory_order_seq_cst) == 0) {
    const int r = detail::futex_wait_interruptible(&s->flag, 0, deadline);
    if (r == ETIMEDOUT) break;
    if (r == detail::kInterrupted) {
      interrupted = true;
      break;
    }
  }
  s->waiters.fetch_sub(1, std::memory_order_relaxed);
  const bool set = s->flag.load(std::memory_order_acquire) != 0;
  if (!set && interrupted) detail::throw_interrupted("mproc::Event::wait");
  return set;
}

// ---------------------------------------------------------------------------------------------
// Condition

Condition::Condition(Mutex mutex, detail::Ref<detail::ConditionState> state) noexcept
    : mutex_(std::move(mutex)), state_(std::move(state)) {}

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
  detail::throw_if_interrupted("mproc::Condition::wait");  // before letting the lock go
  auto* s = state_.get();
  std::uint32_t seq = s->seq.load(std::memory_order_seq_cst);
  s->waiters.fetch_add(1, std::memory_order_seq_cst);
  std::uint32_t depth = mutex_.release_all();
  // While interruption is armed the sleep ends every kInterruptSlice (0) to look for a request
  // (kInterrupted): it sleeps again while nobody notified. A notify that came between two slices is
  // taken as this waiter's (never lost), so a notify(n) may then wake more than n waiters: a
  // spurious wake-up, which a predicate loop absorbs.
  int r;
  do {
    r = detail::futex_wait_interruptible(&s->seq, seq, deadline);
  } while (r == 0 && s->seq.load(std::memory_order_seq_cst) == seq);
  s->waiters.fetch_sub(1, std::memory_order_relaxed);
  mutex_.restore(depth);
  if (r == detail::kInterrupted) detail::throw_interrupted("mproc::Condition::wait");
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
// Throws Interrupted (holding nothing) when an interruption request ends the wait for it, unless
// the thread is exempt (InterruptExempt).
void lock_barrier(detail::BarrierState* s) {
  int r = detail::mutex_acquire(&s->lock, detail::Expiry());
  if (r == detail::kInterrupted) detail::throw_interrupted("mproc::Barrier");
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

Barrier::Barrier(detail::Ref<detail::BarrierState> state,
                 std::optional<std::chrono::duration<double>> timeout) noexcept
    : state_(std::move(state)), timeout_(timeout) {}

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
  // The probe time is kept across wake-ups until it passes: an interruptible wait returns every
  // kInterruptSlice, and a probe time restarted each time would never come.
  const bool probe = s->has_action.load(std::memory_order_relaxed) != 0;
  std::optional<detail::Clock::time_point> probe_at;
  while (s->generation.load(std::memory_order_seq_cst) == g) {
    detail::Expiry slice = deadline;
    if (probe) {
      if (!probe_at) probe_at = detail::Clock::now() + kActionProbe;
      if (!slice || *probe_at < *slice) slice = *probe_at;
    }
    int r = detail::futex_wait_interruptible(&s->generation, g, slice);
    if (r == detail::kInterrupted) {
      // As Python's Barrier.wait on any exception (KeyboardInterrupt too): the barrier breaks,
      // unless this generation completed meanwhile (then the wait succeeded).
      detail::InterruptExempt exempt;
      {
        BarrierGuard guard(s);
        if (s->generation.load(std::memory_order_relaxed) != g) break;
        break_barrier(s);
      }
      detail::throw_interrupted("mproc::Barrier::wait");
    }
    if (r != ETIMEDOUT || s->generation.load(std::memory_order_seq_cst) != g) continue;
    probe_at.reset();
    if (detail::expired(deadline)) {
      detail::InterruptExempt exempt;  // the barrier must break: take its lock whatever comes
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

// ---------------------------------------------------------------------------------------------
// Handles that travel (handle_travel.hpp): the shared part, also used by shared_memory.cpp

namespace detail {

const char* handle_type_name(HandleKind kind) noexcept {
  switch (kind) {
    case HandleKind::kLock:
      return "mproc::Lock";
    case HandleKind::kRLock:
      return "mproc::RLock";
    case HandleKind::kSemaphore:
      return "mproc::Semaphore";
    case HandleKind::kBoundedSemaphore:
      return "mproc::BoundedSemaphore";
    case HandleKind::kCondition:
      return "mproc::Condition";
    case HandleKind::kEvent:
      return "mproc::Event";
    case HandleKind::kBarrier:
      return "mproc::Barrier";
    case HandleKind::kValue:
      return "mproc::Value";
    case HandleKind::kArray:
      return "mproc::Array";
    case HandleKind::kSharedMemory:
      return "mproc::SharedMemory";
  }
  return "an mproc handle";
}

namespace {

// What Python calls the object in its refusal ("<name> objects should only be shared between
// processes through inheritance").
const char* python_name(HandleKind kind) noexcept {
  switch (kind) {
    case HandleKind::kValue:
      return "Synchronized";
    case HandleKind::kArray:
      return "SynchronizedArray";
    default:
      return handle_type_name(kind) + 7;  // without "mproc::"
  }
}

}  // namespace

void require_travel_out(HandleKind kind) {
  if (travel_out() != nullptr) return;
  std::string what = std::string(handle_type_name(kind)) +
                     " can travel to another process only as an argument of a Process or of a "
                     "Pool task (Python: ";
  if (kind == HandleKind::kSharedMemory) {
    what +=
        "an anonymous segment has no name to attach; a named SharedMemory travels by its name "
        "anywhere)";
  } else {
    what += std::string(python_name(kind)) +
            " objects should only be shared between processes through inheritance)";
  }
  throw ValueError(what);
}

void throw_decode(HandleKind what, const std::string& why) {
  throw DecodeError(std::string(handle_type_name(what)) + ": cannot decode: " + why);
}

namespace {

void write_ref(Writer& w, Descriptors& out, int fd, std::size_t size, std::size_t offset) {
  const std::uint32_t index = out.add_dup(fd);
  w.write_value(index);
  w.write_value(static_cast<std::uint64_t>(size));
  w.write_value(static_cast<std::uint64_t>(offset));
}

}  // namespace

void write_region_ref(Writer& w, const void* object, HandleKind what) {
  Descriptors* out = travel_out();
  if (out == nullptr) require_travel_out(what);
  RegionSpan span;
  if (!find_region(object, span)) {
    throw Error(std::string(handle_type_name(what)) +
                ": cannot travel: its shared memory has no descriptor in this process");
  }
  write_ref(w, *out, span.fd, span.size,
            static_cast<std::size_t>(static_cast<const std::byte*>(object) - span.base));
}

void write_region_ref(Writer& w, const Region& region, HandleKind what) {
  Descriptors* out = travel_out();
  if (out == nullptr) require_travel_out(what);
  if (region.fd() < 0 || region.data() == nullptr) {
    throw Error(std::string(handle_type_name(what)) +
                ": cannot travel: its shared memory has no descriptor in this process");
  }
  write_ref(w, *out, region.fd(), region.size(), 0);
}

void read_kind(Reader& r, HandleKind expected) {
  const auto kind = r.read_value<std::uint8_t>();
  if (kind == static_cast<std::uint8_t>(expected)) return;
  std::string got = "kind " + std::to_string(kind);
  if (kind >= static_cast<std::uint8_t>(HandleKind::kLock) &&
      kind <= static_cast<std::uint8_t>(HandleKind::kSharedMemory)) {
    got = std::string("an ") + handle_type_name(static_cast<HandleKind>(kind));
  }
  throw_decode(expected, "the bytes describe " + got);
}

RegionRef read_region_fields(Reader& r) {
  RegionRef ref;
  ref.index = r.read_value<std::uint32_t>();
  ref.size = r.read_value<std::uint64_t>();
  ref.offset = r.read_value<std::uint64_t>();
  return ref;
}

Received read_region_ref(Reader& r, HandleKind what, std::size_t object_size,
                         std::size_t object_align) {
  return map_region_ref(read_region_fields(r), what, object_size, object_align);
}

Received map_region_ref(const RegionRef& ref, HandleKind what, std::size_t object_size,
                        std::size_t object_align) {
  const std::uint32_t index = ref.index;
  const std::uint64_t size = ref.size;
  const std::uint64_t offset = ref.offset;
  const Descriptors* in = travel_in();
  if (in == nullptr) {
    throw_decode(what,
                 "no descriptor travelled with it (a handle is received as an argument of a "
                 "Process or of a Pool task, under a TravelIn scope)");
  }
  if (index >= in->size()) {
    throw_decode(what, "it names descriptor " + std::to_string(index) + ", but " +
                           std::to_string(in->size()) + " travelled with the value");
  }
  if (size == 0 || offset > size || size - offset < object_size) {
    throw_decode(what, "the object (" + std::to_string(object_size) + " bytes at offset " +
                           std::to_string(offset) + ") does not lie inside the " +
                           std::to_string(size) + " bytes to map");
  }
  if (offset % object_align != 0) {
    throw_decode(what, "the object's offset " + std::to_string(offset) +
                           " is not a multiple of its alignment " + std::to_string(object_align));
  }
  const int fd = in->at(index);
  char buf[192];
  if (const char* why = check_shared_file(fd, static_cast<std::size_t>(size), buf, sizeof buf)) {
    throw_decode(what, "descriptor " + std::to_string(index) + " is " + why);
  }
  int copy = -1;
  if (std::error_code ec = dup_cloexec(fd, copy)) {
    throw_system_error(ec, std::string(handle_type_name(what)) +
                               ": cannot keep a received descriptor: fcntl(F_DUPFD_CLOEXEC)");
  }
  std::error_code ec;
  auto region = Region::map_fd(copy, static_cast<std::size_t>(size), ec);  // owns `copy`
  if (!region) {
    if (ec == std::errc::not_enough_memory) {
      throw_system_error(ec, std::string(handle_type_name(what)) +
                                 ": cannot map received shared memory of " + std::to_string(size) +
                                 " bytes: mmap");
    }
    throw_decode(
        what, "descriptor " + std::to_string(index) + " cannot be mapped: mmap: " + ec.message());
  }
  auto* object = static_cast<std::byte*>(region->data()) + offset;
  return Received{std::move(region), object, size};
}

namespace {

// A Lock's or an RLock's mutex: kind byte, RegionRef.
void write_mutex(Writer& w, const MutexState* s) {
  w.write_value(static_cast<std::uint8_t>(s->recursive ? HandleKind::kRLock : HandleKind::kLock));
  write_region_ref(w, s, s->recursive ? HandleKind::kRLock : HandleKind::kLock);
}

// Reads a mutex of kind `kind` (kLock or kRLock) after its kind byte; `what` names the handle
// being decoded.
Ref<MutexState> read_mutex_after_kind(Reader& r, HandleKind kind, HandleKind what) {
  Received got = read_region_ref(r, what, sizeof(MutexState), alignof(MutexState));
  auto* s = reinterpret_cast<MutexState*>(got.object);
  unsigned char recursive = 0;
  std::memcpy(&recursive, &s->recursive, 1);
  const unsigned char expected = kind == HandleKind::kRLock ? 1 : 0;
  if (recursive != expected) {
    throw_decode(what,
                 std::string("the shared object is not the mutex of an ") + handle_type_name(kind));
  }
  return adopt_mutex_state(std::move(got.region), s);
}

// A mutex of either kind: the kind byte, then as above.
Ref<MutexState> read_mutex_any(Reader& r, HandleKind what) {
  const auto kind = r.read_value<std::uint8_t>();
  if (kind != static_cast<std::uint8_t>(HandleKind::kLock) &&
      kind != static_cast<std::uint8_t>(HandleKind::kRLock)) {
    throw_decode(what, "its lock's kind byte " + std::to_string(kind) +
                           " is neither a Lock's nor an RLock's");
  }
  return read_mutex_after_kind(r, static_cast<HandleKind>(kind), what);
}

Ref<MutexState> read_mutex(Reader& r, HandleKind kind) {
  read_kind(r, kind);
  return read_mutex_after_kind(r, kind, kind);
}

}  // namespace

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The codecs of the primitives

using detail::HandleKind;

std::size_t codec<Lock, void>::size(const Lock&) { return detail::kMutexBytes; }
void codec<Lock, void>::encode(Writer& w, const Lock& v) {
  detail::require_travel_out(HandleKind::kLock);
  detail::write_mutex(w, static_cast<const detail::MutexHandle&>(v).state_ref().get());
}
Lock codec<Lock, void>::decode(Reader& r) {
  return detail::decode_named(HandleKind::kLock,
                              [&] { return Lock(detail::read_mutex(r, HandleKind::kLock)); });
}

std::size_t codec<RLock, void>::size(const RLock&) { return detail::kMutexBytes; }
void codec<RLock, void>::encode(Writer& w, const RLock& v) {
  detail::require_travel_out(HandleKind::kRLock);
  detail::write_mutex(w, static_cast<const detail::MutexHandle&>(v).state_ref().get());
}
RLock codec<RLock, void>::decode(Reader& r) {
  return detail::decode_named(HandleKind::kRLock,
                              [&] { return RLock(detail::read_mutex(r, HandleKind::kRLock)); });
}

namespace {

constexpr std::size_t kPlainBytes = detail::kKindBytes + detail::kRegionRefBytes;

// A handle whose whole encoding is its kind and one RegionRef to a `State`.
template <class State>
void write_plain(Writer& w, HandleKind kind, const State* s) {
  detail::require_travel_out(kind);
  w.write_value(static_cast<std::uint8_t>(kind));
  detail::write_region_ref(w, s, kind);
}

template <class State>
detail::Ref<State> read_plain(Reader& r, HandleKind kind) {
  detail::read_kind(r, kind);
  detail::Received got = detail::read_region_ref(r, kind, sizeof(State), alignof(State));
  return detail::adopt_shared_state(std::move(got.region), reinterpret_cast<State*>(got.object));
}

}  // namespace

std::size_t codec<Semaphore, void>::size(const Semaphore&) { return kPlainBytes; }
void codec<Semaphore, void>::encode(Writer& w, const Semaphore& v) {
  write_plain(w, HandleKind::kSemaphore, v.state_.get());
}
Semaphore codec<Semaphore, void>::decode(Reader& r) {
  return detail::decode_named(HandleKind::kSemaphore, [&] {
    return Semaphore(read_plain<detail::SemaphoreState>(r, HandleKind::kSemaphore));
  });
}

std::size_t codec<BoundedSemaphore, void>::size(const BoundedSemaphore&) { return kPlainBytes; }
void codec<BoundedSemaphore, void>::encode(Writer& w, const BoundedSemaphore& v) {
  write_plain(w, HandleKind::kBoundedSemaphore, v.state_.get());
}
BoundedSemaphore codec<BoundedSemaphore, void>::decode(Reader& r) {
  return detail::decode_named(HandleKind::kBoundedSemaphore, [&] {
    return BoundedSemaphore(read_plain<detail::SemaphoreState>(r, HandleKind::kBoundedSemaphore));
  });
}

std::size_t codec<Event, void>::size(const Event&) { return kPlainBytes; }
void codec<Event, void>::encode(Writer& w, const Event& v) {
  write_plain(w, HandleKind::kEvent, v.state_.get());
}
Event codec<Event, void>::decode(Reader& r) {
  return detail::decode_named(HandleKind::kEvent, [&] {
    return Event(read_plain<detail::EventState>(r, HandleKind::kEvent));
  });
}

// Condition: kind, its lock (kind byte and RegionRef), its own RegionRef.
std::size_t codec<Condition, void>::size(const Condition&) {
  return kPlainBytes + detail::kMutexBytes;
}
void codec<Condition, void>::encode(Writer& w, const Condition& v) {
  detail::require_travel_out(HandleKind::kCondition);
  w.write_value(static_cast<std::uint8_t>(HandleKind::kCondition));
  detail::write_mutex(w, v.mutex_.state_ref().get());
  detail::write_region_ref(w, v.state_.get(), HandleKind::kCondition);
}
Condition codec<Condition, void>::decode(Reader& r) {
  return detail::decode_named(HandleKind::kCondition, [&] {
    detail::read_kind(r, HandleKind::kCondition);
    Condition::Mutex mutex(detail::read_mutex_any(r, HandleKind::kCondition));
    detail::Received got = detail::read_region_ref(
        r, HandleKind::kCondition, sizeof(detail::ConditionState), alignof(detail::ConditionState));
    return Condition(std::move(mutex), detail::adopt_shared_state(
                                           std::move(got.region),
                                           reinterpret_cast<detail::ConditionState*>(got.object)));
  });
}

// Barrier: kind, RegionRef, then its default timeout: a flag byte and the seconds as a double.
namespace {
[[noreturn]] void throw_barrier_action() {
  throw ValueError(
      "mproc::Barrier with an action cannot travel to another process: the action is a "
      "std::function of this process (create the barrier without one, and let the caller whose "
      "wait() returns 0 do the work)");
}
}  // namespace

std::size_t codec<Barrier, void>::size(const Barrier& v) {
  if (v.action_) throw_barrier_action();
  return kPlainBytes + 1 + sizeof(double);
}
void codec<Barrier, void>::encode(Writer& w, const Barrier& v) {
  if (v.action_) throw_barrier_action();
  write_plain(w, HandleKind::kBarrier, v.state_.get());
  w.write_value(static_cast<std::uint8_t>(v.timeout_ ? 1 : 0));
  w.write_value(v.timeout_ ? v.timeout_->count() : 0.0);
}
Barrier codec<Barrier, void>::decode(Reader& r) {
  return detail::decode_named(HandleKind::kBarrier, [&] {
    auto state = read_plain<detail::BarrierState>(r, HandleKind::kBarrier);
    const auto has_timeout = r.read_value<std::uint8_t>();
    const auto seconds = r.read_value<double>();
    if (has_timeout > 1) detail::throw_decode(HandleKind::kBarrier, "bad timeout flag");
    if (has_timeout == 1 && !std::isfinite(seconds)) {
      detail::throw_decode(HandleKind::kBarrier, "its timeout is not a finite number of seconds");
    }
    if (__atomic_load_n(&state->parties, __ATOMIC_RELAXED) < 1) {
      detail::throw_decode(HandleKind::kBarrier, "the shared barrier has no parties");
    }
    if (state->has_action.load(std::memory_order_relaxed) != 0) {
      detail::throw_decode(HandleKind::kBarrier,
                           "the shared barrier has an action, which cannot travel");
    }
    std::optional<std::chrono::duration<double>> timeout;
    if (has_timeout == 1) timeout = std::chrono::duration<double>(seconds);
    return Barrier(std::move(state), timeout);
  });
}

}  // namespace mproc
