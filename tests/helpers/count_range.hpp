// helpers/count_range.hpp — `count(b, e)` and `count_from(b)`: integer ranges for tests.
//
// std::views::iota does not compile with clang 14 on libstdc++ 12 (a concepts bug), so tests use
// this small forward range instead. `count_from(b)` never ends.
#pragma once

#include <cstddef>
#include <iterator>
#include <limits>

namespace mproc_test {

template <class T>
class CountRange {
 public:
  CountRange(T b, T e) : b_(b), e_(e) {}
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(T v) : v_(v) {}
    T operator*() const { return v_; }
    iterator& operator++() {
      ++v_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++v_;
      return old;
    }
    bool operator==(const iterator& o) const { return v_ == o.v_; }

   private:
    T v_{};
  };
  iterator begin() const { return iterator(b_); }
  iterator end() const { return iterator(e_); }

 private:
  T b_;
  T e_;
};

template <class T>
CountRange<T> count(T b, T e) {
  return CountRange<T>(b, e);
}
// Ends only at the type's maximum, which no test reaches.
template <class T>
CountRange<T> count_from(T b) {
  return CountRange<T>(b, std::numeric_limits<T>::max());
}

}  // namespace mproc_test
