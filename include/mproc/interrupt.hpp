// mproc/interrupt.hpp — interrupting blocking calls from a signal handler: mproc::interrupt(),
// mproc::clear_interrupt(), mproc::enable_interrupts() and the mproc::Interrupted error.
//
// By default Ctrl-C (SIGINT) ends the program at once, and with it every process mproc started:
// children and pool workers watch their parent and leave when it dies. A program that installs its
// own SIGINT handler (to clean up, to save work, to ask "really quit?") needs its blocked threads
// back instead. This is the C++ form of Python's KeyboardInterrupt:
//
//   mproc::enable_interrupts();                                  // once, before anything blocks
//   std::signal(SIGINT, [](int) { mproc::interrupt(); });        // async-signal-safe
//   try {
//     auto results = pool.map(work, inputs);                     // any blocking mproc call
//   } catch (const mproc::Interrupted&) {
//     mproc::clear_interrupt();                                  // blocking calls work again
//     ...
//   }
//
// Semantics:
//   * The request is process-wide: every thread's blocking mproc calls see it, not only the thread
//     the signal was delivered to. It is not shared with other processes (a child started by fork
//     does not inherit a request; Ctrl-C reaches the children of the terminal's process group
//     anyway, and their own handlers decide for them).
//   * It is sticky: it stays set until clear_interrupt(), and every blocking mproc call that would
//     have to wait throws mproc::Interrupted meanwhile (Python raises KeyboardInterrupt once, in
//     one thread; a request that every thread sees until it is cleared lets all of them leave).
//   * A call that does not have to wait does not throw: a get() on a queue that holds a message
//     returns it, acquire() of a free lock takes it, get() of a ready AsyncResult returns the
//     result. A call that finds its result at the moment it notices the request returns it.
//   * Promptness: a call sleeping when the request comes notices it within kInterruptSlice (20 ms),
//     in the thread the signal hit at once. That is the cost of arming: after enable_interrupts()
//     (or the first interrupt()) a call that sleeps wakes every 20 ms to look (on CLOCK_MONOTONIC;
//     the timeout of the call is unchanged). Before, nothing is added: the calls sleep as they
//     always did, without a system call or a shared-memory access more, and never throw
//     Interrupted. interrupt() arms too, but a call already asleep without limit when the first
//     interrupt() comes is not woken by it: call enable_interrupts() where you install the handler.
//   * What an interrupted call leaves: nothing half done. An interrupted lock acquisition holds
//     nothing; Condition::wait re-acquires its lock before Interrupted leaves it (as on every exit,
//     as Python's Condition.wait); an interrupted Barrier::wait breaks the barrier (as Python's
//     does for any exception, KeyboardInterrupt included, and as a timeout does); an interrupted
//     put puts nothing (a put_many keeps the messages it put before the one it was waiting to put,
//     as when a codec throws), an interrupted get takes nothing. A put interrupted half-way through
//     a message larger than the ring (streamed) abandons it as a put that times out does: consumers
//     never see it. Connection::recv is interrupted only while no byte of the next message has
//     arrived (the rest of a message that has begun is waited for: dropping it would break the
//     framing). Process::join leaves the child running (join again to reap it).
//   * Calls covered: Queue / SimpleQueue / JoinableQueue put, get, join and their batch forms;
//     Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier waits;
//     Connection::recv / poll and mproc::wait; Process::join; AsyncResult::get / wait,
//     IMapResult::next and the Pool calls that wait on them (map, starmap, apply, join). Not
//     covered: Connection::send to a peer that does not read (as Python's), ParentProcess::join.
//     The Pool's own machinery (its result thread, its workers' task loop, shutdown) is never
//     interrupted: a pool stays usable, or can be joined or terminated, after an interruption.
//
// Thread safety: every function here may be called from any thread; interrupt(),
// clear_interrupt() and interrupt_requested() are also async-signal-safe (they store to or load
// from lock-free atomics and call getpid()).
// Memory ordering: a call that starts after interrupt() returned sees the request.
#pragma once

