// mproc/detail/atomic.hpp — one lock-free word with atomic loads, stores and read-modify-writes,
// for public headers that must not include <atomic>.
//
// No stability promise. Why it exists: with libstdc++ 12 and -std=c++20, <atomic> brings the C++20
// wait/notify machinery (<bits/atomic_wait.h>, <bits/std_mutex.h>, ...) into every file that
// includes mproc, and the public headers need only a few words (docs/design.md, "Header cost").
// `Atomic<T>` has std::atomic's member names and semantics for what it offers; the memory order is
// `detail::order`, whose values are the compiler's own (__ATOMIC_*). It is built on GCC's and
// Clang's `__atomic` builtins, which ThreadSanitizer understands as it understands std::atomic, and
// has the size and alignment of T, so it can lie in shared memory between processes (T must be
// lock-free: checked). src/ files, which pay no header cost for users, use std::atomic.
#pragma once

#include <type_traits>

namespace mproc::detail {

enum class order : int {
  relaxed = __ATOMIC_RELAXED,
  acquire = __ATOMIC_ACQUIRE,
  release = __ATOMIC_RELEASE,
  acq_rel = __ATOMIC_ACQ_REL,
  seq_cst = __ATOMIC_SEQ_CST,
};

template <class T>
class Atomic {
  static_assert(std::is_trivially_copyable_v<T> && (std::is_integral_v<T> || std::is_pointer_v<T>),
                "detail::Atomic<T>: T is an integer, bool or pointer");
  static_assert(__atomic_always_lock_free(sizeof(T), 0), "detail::Atomic<T>: T is lock-free");

 public:
  constexpr Atomic() noexcept = default;
  constexpr explicit Atomic(T v) noexcept : v_(v) {}
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(order o = order::seq_cst) const noexcept {
    return __atomic_load_n(&v_, static_cast<int>(o));
  }
  void store(T v, order o = order::seq_cst) noexcept {
    __atomic_store_n(&v_, v, static_cast<int>(o));
  }
  T exchange(T v, order o = order::seq_cst) noexcept {
    return __atomic_exchange_n(&v_, v, static_cast<int>(o));
  }
  // As std::atomic's: on failure `expected` gets the value seen.
  bool compare_exchange_strong(T& expected, T desired, order success = order::seq_cst,
                               order failure = order::seq_cst) noexcept {
    return __atomic_compare_exchange_n(&v_, &expected, desired, false, static_cast<int>(success),
                                       static_cast<int>(failure));
  }
  T fetch_add(T d, order o = order::seq_cst) noexcept
    requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
  {
    return __atomic_fetch_add(&v_, d, static_cast<int>(o));
  }
  T fetch_sub(T d, order o = order::seq_cst) noexcept
    requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
  {
    return __atomic_fetch_sub(&v_, d, static_cast<int>(o));
  }

 private:
  alignas(sizeof(T)) T v_{};
};

}  // namespace mproc::detail
