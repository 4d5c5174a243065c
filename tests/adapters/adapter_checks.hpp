// adapters/adapter_checks.hpp — the checks every codec adapter's test runs on its own types: a
// value through to_bytes/from_bytes (with its exact size), nested in the standard templates and in
// a serialize() struct, through a Queue and a Pipe between processes, as a Process argument, and
// the framing's hostile cases. `Eq` compares two values (protobuf messages have no operator==).
//
// Every cross-process wait is bounded: children are forked with a deadline (helpers/child.hpp),
// gets and receives have timeouts.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "helpers/child.hpp"

namespace adapter_checks {

using namespace std::chrono_literals;
inline constexpr auto kLong = 60s;

// A user struct that holds an adapter's type as a member, through mproc's serialize().
template <class T>
struct Holder {
  std::string name;
  T value;
  std::vector<T> more;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, value, more);
  }
};

// The uint64 frame length every adapter writes first, read from encoded bytes.
inline std::uint64_t frame_length(std::span<const std::byte> bytes) {
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), sizeof n);
  return n;
}

// to_bytes/from_bytes: the value, its exact encoded size, the frame's length field, and the value
// nested in a vector, an optional, a tuple and a serialize() struct.
template <class T, class Eq>
void expect_round_trips(const T& v, Eq eq) {
  const std::vector<std::byte> bytes = mproc::to_bytes(v);
  EXPECT_EQ(mproc::encoded_size(v), bytes.size());
  ASSERT_GE(bytes.size(), sizeof(std::uint64_t));
  EXPECT_EQ(frame_length(bytes), bytes.size() - sizeof(std::uint64_t));
  EXPECT_TRUE(eq(mproc::from_bytes<T>(bytes), v));

  const std::vector<T> vec{v, T{}, v};
  EXPECT_EQ(mproc::encoded_size(vec), mproc::to_bytes(vec).size());
  const auto vec_back = mproc::from_bytes<std::vector<T>>(mproc::to_bytes(vec));
  ASSERT_EQ(vec_back.size(), 3u);
  EXPECT_TRUE(eq(vec_back[0], v));
  EXPECT_TRUE(eq(vec_back[1], T{}));
  EXPECT_TRUE(eq(vec_back[2], v));

  const std::optional<T> opt = v;
  const auto opt_back = mproc::from_bytes<std::optional<T>>(mproc::to_bytes(opt));
  ASSERT_TRUE(opt_back.has_value());
  EXPECT_TRUE(eq(*opt_back, v));
  EXPECT_FALSE(mproc::from_bytes<std::optional<T>>(mproc::to_bytes(std::optional<T>{})));

  const std::tuple<int, T, std::string> tup{7, v, "after"};
  EXPECT_EQ(mproc::encoded_size(tup), mproc::to_bytes(tup).size());
  const auto tup_back = mproc::from_bytes<std::tuple<int, T, std::string>>(mproc::to_bytes(tup));
  EXPECT_EQ(std::get<0>(tup_back), 7);
  EXPECT_TRUE(eq(std::get<1>(tup_back), v));
  EXPECT_EQ(std::get<2>(tup_back), "after");

  const Holder<T> h{"holder", v, {T{}, v}};
  EXPECT_EQ(mproc::encoded_size(h), mproc::to_bytes(h).size());
  const auto h_back = mproc::from_bytes<Holder<T>>(mproc::to_bytes(h));
  EXPECT_EQ(h_back.name, "holder");
  EXPECT_TRUE(eq(h_back.value, v));
  ASSERT_EQ(h_back.more.size(), 2u);
  EXPECT_TRUE(eq(h_back.more[0], T{}));
  EXPECT_TRUE(eq(h_back.more[1], v));
}

// Each value put by a child process, got by this one, in order.
template <class T, class Eq>
void expect_through_queue(const std::vector<T>& values, Eq eq, mproc::QueueOptions options = {}) {
  mproc::Queue<T> q(0, options);
  mproc_test::Child producer([&] {
    for (const T& v : values) q.put(v, kLong);
    return 0;
  });
  for (std::size_t i = 0; i < values.size(); ++i) {
    const T got = q.get(kLong);
    EXPECT_TRUE(eq(got, values[i])) << "message " << i;
  }
  EXPECT_EQ(producer.wait(kLong), 0);
}

