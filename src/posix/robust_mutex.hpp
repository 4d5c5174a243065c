// posix/robust_mutex.hpp — the robust, process-shared pthread mutex underneath every mproc lock,
// and the one reader of its lock word.
//
// The calls return pthread's error number (0: success; EOWNERDEAD: acquired from a dead owner),
// as pthread does; they are inline because they sit on the lock and queue fast paths.
//
// The lock word: glibc keeps the owner's kernel thread id in the futex word of a robust mutex
// (`__data.__lock`), and the kernel sets FUTEX_OWNER_DIED in it (clearing the id) when the owner
// dies with the lock on its robust list; FUTEX_WAITERS says a thread sleeps on it. That is the
// kernel's robust-futex ABI (Documentation/locking/robust-futex-ABI.rst), the same on every Linux
// architecture, reached through a glibc field name: it is read in robust_mutex_word() only.
#pragma once

#include <linux/futex.h>
#include <pthread.h>
#include <sys/types.h>
#include <time.h>

#include <mproc/detail/expiry.hpp>

#include "posix/timespec.hpp"

#if !defined(__GLIBC__)
#error "mproc reads the owner of a robust mutex from glibc's lock word (posix/robust_mutex.hpp)"
#endif

namespace mproc::detail {

// Makes `m` a robust (PTHREAD_MUTEX_ROBUST), process-shared, error-checking mutex, unlocked.
void robust_mutex_init(pthread_mutex_t& m) noexcept;

inline int robust_mutex_trylock(pthread_mutex_t& m) noexcept { return pthread_mutex_trylock(&m); }

// Blocks until acquired or the CLOCK_MONOTONIC time `until` passes (ETIMEDOUT).
inline int robust_mutex_lock_until(pthread_mutex_t& m, Clock::time_point until) noexcept {
  const timespec ts = to_timespec(until);
  return pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts);
}

// After EOWNERDEAD: marks the mutex usable again (pthread_mutex_consistent).
inline void robust_mutex_make_consistent(pthread_mutex_t& m) noexcept {
  (void)pthread_mutex_consistent(&m);
}

// 0, or EPERM when the calling thread does not hold it.
inline int robust_mutex_unlock(pthread_mutex_t& m) noexcept { return pthread_mutex_unlock(&m); }

// What the lock word says, in one relaxed load (no system call, no ordering: a hint, as any look
// at a lock another process may be taking).
struct RobustMutexWord {
  pid_t owner;      // the holder's kernel thread id; 0 when free or when its owner died
  bool owner_died;  // FUTEX_OWNER_DIED: the holder died and nobody has taken the lock since
};

inline RobustMutexWord robust_mutex_word(const pthread_mutex_t& m) noexcept {
  const int word = __atomic_load_n(&m.__data.__lock, __ATOMIC_RELAXED);
  return {static_cast<pid_t>(word & FUTEX_TID_MASK), (word & FUTEX_OWNER_DIED) != 0};
}

// Whether `tid` is a live thread of the calling process (tgkill with signal 0). A thread that has
// exited has had its robust list processed already: the kernel does it before the thread leaves.
bool thread_alive_in_this_process(pid_t tid) noexcept;

}  // namespace mproc::detail
