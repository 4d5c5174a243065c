// mproc/detail/std_light.hpp — the parts of <chrono>, <functional>, <ranges>, <iterator> and
// <algorithm> that mproc's public headers use, without the rest of those headers.
//
// No stability promise. Why it exists: the compile time of every file that includes mproc (the
// measurements are in docs/design.md, "Header cost"). With libstdc++ 12 and -std=c++20, <chrono>
// alone costs a file that includes <string> and <vector> 70% more compile time, because besides the
// durations, clocks and time points mproc uses it holds the C++20 calendar, time zones and
// formatting (which pull <sstream>); <bits/chrono.h>, the part mproc uses, costs 8%. Likewise
// <functional> (std::bind, the searchers, std::hash tables) against <bits/std_function.h>, and
// <ranges> (every view) against <bits/ranges_util.h> (the range concepts, ranges::begin/end/size/
// data/distance, ranges::find), <iterator> (the stream iterators) against <bits/stl_iterator.h>,
// and <algorithm> (every algorithm) against <bits/stl_algobase.h> (std::min, std::max).
//
// Those internal headers are no part of the standard interface, so each is used only where
// libstdc++ 11 or newer is identified and the header exists; any other standard library (and
// `-DMPROC_STD_LIGHT=0`, which the tests use to check that fallback) gets the standard header. What
// this header provides is the same either way:
//   * std::chrono::duration, time_point, system_clock, steady_clock, file_clock, duration_cast,
//     time_point_cast and the literals (std::chrono_literals);
//   * std::function and std::reference_wrapper, and `mproc::detail::invoke` (std::invoke's
//     semantics; std::invoke itself is defined in <functional> only, so the light path calls
//     libstdc++'s std::__invoke, which std::invoke calls);
//   * the std::ranges concepts and customisation points (begin, end, size, data, distance,
//     range_value_t, ...) and std::ranges::find;
//   * the iterator adaptors and concepts (std::move_iterator, std::default_sentinel,
//     std::counted_iterator, std::input_iterator, ...) and std::next/prev/advance/distance;
//   * std::min and std::max (of two values).
// A file that uses anything else of those headers includes the standard header itself.
#pragma once

#include <type_traits>
#include <version>  // identifies the standard library (__GLIBCXX__, _GLIBCXX_RELEASE)

#ifndef MPROC_STD_LIGHT
#if defined(__GLIBCXX__) && defined(_GLIBCXX_RELEASE) && _GLIBCXX_RELEASE >= 11
#define MPROC_STD_LIGHT 1
#else
#define MPROC_STD_LIGHT 0
#endif
#endif

#if MPROC_STD_LIGHT && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif

#if MPROC_STD_LIGHT && __has_include(<bits/std_function.h>) && __has_include(<bits/refwrap.h>)
#include <bits/refwrap.h>
#include <bits/std_function.h>
#else
#include <functional>
#endif

#if MPROC_STD_LIGHT && __has_include(<bits/stl_iterator.h>) && \
    __has_include(<bits/stl_iterator_base_funcs.h>)
#include <bits/stl_iterator.h>
#include <bits/stl_iterator_base_funcs.h>
#else
#include <iterator>
#endif

#if MPROC_STD_LIGHT && __has_include(<bits/stl_algobase.h>)
#include <bits/stl_algobase.h>
#else
#include <algorithm>
#endif

// After the iterator headers: ranges_util.h uses std::make_reverse_iterator and
// std::initializer_list without including them.
#include <initializer_list>
#if MPROC_STD_LIGHT && __has_include(<bits/ranges_util.h>)
#include <bits/ranges_util.h>
#else
#include <ranges>
#endif

#if MPROC_STD_LIGHT && __has_include(<bits/invoke.h>)
#include <bits/invoke.h>
#define MPROC_DETAIL_INVOKE std::__invoke
#else
#include <functional>
#define MPROC_DETAIL_INVOKE std::invoke
#endif

namespace mproc::detail {
// std::invoke: calls a function, function object or pointer to member.
template <class F, class... Args>
constexpr std::invoke_result_t<F, Args...> invoke(F&& f, Args&&... args) noexcept(
    std::is_nothrow_invocable_v<F, Args...>) {
  return MPROC_DETAIL_INVOKE(static_cast<F&&>(f), static_cast<Args&&>(args)...);
}
}  // namespace mproc::detail
#undef MPROC_DETAIL_INVOKE
