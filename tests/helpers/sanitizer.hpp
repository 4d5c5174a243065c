// helpers/sanitizer.hpp — whether this test binary runs under a sanitizer, and a skip for the
// cases that cannot run there.
//
// Sanitizers reserve terabytes of address space for their shadow memory and abort when an
// allocation fails, so cases that lower RLIMIT_AS test the sanitizer, not mproc. ThreadSanitizer
// also starts a background thread in every process (forked children included), which counts
// against RLIMIT_NPROC, so cases that size that limit to the exact process count are off by it.
#pragma once

#include <gtest/gtest.h>

namespace mproc_test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitized = true;
#else
inline constexpr bool kThreadSanitized = false;
#endif
#else
inline constexpr bool kThreadSanitized = false;
#endif

}  // namespace mproc_test

// For a case that lowers RLIMIT_AS.
#define MPROC_SKIP_IF_SANITIZED() \
  if (::mproc_test::kSanitized)   \
  GTEST_SKIP() << "RLIMIT_AS cases do not run under a sanitizer (shadow memory)"

// For a case that sizes RLIMIT_NPROC to the exact number of processes and threads it starts.
#define MPROC_SKIP_IF_THREAD_SANITIZED() \
  if (::mproc_test::kThreadSanitized)    \
  GTEST_SKIP() << "exact RLIMIT_NPROC cases do not run under ThreadSanitizer (its extra thread)"
