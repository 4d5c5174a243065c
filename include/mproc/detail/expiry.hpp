// mproc/detail/expiry.hpp — timeouts and deadlines as the library uses them internally.
//
// No stability promise. Every blocking call of the public API converts its timeout or deadline to a
// `Expiry`: an absolute CLOCK_MONOTONIC time point, or nullopt for "wait forever". Negative
// timeouts count as zero; deadlines in the past are equivalent to an immediate deadline; a
// deadline of another clock (system_clock, ...) is converted by the time left when the call starts.
#pragma once

#include <chrono>
#include <optional>
#include <type_traits>

namespace mproc::detail {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC in libstdc++ and libc++
using Expiry = std::optional<Clock::time_point>;

template <class C, class D>
Clock::time_point to_steady(std::chrono::time_point<C, D> t) {
  if constexpr (std::is_same_v<C, Clock>) {
    return std::chrono::time_point_cast<Clock::duration>(t);
  } else {
    auto left = t - C::now();
    if (left <= decltype(left)::zero()) return Clock::now();
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
  }
}

template <class R, class P>
Clock::time_point deadline_after(std::chrono::duration<R, P> timeout) {
  using std::chrono::duration_cast;
  auto now = Clock::now();
  if (timeout <= std::chrono::duration<R, P>::zero()) return now;
  // Saturate instead of overflowing for huge timeouts (e.g. duration::max()).
  if (std::chrono::duration<double>(timeout) >
      std::chrono::duration<double>(Clock::time_point::max() - now))
    return Clock::time_point::max();
  return now + duration_cast<Clock::duration>(timeout);
}

inline bool expired(const Expiry& d) { return d && Clock::now() >= *d; }

}  // namespace mproc::detail
