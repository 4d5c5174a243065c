// mproc/detail/ref.hpp — the owning pointers of mproc's public headers: `Ref<T>` (shared, as
// std::shared_ptr) and `Box<T>` (unique, as std::unique_ptr), without <memory>.
//
// No stability promise. Why they exist: the compile time of every file that includes mproc (the
// measurements are in docs/design.md, "Header cost"). With libstdc++ 12 and -std=c++20,
// <bits/unique_ptr.h> includes <ostream> (for `operator<<` of a unique_ptr) and <memory> adds the
// allocator machinery, the uninitialized algorithms and the atomic shared_ptr: together a quarter
// of what mproc.hpp cost a file. What mproc's handles need is much less:
//   * `Ref<T>`: shared ownership of an object whose type may be incomplete where the handle is
//     copied or destroyed (the deleter is recorded when ownership starts, as shared_ptr's); counts
//     are atomic, so copies may be made and dropped in several threads at once; the aliasing form
//     `Ref<T>(owner, p)` (p lives as long as owner's object); conversion to a base. No weak
//     references, no custom deleters beyond the aliasing form, no allocators.
//   * `Box<T>` / `Box<T[]>`: unique ownership; the destructor of an incomplete T must be
//     instantiated where T is complete (as unique_ptr: define the owner's destructor in src/).
// A counter is a plain word updated with the compiler's `__atomic` builtins (GCC and Clang), which
// ThreadSanitizer understands as it understands std::atomic.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace mproc::detail {

// The count of one owned object and how to destroy it (and itself) when the count reaches zero.
struct RefBlock {
  std::size_t count = 1;
  void (*destroy)(RefBlock*) noexcept = nullptr;

  void acquire() noexcept { __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED); }
  void release() noexcept {
    if (__atomic_fetch_sub(&count, 1, __ATOMIC_ACQ_REL) == 1) destroy(this);
  }
};

template <class T>
class Ref {
 public:
  using element_type = T;

  constexpr Ref() noexcept = default;
  constexpr Ref(std::nullptr_t) noexcept {}  // NOLINT: implicit as shared_ptr's

  // Takes ownership of `p` (which `new` made; deleted as `U` when the last Ref goes). Throws
  // std::bad_alloc (deleting p) when the count cannot be allocated.
  template <class U>
    requires std::is_convertible_v<U*, T*>
  explicit Ref(U* p) {
    if (p == nullptr) return;
    struct Block final : RefBlock {
      U* owned;
    };
    Block* b;
    try {
      b = new Block;
    } catch (...) {
      delete p;
      throw;
    }
    b->owned = p;
    b->destroy = [](RefBlock* rb) noexcept {
      auto* self = static_cast<Block*>(rb);
      delete self->owned;
      delete self;
    };
    block_ = b;
    p_ = p;
  }

  // Aliasing: shares `owner`'s count and points at `p` (a part of owner's object, or anything
  // that lives as long as it).
  template <class U>
  Ref(const Ref<U>& owner, T* p) noexcept : p_(p), block_(owner.block_) {
    if (block_ != nullptr) block_->acquire();
  }
  template <class U>
  Ref(Ref<U>&& owner, T* p) noexcept : p_(p), block_(std::exchange(owner.block_, nullptr)) {
    owner.p_ = nullptr;
  }

  Ref(const Ref& o) noexcept : p_(o.p_), block_(o.block_) {
    if (block_ != nullptr) block_->acquire();
  }
  Ref(Ref&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), block_(std::exchange(o.block_, nullptr)) {}
  template <class U>
    requires std::is_convertible_v<U*, T*>
  Ref(const Ref<U>& o) noexcept : p_(o.p_), block_(o.block_) {  // NOLINT: implicit as shared_ptr's
    if (block_ != nullptr) block_->acquire();
  }
  template <class U>
    requires std::is_convertible_v<U*, T*>
  Ref(Ref<U>&& o) noexcept  // NOLINT: implicit as shared_ptr's
      : p_(std::exchange(o.p_, nullptr)), block_(std::exchange(o.block_, nullptr)) {}

