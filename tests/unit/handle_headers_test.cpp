// handle_headers_test.cpp — the public headers of processes, locks and shared memory include none
// of the standard headers that cost every including file most of its compile time (<memory>,
// <atomic>, <functional>, <mutex>, ...; docs/design.md, "Header cost"), and the locks still work
// with the standard's lock guards, which need only their member names (the user includes <mutex>).
//
// The mproc headers come first, before any other include (GoogleTest's bring <memory> and more),
// so helpers/heavy_headers_seen.hpp sees only what these headers brought (with another standard
// library, or with MPROC_STD_LIGHT=0, the check is skipped).

// clang-format off: the order is the test (the headers under test first, then what they brought)
#include <mproc/detail/shared_handle.hpp>
#include <mproc/process.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>

#include "helpers/heavy_headers_seen.hpp"
// clang-format on

#include <gtest/gtest.h>

#include <mutex>

TEST(HandleHeaders, IncludeNoHeavyStandardHeader) {
  if (!kCheckable) GTEST_SKIP() << "only libstdc++ with the std shim (MPROC_STD_LIGHT) is checked";
  for (const Seen& s : kSeen) {
    EXPECT_FALSE(s.included) << s.header
                             << " came with sync.hpp, process.hpp, shared_memory.hpp or "
                                "detail/shared_handle.hpp";
  }
}

// The check itself works: a header that is included is seen (<string> and <vector> come with
// process.hpp, and libstdc++ guards them as _GLIBCXX_STRING and _GLIBCXX_VECTOR).
TEST(HandleHeaders, IncludeGuardsNameTheHeaders) {
  if (!kCheckable) GTEST_SKIP() << "only libstdc++ with the std shim (MPROC_STD_LIGHT) is checked";
#if !defined(_GLIBCXX_STRING) || !defined(_GLIBCXX_VECTOR)
  ADD_FAILURE() << "libstdc++'s include guards are not named after the headers: the check above "
                   "proves nothing";
#endif
}

// The standard's guards take mproc's locks by their member names alone.
TEST(HandleHeaders, StandardLockGuardsTakeMprocLocks) {
  using namespace std::chrono_literals;
  mproc::Lock lock;
  mproc::RLock rlock;
  mproc::Semaphore sem(1);
  mproc::Condition cond;
  {
    std::scoped_lock g(lock, rlock, sem, cond);
    EXPECT_TRUE(lock.is_owned());
    EXPECT_TRUE(rlock.is_owned());
    EXPECT_EQ(sem.get_value(), 0);
  }
  EXPECT_FALSE(lock.is_owned());
  EXPECT_FALSE(rlock.is_owned());
  EXPECT_EQ(sem.get_value(), 1);
  {
    std::unique_lock u(lock, 10ms);  // try_lock_for
    EXPECT_TRUE(u.owns_lock());
    u.unlock();
    EXPECT_TRUE(u.try_lock_until(std::chrono::steady_clock::now() + 10ms));
  }
  EXPECT_FALSE(lock.is_owned());
  {
    std::lock_guard g(rlock);
    std::unique_lock again(rlock, std::try_to_lock);  // recursive
    EXPECT_TRUE(again.owns_lock());
    EXPECT_EQ(rlock.depth(), 2u);
  }
  EXPECT_EQ(rlock.depth(), 0u);
  mproc::Value<int> v(1);
  {
    std::scoped_lock g(v.get_lock());
    v.set(v.get() + 1);  // get/set take the RLock held here again
  }
  EXPECT_EQ(v.get(), 2);
  EXPECT_FALSE(v.get_lock().is_owned());
}
