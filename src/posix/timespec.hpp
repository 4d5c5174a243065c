// posix/timespec.hpp — std::chrono times as the kernel's timespec, and a deadline as a timeout.
//
// The one conversion used by every timed wait (futex, ppoll, pthread_mutex_clocklock). Times are
// on CLOCK_MONOTONIC (detail::Clock, std::chrono::steady_clock, which libstdc++ and libc++ read
// from CLOCK_MONOTONIC on Linux).
#pragma once

#include <time.h>

#include <chrono>
#include <limits>
#include <mproc/detail/expiry.hpp>
#include <type_traits>

namespace mproc::detail {

static_assert(std::is_same_v<Clock::duration, std::chrono::nanoseconds>,
              "to_timespec takes the clock's own duration without a conversion that could wrap");

// A duration as a timespec, saturating: a negative one is zero, one beyond time_t's range is
// time_t's largest (only reachable where time_t has 32 bits).
inline timespec to_timespec(std::chrono::nanoseconds d) noexcept {
  timespec ts{};
  const auto ns = d.count();
  if (ns <= 0) return ts;
  const auto sec = ns / 1'000'000'000;
  if (static_cast<unsigned long long>(sec) >
      static_cast<unsigned long long>(std::numeric_limits<time_t>::max())) {
    ts.tv_sec = std::numeric_limits<time_t>::max();
    ts.tv_nsec = 999'999'999;
    return ts;
  }
  ts.tv_sec = static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

// An absolute CLOCK_MONOTONIC time as a timespec (for FUTEX_WAIT_BITSET and
// pthread_mutex_clocklock); a time before the clock's epoch is its epoch.
inline timespec to_timespec(Clock::time_point t) noexcept {
  return to_timespec(t.time_since_epoch());
}

// The time left until `deadline` as a relative timeout for ppoll, written to `storage`: null for
// no deadline (nullopt or time_point::max(), wait without limit), zero once it has passed.
inline timespec* timeout_left(const Expiry& deadline, timespec& storage) noexcept {
  if (!deadline || *deadline == Clock::time_point::max()) return nullptr;
  storage = to_timespec(*deadline - Clock::now());
  return &storage;
}

// The deadline as an absolute timespec, written to `storage`: null for no deadline.
inline timespec* deadline_timespec(const Expiry& deadline, timespec& storage) noexcept {
  if (!deadline || *deadline == Clock::time_point::max()) return nullptr;
  storage = to_timespec(*deadline);
  return &storage;
}

}  // namespace mproc::detail