#include <mproc/detail/expiry.hpp>  // std::chrono's durations, via std_light.hpp
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <string>

namespace mproc {

// Requests that every blocking mproc call of this process, in every thread, return by throwing
// mproc::Interrupted, until clear_interrupt(). Async-signal-safe: meant to be called from a signal
// handler (SIGINT, SIGTERM, ...), and callable from any thread. Also arms interruption as
// enable_interrupts() does. The C++ counterpart of Python's KeyboardInterrupt (which Python's
// default SIGINT handler raises).
MPROC_API void interrupt() noexcept;

// Withdraws the request: blocking calls wait again. Async-signal-safe. Interruption stays armed.
MPROC_API void clear_interrupt() noexcept;

// Whether a request made in this process is pending. Async-signal-safe.
[[nodiscard]] MPROC_API bool interrupt_requested() noexcept;

// Arms interruption for the rest of the process's life (idempotent): from now on a sleeping
// blocking call looks for a request every kInterruptSlice. Call it where the signal handler is
// installed, before anything blocks. A child started by fork inherits it (as it inherits the
// handler); a spawned child does not.
MPROC_API void enable_interrupts() noexcept;

// Whether enable_interrupts() or interrupt() was called in this process (or its fork parent).
[[nodiscard]] MPROC_API bool interrupts_enabled() noexcept;

namespace detail {

// Internal: how blocking calls take part. No stability promise.

// The longest a blocking call sleeps, while armed, before it looks for a request.
inline constexpr std::chrono::milliseconds kInterruptSlice{20};

// True when this thread's waits are interruptible: armed, and no InterruptExempt on this thread.
[[nodiscard]] MPROC_API bool interrupts_armed() noexcept;

// True when a wait of this thread must end by throwing Interrupted: a request is pending in this
// process and the thread is not exempt. Slow paths only (before sleeping, after waking).
[[nodiscard]] MPROC_API bool interrupt_pending() noexcept;

// The time a wait whose own limit is `deadline` may sleep before it looks for a request:
// `deadline` itself when not armed (nothing changes), else the earlier of `deadline` and
// now + kInterruptSlice. A wait that reaches the returned time and not `deadline` must look
// (interrupt_pending()) and sleep again, not time out.
[[nodiscard]] MPROC_API Expiry interruptible_until(const Expiry& deadline) noexcept;

// Throws Interrupted naming `operation` ("mproc::Queue::get: interrupted by mproc::interrupt()").
[[noreturn, gnu::cold]] inline void throw_interrupted(const char* operation) {
  throw Interrupted(std::string(operation) + ": interrupted by mproc::interrupt()");
}

// Throws Interrupted naming `operation` if interrupt_pending().
inline void throw_if_interrupted(const char* operation) {
  if (interrupt_pending()) throw_interrupted(operation);
}

// While one exists on a thread, that thread's waits are not interruptible (never sliced, never
// Interrupted): the library's own machinery (a pool's result thread, a worker's task loop, a
// Condition re-acquiring its lock, the Pool's shutdown) must finish what it started. Nests.
class MPROC_API InterruptExempt {
 public:
  InterruptExempt() noexcept;
  ~InterruptExempt();
  InterruptExempt(const InterruptExempt&) = delete;
  InterruptExempt& operator=(const InterruptExempt&) = delete;
};

// Waits on a std::condition_variable-like `cv` (with `lk` held) until `pred()`, interruptibly:
// throws Interrupted naming `operation` when a request is pending and `pred()` is false. For the
// library's untimed condition-variable waits (Pool::join).
template <class Cv, class Lock, class Pred>
void wait_interruptibly(Cv& cv, Lock& lk, Pred pred, const char* operation) {
  while (!pred()) {
    throw_if_interrupted(operation);
    const Expiry until = interruptible_until(Expiry());
    if (!until) {
      cv.wait(lk);
    } else {
      (void)cv.wait_until(lk, *until);
    }
  }
}

}  // namespace detail
}  // namespace mproc