  Ref& operator=(Ref o) noexcept {
    swap(o);
    return *this;
  }
  ~Ref() {
    if (block_ != nullptr) block_->release();
  }

  void swap(Ref& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(block_, o.block_);
  }
  void reset() noexcept { Ref().swap(*this); }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  template <class U = T>
    requires(!std::is_void_v<U>)
  U& operator*() const noexcept {
    return *p_;
  }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  // How many Refs share the object now (a snapshot: other threads may change it at once).
  std::size_t use_count() const noexcept {
    return block_ == nullptr ? 0 : __atomic_load_n(&block_->count, __ATOMIC_RELAXED);
  }

  friend bool operator==(const Ref& a, std::nullptr_t) noexcept { return a.p_ == nullptr; }
  template <class U>
  friend bool operator==(const Ref& a, const Ref<U>& b) noexcept {
    return a.p_ == b.get();
  }

 private:
  template <class U>
  friend class Ref;
  template <class U, class... Args>
  friend Ref<U> make_ref(Args&&... args);

  T* p_ = nullptr;
  RefBlock* block_ = nullptr;
};

// The object and its count in one allocation (make_ref's).
template <class T>
struct RefInline final : RefBlock {
  template <class... A>
  explicit RefInline(A&&... a) : value(std::forward<A>(a)...) {}
  T value;
};

// As std::make_shared: the object and its count in one allocation.
template <class T, class... Args>
Ref<T> make_ref(Args&&... args) {
  auto* b = new RefInline<T>(std::forward<Args>(args)...);
  b->destroy = [](RefBlock* rb) noexcept { delete static_cast<RefInline<T>*>(rb); };
  Ref<T> r;
  r.p_ = &b->value;
  r.block_ = b;
  return r;
}

// Unique ownership of one object (Box<T>) or of an array (Box<T[]>), as std::unique_ptr with its
// default deleter.
template <class T>
class Box {
  using E = std::remove_extent_t<T>;

 public:
  using element_type = E;

  constexpr Box() noexcept = default;
  constexpr Box(std::nullptr_t) noexcept {}  // NOLINT: implicit as unique_ptr's
  explicit Box(E* p) noexcept : p_(p) {}
  template <class U>
    requires(!std::is_array_v<T> && !std::is_array_v<U> && std::is_convertible_v<U*, E*>)
  Box(Box<U>&& o) noexcept : p_(o.release()) {}  // NOLINT: implicit as unique_ptr's
  Box(Box&& o) noexcept : p_(o.release()) {}
  Box& operator=(Box&& o) noexcept {
    reset(o.release());
    return *this;
  }
  Box(const Box&) = delete;
  Box& operator=(const Box&) = delete;
  ~Box() { reset(); }

  void reset(E* p = nullptr) noexcept {
    E* old = std::exchange(p_, p);
    if (old == nullptr) return;
    if constexpr (std::is_array_v<T>) {
      delete[] old;
    } else {
      static_assert(sizeof(E) > 0, "Box<T>: T must be complete where the Box is destroyed");
      delete old;
    }
  }
  E* release() noexcept { return std::exchange(p_, nullptr); }

  E* get() const noexcept { return p_; }
  E* operator->() const noexcept { return p_; }
  template <class U = E>
    requires(!std::is_void_v<U>)
  U& operator*() const noexcept {
    return *p_;
  }
  E& operator[](std::size_t i) const noexcept
    requires std::is_array_v<T>
  {
    return p_[i];
  }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  friend bool operator==(const Box& a, std::nullptr_t) noexcept { return a.p_ == nullptr; }

 private:
  E* p_ = nullptr;
};

// As std::make_unique: Box<T> from constructor arguments, Box<T[]> of n value-initialised
// elements.
template <class T, class... Args>
  requires(!std::is_array_v<T>)
Box<T> make_box(Args&&... args) {
  return Box<T>(new T(std::forward<Args>(args)...));
}
template <class T>
  requires std::is_unbounded_array_v<T>
Box<T> make_box(std::size_t n) {
  return Box<T>(new std::remove_extent_t<T>[n]());
}

}  // namespace mproc::detail
