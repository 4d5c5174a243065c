// Lock and RLock whose last handle is destroyed while a thread of this process holds them.
//
// That is a programming error (as destroying a locked std::mutex), but it must never corrupt the
// thread's robust-futex list: glibc links every robust mutex a thread holds into that list, and if
// the lock's memory were unmapped, the next robust lock operation of the thread (on any other lock)
// or the kernel at thread exit would follow a pointer into unmapped or reused memory. Each scenario
// runs in a forked child, so that a crash shows as an exit status and a hang as a timeout.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/shared_page.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;
using mproc_test::eventually;
using mproc_test::run_in_child;
using mproc_test::SharedPage;

namespace {

// Robust lock traffic on fresh locks: several held at once and released out of order, so that glibc
// walks and relinks the thread's robust list. Returns 0 when every step behaved.
template <class L>
int unrelated_lock_traffic() {
  for (int round = 0; round < 64; ++round) {
    L a, b, c;
    a.acquire();
    if (!b.try_acquire()) return 20;
    if (!c.acquire(1s)) return 21;
    a.release();
    c.release();
    b.release();
    if (a.is_owned() || b.is_owned() || c.is_owned()) return 22;
  }
  return 0;
}

template <class L>
class LockLifetime : public ::testing::Test {};
using LockTypes = ::testing::Types<mproc::Lock, mproc::RLock>;
TYPED_TEST_SUITE(LockLifetime, LockTypes);

TYPED_TEST(LockLifetime, DestroyingTheLastHandleWhileHeldLeavesOtherLocksWorking) {
  int rc = run_in_child(
      [] {
        {
          auto held = std::make_unique<TypeParam>();
          held->acquire();
          held.reset();  // the last handle of a held lock
        }
        return unrelated_lock_traffic<TypeParam>();
      },
      20s);
  EXPECT_EQ(rc, 0) << "-11 is SIGSEGV; 1000 is a hang";
}

TYPED_TEST(LockLifetime, ManyLocksDestroyedWhileHeldInterleavedWithOthers) {
  int rc = run_in_child(
      [] {
        TypeParam outer;
        outer.acquire();  // held across everything below, deep in the robust list
        for (int i = 0; i < 32; ++i) {
          std::optional<TypeParam> held;
          held.emplace();
          held->acquire();
          TypeParam other;
          other.acquire();
          held.reset();
          other.release();
          if (int r = unrelated_lock_traffic<TypeParam>(); r != 0) return r;
        }
        outer.release();
        return 0;
      },
      30s);
  EXPECT_EQ(rc, 0) << "-11 is SIGSEGV; 1000 is a hang";
}

TYPED_TEST(LockLifetime, ThreadThatDestroyedItsHeldLockCanExitAndOthersGoOn) {
  int rc = run_in_child(
      [] {
        std::thread([] {
          auto held = std::make_unique<TypeParam>();
          held->acquire();
          held.reset();
        }).join();  // the kernel walks the exiting thread's robust list here
        return unrelated_lock_traffic<TypeParam>();
      },
      20s);
  EXPECT_EQ(rc, 0) << "-11 is SIGSEGV; 1000 is a hang";
}

// Another process shares the lock. A thread of this process takes it, the process drops its last
// handle, and the thread exits: the other process must get the lock, told that its owner died
// (the kernel can mark the lock only if it is still mapped when the thread exits).
TYPED_TEST(LockLifetime, ThreadExitingWithALockWhoseLastHandleIsGoneHandsItOver) {
  TypeParam lock;
  SharedPage<std::atomic<int>> stage;
  Child child([&] {
    std::optional<TypeParam> mine(std::move(lock));  // this process's only handle
    std::thread([&] {
      mine->acquire();
      mine.reset();
    }).join();
    stage->store(1);
    if (!eventually([&] { return stage->load() == 2; }, 30)) return 3;
    return unrelated_lock_traffic<TypeParam>();
  });
  ASSERT_TRUE(eventually([&] { return stage->load() == 1; }, 30)) << "child did not get there";
  bool got = lock.acquire(10s);
  stage->store(2);
  EXPECT_EQ(child.wait(30s), 0);
  ASSERT_TRUE(got) << "the lock stayed held by a thread that exited";
  EXPECT_TRUE(lock.owner_died());
  lock.release();
}

// The same through objects that hold a lock inside: a Condition's own RLock, a Value's RLock
// replaced while held.
TEST(LockLifetime, ConditionAndValueDestroyedWhileTheirLockIsHeld) {
  int rc = run_in_child(
      [] {
        {
          auto cond = std::make_unique<mproc::Condition>();
          cond->acquire();
          cond.reset();
        }
        if (int r = unrelated_lock_traffic<mproc::Lock>(); r != 0) return r;
        mproc::Value<int> v(1);
        v.get_lock().acquire();
        v = mproc::Value<int>(2);  // the held RLock's last handle goes
        if (v.get() != 2) return 30;
        return unrelated_lock_traffic<mproc::RLock>();
      },
      20s);
  EXPECT_EQ(rc, 0) << "-11 is SIGSEGV; 1000 is a hang";
}

// A held lock parked this way does not leak for ever: once its holder thread has exited, the next
// lock creation frees it (no descriptor or mapping is left per misuse).
TEST(LockLifetime, ParkedLockIsFreedAfterItsHolderExits) {
  int rc = run_in_child(
      [] {
        auto count_maps = [] {
          int n = 0;
          if (FILE* f = std::fopen("/proc/self/maps", "r")) {
            char line[512];
            while (std::fgets(line, sizeof line, f))
              if (std::strstr(line, "memfd:mproc-lock")) ++n;
            std::fclose(f);
          }
          return n;
        };
        const int before = count_maps();
        for (int i = 0; i < 50; ++i) {
          std::thread([] {
            auto held = std::make_unique<mproc::Lock>();
            held->acquire();
            held.reset();
          }).join();
        }
        mproc::Lock fresh;  // creation frees what exited holders left
        const int after = count_maps();
        return after - before <= 1 ? 0 : 40;
      },
      20s);
  EXPECT_EQ(rc, 0);
}

}  // namespace
