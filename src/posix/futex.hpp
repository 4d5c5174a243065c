// posix/futex.hpp — futex wait/wake on 32-bit words shared between processes, and deadlines.
//
// Futexes here are never FUTEX_PRIVATE_FLAG: the words live in MAP_SHARED memory seen by several
// processes. Timed waits take an absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET), so a
// spurious wake-up re-waits only for the time left and a wall-clock change does not matter.
#pragma once

#include <errno.h>

#include <atomic>
#include <cstdint>
#include <mproc/detail/expiry.hpp>

namespace mproc::detail {

// Blocks while `*word == expected`, until woken or `deadline` passes.
// Returns 0 when woken (or the value differed: EAGAIN is folded into 0), EINTR on a signal,
// ETIMEDOUT when the deadline passed. Never throws.
int futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
               const Expiry& deadline) noexcept;

// What futex_wait_interruptible and the interruptible waits built on it return when an
// interruption request (mproc::interrupt(), <mproc/interrupt.hpp>) ends the wait. Not an errno any
// of those calls can otherwise return.
inline constexpr int kInterrupted = ECANCELED;

// As futex_wait, for a wait that an interruption request may end. Not armed (the program never
// called enable_interrupts() or interrupt(), or the thread holds an InterruptExempt): exactly
// futex_wait. Armed: returns kInterrupted without sleeping when a request is pending, else sleeps
// at most kInterruptSlice (or to `deadline` if earlier); a slice that ends before `deadline`
// returns 0, a spurious wake-up to the caller, whose loop looks at its condition and calls again
// (so a result that is there wins over the request). EINTR is folded into 0 the same way: the
// caller's next call looks for the request at once (the signal that made it may be that request).
int futex_wait_interruptible(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
                             const Expiry& deadline) noexcept;

// Wakes up to `n` waiters on `word`; returns how many were woken (or -errno).
int futex_wake(const std::atomic<std::uint32_t>* word, int n) noexcept;
inline int futex_wake_all(const std::atomic<std::uint32_t>* word) noexcept {
  return futex_wake(word, 0x7fffffff);
}

// Brief busy-wait hint for spin loops (the queue's and the locks' spin phases, whose lengths are
// counted in these hints). x86: `pause`, which also yields the core to a sibling hardware thread.
// aarch64: `isb`, not `yield`: `yield` is a no-op on cores without SMT (every current Arm server
// core), so a spin of N hints would take almost no time, while `isb` stalls for a few tens of
// nanoseconds, close to `pause` on recent x86 (Rust's spin_loop() chose `isb` for the same reason,
// rust-lang/rust#84725). Elsewhere: a compiler barrier, so the loop still re-reads memory.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("isb" ::: "memory");
#elif defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace mproc::detail
