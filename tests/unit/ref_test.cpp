// The owning pointers, the atomic word and invoke of the public headers (detail/ref.hpp,
// detail/atomic.hpp, detail/std_light.hpp): ownership counted exactly, destroyed exactly once, in
// every form a handle uses, also with many threads copying and dropping at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mproc/detail/atomic.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using mproc::detail::Atomic;
using mproc::detail::Box;
using mproc::detail::make_box;
using mproc::detail::make_ref;
using mproc::detail::order;
using mproc::detail::Ref;

struct Counted {
  explicit Counted(int* alive, int v = 0) : alive_(alive), value(v) { ++*alive_; }
  virtual ~Counted() { --*alive_; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  int* alive_;
  int value;
};
struct Derived : Counted {
  Derived(int* alive, int v) : Counted(alive, v) {}
  std::string extra = "derived";
};

TEST(Ref, MakeRefCountsCopiesAndDestroysOnceWhenTheLastGoes) {
  int alive = 0;
  {
    Ref<Counted> a = make_ref<Counted>(&alive, 7);
    EXPECT_EQ(alive, 1);
    EXPECT_EQ(a->value, 7);
    EXPECT_EQ((*a).value, 7);
    EXPECT_EQ(a.use_count(), 1u);
    Ref<Counted> b = a;
    EXPECT_EQ(a.use_count(), 2u);
    EXPECT_EQ(a.get(), b.get());
    Ref<Counted> c = std::move(b);
    EXPECT_FALSE(b);
    EXPECT_TRUE(b == nullptr);
    EXPECT_EQ(c.use_count(), 2u);
    c.reset();
    EXPECT_EQ(a.use_count(), 1u);
    EXPECT_EQ(alive, 1);
  }
  EXPECT_EQ(alive, 0);
}

TEST(Ref, FromPointerDeletesAsTheTypeItWasGiven) {
  int alive = 0;
  {
    Ref<Counted> base(new Derived(&alive, 3));
    Ref<const Counted> konst = base;  // conversion to a const base
    EXPECT_EQ(konst->value, 3);
    EXPECT_EQ(base.use_count(), 2u);
  }
  EXPECT_EQ(alive, 0);
  Ref<Counted> none(static_cast<Counted*>(nullptr));
  EXPECT_FALSE(none);
  EXPECT_EQ(none.use_count(), 0u);
}

TEST(Ref, AliasingSharesTheOwnersCountAndKeepsItAlive) {
  int alive = 0;
  Ref<int> part;
  {
    Ref<Counted> owner = make_ref<Counted>(&alive, 11);
    part = Ref<int>(owner, &owner->value);
    EXPECT_EQ(owner.use_count(), 2u);
  }
  EXPECT_EQ(alive, 1);  // the part keeps the whole object
  EXPECT_EQ(*part, 11);
  Ref<std::byte> moved(std::move(part), reinterpret_cast<std::byte*>(part.get()));
  EXPECT_FALSE(part);
  EXPECT_EQ(moved.use_count(), 1u);
  moved.reset();
  EXPECT_EQ(alive, 0);
}

TEST(Ref, AssignmentReleasesTheOldObject) {
  int alive = 0;
  Ref<Counted> a = make_ref<Counted>(&alive, 1);
  Ref<Counted> b = make_ref<Counted>(&alive, 2);
  EXPECT_EQ(alive, 2);
  a = b;
  EXPECT_EQ(alive, 1);
  EXPECT_EQ(a->value, 2);
  Ref<Counted>& same = a;
  a = same;  // self-assignment keeps it
  EXPECT_EQ(a.use_count(), 2u);
  b = Ref<Counted>(nullptr);
  a = std::move(same);
  EXPECT_EQ(alive, 1);
  a.reset();
  EXPECT_EQ(alive, 0);
}

struct Throws {
  Throws() { throw std::runtime_error("constructor failed"); }
};

TEST(Ref, MakeRefPropagatesAConstructorsErrorAndLeaksNothing) {
  EXPECT_THROW(make_ref<Throws>(), std::runtime_error);  // ASan reports a leak if it leaked
}

TEST(Ref, ThreadsCopyingAndDroppingAtOnceDestroyExactlyOnce) {
  int alive = 0;
  std::atomic<int> destroyed{0};
  struct Probe {
    explicit Probe(std::atomic<int>* d) : d_(d) {}
    ~Probe() { d_->fetch_add(1); }
    std::atomic<int>* d_;
  };
  for (int round = 0; round < 20; ++round) {
    Ref<Probe> shared = make_ref<Probe>(&destroyed);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([copy = shared] {
        for (int i = 0; i < 2000; ++i) {
          Ref<Probe> a = copy;
          Ref<Probe> b = std::move(a);
        }
      });
    }
    shared.reset();  // the threads' copies are the last ones
    for (auto& t : threads) t.join();
    EXPECT_EQ(destroyed.load(), round + 1);
  }
  EXPECT_EQ(alive, 0);
}