// A child receives each value on a Pipe and sends it back; this process compares.
template <class T, class Eq>
void expect_through_pipe(const std::vector<T>& values, Eq eq) {
  auto ends = mproc::Pipe();
  mproc::Connection& here = ends.first;
  mproc::Connection& there = ends.second;
  mproc_test::Child echo([&] {
    for (std::size_t i = 0; i < values.size(); ++i) {
      auto v = there.recv<T>(kLong);
      if (!v) return 1;
      there.send(*v);
    }
    return 0;
  });
  for (std::size_t i = 0; i < values.size(); ++i) {
    here.send(values[i]);
    const std::optional<T> back = here.recv<T>(kLong);
    ASSERT_TRUE(back.has_value()) << "message " << i;
    EXPECT_TRUE(eq(*back, values[i])) << "message " << i;
  }
  EXPECT_EQ(echo.wait(kLong), 0);
}

// The value as an argument of a Process target, which sends it back on a Queue.
template <class T, class Eq>
void expect_as_process_argument(const T& v, Eq eq) {
  mproc::Queue<T> q;
  mproc::Process p([&q](const T& arg) { q.put(arg, kLong); }, v);
  p.start();
  const T got = q.get(kLong);
  EXPECT_TRUE(eq(got, v));
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// A Writer whose refill throws after `windows` windows of 64 bytes (a Queue put timing out in the
// middle of a streamed message, a peer gone): encode passes the exception on, whatever the
// library is doing at that moment, and nothing terminates.
struct RefillFailed {};
template <class T>
void expect_refill_exception_passes_through(const T& big) {
  for (int windows : {1, 3, 20}) {
    std::vector<std::byte> buf(64 * static_cast<std::size_t>(windows + 1));
    struct Ctx {
      std::byte* next;
      int left;
    } ctx{buf.data() + 64, windows};
    mproc::Writer w(
        buf.data(), buf.data() + 64,
        [](mproc::Writer& wr, void* c) {
          auto* x = static_cast<Ctx*>(c);
          if (x->left-- == 0) throw RefillFailed{};
          wr.set_window(x->next, x->next + 64);
          x->next += 64;
        },
        &ctx);
    EXPECT_THROW(mproc::encode(w, big), RefillFailed) << windows << " windows";
  }
}

// A put that times out while a large value streams into a ring nobody drains throws Full; a
// consumer then discards the chunks already sent and gets the next value.
template <class T, class Eq>
void expect_put_timeout_mid_stream_leaves_the_queue_usable(const T& big, const T& small, Eq eq) {
  mproc::Queue<T> q(0, mproc::QueueOptions{.capacity = 64 * 1024});
  EXPECT_THROW(q.put(big, 50ms), mproc::Full);
  mproc_test::Child consumer([&] {
    const T got = q.get(kLong);
    return eq(got, small) ? 0 : 1;
  });
  q.put(small, kLong);
  EXPECT_EQ(consumer.wait(kLong), 0);
}

// Hostile frames: truncated anywhere, a length larger than the rest, a length of 2^64-1.
template <class T>
void expect_hostile_framing_throws(const T& v) {
  const std::vector<std::byte> bytes = mproc::to_bytes(v);
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, sizeof(std::uint64_t),
                          bytes.size() > 9 ? bytes.size() - 1 : std::size_t{1}}) {
    if (cut >= bytes.size()) continue;
    EXPECT_THROW((void)mproc::from_bytes<T>(std::span(bytes).first(cut)), mproc::DecodeError)
        << "cut at " << cut;
  }
  for (std::uint64_t n : {std::uint64_t{bytes.size()}, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
    std::vector<std::byte> longer = bytes;
    std::memcpy(longer.data(), &n, sizeof n);
    try {
      (void)mproc::from_bytes<T>(longer);
      ADD_FAILURE() << "a frame length of " << n << " decoded";
    } catch (const mproc::DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find("exceeds"), std::string::npos) << e.what();
    }
  }
}

}  // namespace adapter_checks
