// thread_annotations.hpp — Clang's thread-safety annotations (checked with -Wthread-safety, which
// the build enables for Clang; no-ops with other compilers), and a mutex and guard that carry them.
#pragma once

#include <mutex>

#if defined(__clang__)
#define MPROC_TSA(x) __attribute__((x))
#else
#define MPROC_TSA(x)
#endif
#define MPROC_CAPABILITY(x) MPROC_TSA(capability(x))
#define MPROC_SCOPED_CAPABILITY MPROC_TSA(scoped_lockable)
#define MPROC_GUARDED_BY(x) MPROC_TSA(guarded_by(x))
#define MPROC_REQUIRES(...) MPROC_TSA(requires_capability(__VA_ARGS__))
#define MPROC_ACQUIRE(...) MPROC_TSA(acquire_capability(__VA_ARGS__))
#define MPROC_RELEASE(...) MPROC_TSA(release_capability(__VA_ARGS__))
#define MPROC_EXCLUDES(...) MPROC_TSA(locks_excluded(__VA_ARGS__))
#define MPROC_NO_THREAD_SAFETY_ANALYSIS MPROC_TSA(no_thread_safety_analysis)

namespace mproc::detail {

// std::mutex, annotated. `native()` is for std::condition_variable waits (whose functions then
// need MPROC_NO_THREAD_SAFETY_ANALYSIS: the analysis cannot follow a std::unique_lock).
class MPROC_CAPABILITY("mutex") Mutex {
 public:
  void lock() MPROC_ACQUIRE() { m_.lock(); }
  void unlock() MPROC_RELEASE() { m_.unlock(); }
  std::mutex& native() noexcept { return m_; }

 private:
  std::mutex m_;
};

// std::lock_guard for Mutex, annotated.
class MPROC_SCOPED_CAPABILITY Guard {
 public:
  explicit Guard(Mutex& m) MPROC_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~Guard() MPROC_RELEASE() { m_.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  Mutex& m_;
};

}  // namespace mproc::detail
