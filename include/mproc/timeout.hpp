// mproc/timeout.hpp — how long a blocking call may wait: mproc::Timeout (a duration) and
// mproc::Deadline (a point in time of any clock).
//
// Every blocking call of mproc comes in the same forms, the standard library's `*_for`/`*_until`
// pair under Python's names:
//
//   x()                  waits as long as it takes (Python: timeout=None)
//   x(Timeout)           waits at most a duration: q.get(2s), p.join(500ms), r.wait(1.5s)
//   x_until(Deadline)    waits at most until a time point: q.get_until(steady_clock::now() + 2s)
//
// (plus try_x() where the call has a non-blocking form). Both types convert implicitly from their
// std::chrono counterpart and from nothing else: a duration cannot be passed where a deadline is
// meant, nor an int where a duration is (std::chrono::seconds(2) or 2s, never 2).
//
// Semantics, the same for every call:
//   * A timeout is measured from the call. A negative or zero timeout, and a deadline in the past,
//     make the call try once without blocking; huge ones (duration::max(), time_point::max() of
//     any clock) saturate to "never", and time_point::min() of any clock is in the past.
//   * A deadline of steady_clock is used as it is. A deadline of another clock (system_clock,
//     file_clock, ...) is converted by the time left when the call starts: a later change of that
//     clock (NTP, the administrator) does not move it. All waiting is on CLOCK_MONOTONIC.
//   * A call that times out returns false / nullopt, or throws the error its header names (Python's
//     queue.Full / queue.Empty for Queue::put/get, TimeoutError for AsyncResult::get).
//   * A signal handler that runs during the wait does not end it early (EINTR is retried with the
//     time left), unless it calls mproc::interrupt() while interruption is armed
//     (mproc/interrupt.hpp): the call then throws mproc::Interrupted.
#pragma once

#include <mproc/detail/std_light.hpp>
#include <type_traits>

namespace mproc {

// How long a blocking call may wait. Converts implicitly from any std::chrono::duration (integer or
// floating-point representation); the limit starts when the conversion happens, i.e. at the call.
class Timeout {
 public:
  template <class Rep, class Period>
  Timeout(std::chrono::duration<Rep, Period> timeout) noexcept  // NOLINT: implicit by design
      : when_(after(timeout)) {}

  // The steady_clock time point at which the wait ends.
  [[nodiscard]] std::chrono::steady_clock::time_point when() const noexcept { return when_; }

 private:
  template <class Rep, class Period>
  static std::chrono::steady_clock::time_point after(std::chrono::duration<Rep, Period> timeout) {
    using Clock = std::chrono::steady_clock;
    const auto now = Clock::now();
    if (!(timeout > std::chrono::duration<Rep, Period>::zero())) return now;
    // Saturate instead of overflowing for huge timeouts (duration::max(), 10^9 hours, ...).
    if (std::chrono::duration<double>(timeout) >=
        std::chrono::duration<double>(Clock::time_point::max() - now))
      return Clock::time_point::max();
    return now + std::chrono::duration_cast<Clock::duration>(timeout);
  }

  std::chrono::steady_clock::time_point when_;
};

// Until when a blocking call may wait. Converts implicitly from a time point of any clock; one of
// a clock other than steady_clock is converted by the time left at the conversion (the call).
class Deadline {
 public:
  template <class Clock, class Duration>
  Deadline(std::chrono::time_point<Clock, Duration> deadline) noexcept  // NOLINT: implicit
      : when_(to_steady(deadline)) {}

  // The steady_clock time point at which the wait ends.
  [[nodiscard]] std::chrono::steady_clock::time_point when() const noexcept { return when_; }

 private:
  // Time points near their duration's limits (time_point::min() / max() of any clock) are
  // compared in floating point first, so that no integer subtraction or conversion overflows: a
  // minimum is "long past" (try once), a maximum "never".
  template <class Clock, class Duration>
  static std::chrono::steady_clock::time_point to_steady(
      std::chrono::time_point<Clock, Duration> t) {
    using Steady = std::chrono::steady_clock;
    using Seconds = std::chrono::duration<double>;
    if constexpr (std::is_same_v<Clock, Steady>) {
      const Seconds since_epoch(t.time_since_epoch());
      if (since_epoch >= Seconds(Steady::duration::max())) return Steady::time_point::max();
      if (!(since_epoch > Seconds::zero())) return Steady::time_point();  // the clock's epoch
      return std::chrono::time_point_cast<Steady::duration>(t);
    } else {
      const auto now = Clock::now();
      const Seconds ahead = Seconds(t.time_since_epoch()) - Seconds(now.time_since_epoch());
      if (!(ahead > Seconds::zero())) return Steady::now();
      if (ahead >= Seconds(std::chrono::hours(24 * 365 * 100))) return Timeout(ahead).when();
      return Timeout(t - now).when();
    }
  }

  std::chrono::steady_clock::time_point when_;
};

}  // namespace mproc
