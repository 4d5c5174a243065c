// posix/thread_id.hpp — the calling thread's kernel thread id, cached, correct after fork.
#pragma once

#include <sys/types.h>

namespace mproc::detail {

// gettid() without a system call after the first one in each thread. The cache is cleared in the
// child of fork (pthread_atfork), where the surviving thread has a new id.
pid_t this_thread_id() noexcept;

// getpid(), cached the same way.
pid_t this_process_id() noexcept;

}  // namespace mproc::detail