TEST(Box, OwnsOneObjectAndMovesOwnership) {
  int alive = 0;
  {
    Box<Counted> a = make_box<Derived>(&alive, 5);  // conversion to a base
    EXPECT_EQ(alive, 1);
    EXPECT_EQ(a->value, 5);
    Box<Counted> b = std::move(a);
    EXPECT_FALSE(a);
    EXPECT_TRUE(a == nullptr);
    EXPECT_EQ(b->value, 5);
    b = make_box<Counted>(&alive, 6);  // the old one goes
    EXPECT_EQ(alive, 1);
    Counted* raw = b.release();
    EXPECT_FALSE(b);
    Box<Counted> c(raw);
    EXPECT_EQ(c->value, 6);
  }
  EXPECT_EQ(alive, 0);
}

TEST(Box, ArrayFormValueInitialisesAndIndexes) {
  Box<std::uint32_t[]> a = make_box<std::uint32_t[]>(64);
  for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(a[i], 0u);
  a[63] = 9;
  EXPECT_EQ(a.get()[63], 9u);
  Box<std::uint32_t[]> b = std::move(a);
  EXPECT_EQ(b[63], 9u);
  EXPECT_FALSE(a);
}

TEST(Atomic, HasTheSizeOfItsWordAndStdAtomicsSemantics) {
  static_assert(sizeof(Atomic<std::uint64_t>) == sizeof(std::uint64_t));
  static_assert(alignof(Atomic<std::uint32_t>) == alignof(std::uint32_t));
  Atomic<std::uint64_t> w{5};
  EXPECT_EQ(w.load(), 5u);
  EXPECT_EQ(w.fetch_add(3, order::relaxed), 5u);
  EXPECT_EQ(w.fetch_sub(1), 8u);
  EXPECT_EQ(w.exchange(100, order::acq_rel), 7u);
  std::uint64_t expected = 99;
  EXPECT_FALSE(w.compare_exchange_strong(expected, 1));
  EXPECT_EQ(expected, 100u);
  EXPECT_TRUE(w.compare_exchange_strong(expected, 1, order::acq_rel, order::acquire));
  EXPECT_EQ(w.load(order::acquire), 1u);
  Atomic<bool> flag;
  EXPECT_FALSE(flag.load(order::relaxed));
  flag.store(true, order::release);
  EXPECT_TRUE(flag.load());
}

TEST(Atomic, ConcurrentIncrementsAreNotLost) {
  Atomic<std::uint64_t> n{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&n] {
      for (int i = 0; i < 100000; ++i) n.fetch_add(1, order::relaxed);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(n.load(), 400000u);
}

struct Adder {
  int base;
  int add(int x) const { return base + x; }
};

TEST(Invoke, CallsFunctionsObjectsAndPointersToMembers) {
  Adder a{10};
  EXPECT_EQ(mproc::detail::invoke(&Adder::add, a, 5), 15);
  EXPECT_EQ(mproc::detail::invoke(&Adder::add, &a, 6), 16);
  EXPECT_EQ(mproc::detail::invoke(&Adder::base, a), 10);
  EXPECT_EQ(mproc::detail::invoke([](int x) { return x * 2; }, 21), 42);
  static_assert(noexcept(mproc::detail::invoke([]() noexcept {})));
}

}  // namespace
