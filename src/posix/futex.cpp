#include "posix/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <mproc/interrupt.hpp>

#include "posix/timespec.hpp"

namespace mproc::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be plain lock-free 32-bit words");

int futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
               const Expiry& deadline) noexcept {
  timespec storage{};
  timespec* tsp = deadline_timespec(deadline, storage);
  long r =
      syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (r == 0) return 0;
  int e = errno;
  if (e == EAGAIN) return 0;
  return e;
}

int futex_wait_interruptible(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
                             const Expiry& deadline) noexcept {
  if (!interrupts_armed()) return futex_wait(word, expected, deadline);
  if (interrupt_pending()) return kInterrupted;
  const Expiry until = interruptible_until(deadline);
  const int r = futex_wait(word, expected, until);
  if (r == ETIMEDOUT) return expired(deadline) ? ETIMEDOUT : 0;
  if (r == EINTR) return 0;
  return r;
}

int futex_wake(const std::atomic<std::uint32_t>* word, int n) noexcept {
  long r = syscall(SYS_futex, word, FUTEX_WAKE, n, nullptr, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

// ---------------------------------------------------------------------------------------------
// Interruption requests (<mproc/interrupt.hpp>; the mechanism: docs/design.md, "Interruption").
// They live here, beside the waits that watch them. Two process-global words, lock-free atomics
// so that a signal handler may store to them:
//   g_request  0, or the pid of the process that made the request. A child started by fork copies
//              the word, but its pid differs: it has no request (as it has no pending signal).
//   g_armed    set by enable_interrupts() or interrupt(), never cleared; read by a wait on its
//              slow path only, to choose between one sleep and sleeps in slices.
// and the thread-local depth of InterruptExempt scopes (never touched by a signal handler).

namespace {

std::atomic<pid_t> g_request{0};
std::atomic<bool> g_armed{false};
thread_local unsigned t_exempt = 0;

static_assert(std::atomic<pid_t>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "interrupt() stores from a signal handler: its words must be lock-free");

}  // namespace

bool interrupts_armed() noexcept {
  return g_armed.load(std::memory_order_relaxed) && t_exempt == 0;
}

bool interrupt_pending() noexcept {
  // No request: one load. getpid() only when a request is there.
  if (g_request.load(std::memory_order_seq_cst) == 0 || t_exempt != 0) return false;
  return mproc::interrupt_requested();
}

Expiry interruptible_until(const Expiry& deadline) noexcept {
  if (!interrupts_armed()) return deadline;
  const Clock::time_point slice_end = Clock::now() + kInterruptSlice;
  if (deadline && *deadline <= slice_end) return deadline;
  return slice_end;
}

InterruptExempt::InterruptExempt() noexcept { ++t_exempt; }
InterruptExempt::~InterruptExempt() { --t_exempt; }

}  // namespace mproc::detail

namespace mproc {

void interrupt() noexcept {
  detail::g_armed.store(true, std::memory_order_relaxed);
  detail::g_request.store(::getpid(), std::memory_order_seq_cst);
}

void clear_interrupt() noexcept { detail::g_request.store(0, std::memory_order_seq_cst); }

bool interrupt_requested() noexcept {
  const pid_t r = detail::g_request.load(std::memory_order_seq_cst);
  return r != 0 && r == ::getpid();
}

void enable_interrupts() noexcept { detail::g_armed.store(true, std::memory_order_seq_cst); }

bool interrupts_enabled() noexcept { return detail::g_armed.load(std::memory_order_relaxed); }

}  // namespace mproc
