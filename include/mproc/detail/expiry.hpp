// mproc/detail/expiry.hpp — timeouts and deadlines as the library uses them internally.
//
// No stability promise. Every blocking call of the public API takes a `mproc::Timeout` or a
// `mproc::Deadline` (timeout.hpp, which states the semantics) and hands its private
// implementation an `Expiry`: an absolute CLOCK_MONOTONIC time point, or nullopt for "wait
// forever" (the form without a timeout). `time_point::max()` (a saturated huge timeout) also
// waits without limit.
#pragma once

#include <mproc/detail/std_light.hpp>
#include <mproc/timeout.hpp>
#include <optional>

namespace mproc::detail {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC in libstdc++ and libc++
using Expiry = std::optional<Clock::time_point>;

// The steady time `timeout` from now, with Timeout's rules (negative: now; huge: saturated).
template <class R, class P>
Clock::time_point deadline_after(std::chrono::duration<R, P> timeout) {
  return Timeout(timeout).when();
}

inline bool expired(const Expiry& d) { return d && Clock::now() >= *d; }

}  // namespace mproc::detail
