// The sinks of map and imap and the result state of apply_async, driven directly as the result
// thread drives them (pieces in the worker's layout, in any order), without a Pool: the
// template half (decoding, values) and the bookkeeping in src/pool_sinks.cpp and
// src/pool_result.cpp together. Pieces that come out of order, a chunk in several pieces, the
// unordered sink's end of a chunk, a chunk that could not be submitted, the wait with an
// expired deadline, and a result set twice.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mproc/codec.hpp>
#include <mproc/detail/pool_core.hpp>
#include <mproc/errors.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace {

using mproc::detail::Expiry;
using mproc::detail::IMapSink;
using mproc::detail::MapSink;
using mproc::detail::Outcomes;
using mproc::detail::Ref;
using mproc::detail::ResultState;
using mproc::detail::Span;
using mproc::detail::Spans;
using mproc::detail::TaskContext;

// A piece as a worker sends it: error records (index in the chunk, type, what()), then the
// values of the other covered elements, in order.
std::vector<std::byte> piece(const std::vector<std::tuple<std::uint64_t, std::string>>& errors,
                             const std::vector<int>& values) {
  std::size_t error_bytes = 0;
  for (const auto& [i, what] : errors) error_bytes += TaskContext::error_record_bytes("E", what);
  std::vector<std::byte> e(error_bytes);
  mproc::Writer ew(e.data(), e.data() + e.size());
  for (const auto& [i, what] : errors) TaskContext::write_error_record(ew, i, "E", what);
  const std::size_t value_bytes = values.size() * sizeof(int);
  std::vector<std::byte> out(TaskContext::piece_bytes(error_bytes, value_bytes));
  mproc::Writer w(out.data(), out.data() + out.size());
  TaskContext::write_piece(w, e.data(), error_bytes,
                           reinterpret_cast<const std::byte*>(values.data()), value_bytes);
  return out;
}

// Hands a piece of chunk `part` (whose element 0 is the input's element `first`) to a sink.
template <class Sink>
void deliver(Sink& sink, std::uint64_t part, std::uint64_t first, const Spans& covered,
             const std::vector<std::byte>& bytes, std::uint64_t ns = 0) {
  mproc::Reader r(bytes.data(), bytes.size());
  sink.on_elements(part, first, covered, 4711, ns, r);
}

const Expiry kNow = Expiry(mproc::detail::Clock::now());  // looks once without blocking

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

Outcomes<int>& as_ints(mproc::detail::Box<mproc::detail::OutcomesBase>& b) {
  return static_cast<Outcomes<int>&>(*b);
}

TEST(IMapSink, OrderedChunkInPiecesOutOfOrderIsTakenWholeInIndexOrder) {
  IMapSink<int> sink(/*ordered=*/true, nullptr);
  sink.expect(0, 4);
  deliver(sink, 0, 100, Spans{Span{2, 4}}, piece({{3, "bad"}}, {20}));
  EXPECT_EQ(sink.take(0, kNow), nullptr);  // elements 0 and 1 are missing
  deliver(sink, 0, 100, Spans{Span{0, 2}}, piece({}, {0, 10}));
  auto got = sink.take(0, kNow);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(as_ints(got).values, (std::vector<int>{0, 10, 20}));
  ASSERT_EQ(as_ints(got).element_errors.size(), 1u);
  EXPECT_EQ(as_ints(got).element_errors[0].first, 3u);
  EXPECT_NE(what_of(as_ints(got).element_errors[0].second).find("input element 103"),
            std::string::npos)
      << what_of(as_ints(got).element_errors[0].second);
  EXPECT_TRUE(as_ints(got).completes_chunk);
}

TEST(IMapSink, OrderedLaterChunkWaitsForItsTurn) {
  IMapSink<int> sink(true, nullptr);
  sink.expect(0, 1);
  sink.expect(1, 2);
  deliver(sink, 1, 1, Spans{Span{0, 2}}, piece({}, {5, 6}));
  EXPECT_EQ(sink.take(0, kNow), nullptr);
  deliver(sink, 0, 0, Spans{Span{0, 1}}, piece({}, {4}));
  auto a = sink.take(0, kNow);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(as_ints(a).values, (std::vector<int>{4}));
  auto b = sink.take(1, kNow);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(as_ints(b).values, (std::vector<int>{5, 6}));
}

TEST(IMapSink, OrderedElementErrorsGatherWithValues) {
  IMapSink<int> sink(true, nullptr);
  sink.expect(0, 3);
  deliver(sink, 0, 0, Spans{Span{0, 1}}, piece({}, {1}));
  sink.on_elements_error(0, 0, Spans{Span{2, 3}}, std::make_exception_ptr(mproc::ValueError("x")));
  EXPECT_EQ(sink.take(0, kNow), nullptr);
  deliver(sink, 0, 0, Spans{Span{1, 2}}, piece({}, {2}));
  auto got = sink.take(0, kNow);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(as_ints(got).values, (std::vector<int>{1, 2}));
  ASSERT_EQ(as_ints(got).element_errors.size(), 1u);
  EXPECT_EQ(as_ints(got).element_errors[0].first, 2u);
}

TEST(IMapSink, OrderedChunkNotSubmittedEndsWithItsError) {
  IMapSink<int> sink(true, nullptr);
  sink.expect(0, 2);
  sink.on_error(0, std::make_exception_ptr(mproc::ValueError("closed")));
  auto got = sink.take(0, kNow);
  ASSERT_NE(got, nullptr);
  ASSERT_TRUE(as_ints(got).error);
  EXPECT_EQ(what_of(as_ints(got).error), "closed");
}

TEST(IMapSink, UnorderedPiecesComeAsTheyCameAndTheLastEndsTheChunk) {
  IMapSink<int> sink(/*ordered=*/false, nullptr);
  sink.expect(0, 3);
  sink.expect(1, 1);
  EXPECT_EQ(sink.take(std::nullopt, kNow), nullptr);
  deliver(sink, 1, 3, Spans{Span{0, 1}}, piece({}, {30}));
  deliver(sink, 0, 0, Spans{Span{0, 1}, Span{2, 3}}, piece({{2, "bad"}}, {0}));
  deliver(sink, 0, 0, Spans{Span{1, 2}}, piece({}, {10}));
  auto a = sink.take(std::nullopt, kNow);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(as_ints(a).values, (std::vector<int>{30}));
  EXPECT_TRUE(as_ints(a).completes_chunk);
  auto b = sink.take(std::nullopt, kNow);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(as_ints(b).values, (std::vector<int>{0}));
  ASSERT_EQ(as_ints(b).element_errors.size(), 1u);
  EXPECT_EQ(as_ints(b).element_errors[0].first, 1u);  // its place in the piece
  EXPECT_FALSE(as_ints(b).completes_chunk);
  auto c = sink.take(std::nullopt, kNow);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(as_ints(c).values, (std::vector<int>{10}));
  EXPECT_TRUE(as_ints(c).completes_chunk);
  EXPECT_EQ(sink.take(std::nullopt, kNow), nullptr);
}

TEST(IMapSink, NsPerItemAveragesTheMeasuredPieces) {
  IMapSink<int> sink(false, nullptr);
  EXPECT_FALSE(sink.ns_per_item().has_value());
  sink.expect(0, 4);
  deliver(sink, 0, 0, Spans{Span{0, 1}}, piece({}, {1}), 100);
  deliver(sink, 0, 0, Spans{Span{1, 4}}, piece({}, {1, 2, 3}), 500);
  sink.expect(1, 1);
  deliver(sink, 1, 4, Spans{Span{0, 1}}, piece({}, {9}), 0);  // unmeasured: not counted
  ASSERT_TRUE(sink.ns_per_item().has_value());
  EXPECT_DOUBLE_EQ(*sink.ns_per_item(), 150.0);
}

TEST(MapSink, ChunksInPiecesAndOutOfOrderMakeOneVectorInInputOrder) {
  auto st = mproc::detail::make_ref<ResultState<std::vector<int>>>();
  MapSink<int> sink(st, {2, 3}, nullptr);
  deliver(sink, 1, 2, Spans{Span{1, 3}}, piece({}, {3, 4}));
  deliver(sink, 0, 0, Spans{Span{0, 2}}, piece({}, {0, 1}));
  EXPECT_FALSE(st->ready());
  deliver(sink, 1, 2, Spans{Span{0, 1}}, piece({}, {2}));
  ASSERT_TRUE(st->wait(kNow));
  EXPECT_FALSE(st->error());
  EXPECT_EQ(st->value(), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(MapSink, FirstElementErrorFailsTheMapAndLaterPiecesAreDropped) {
  auto st = mproc::detail::make_ref<ResultState<std::vector<int>>>();
  MapSink<int> sink(st, {2, 2}, nullptr);
  deliver(sink, 0, 0, Spans{Span{0, 1}}, piece({}, {0}));
  deliver(sink, 1, 2, Spans{Span{0, 2}}, piece({{1, "third"}}, {2}));
  ASSERT_TRUE(st->ready());
  ASSERT_TRUE(st->error());
  EXPECT_NE(what_of(st->error()).find("input element 3"), std::string::npos)
      << what_of(st->error());
  deliver(sink, 0, 0, Spans{Span{1, 2}}, piece({}, {1}));
  sink.on_elements_error(0, 0, Spans{Span{1, 2}}, std::make_exception_ptr(mproc::ValueError("y")));
  EXPECT_NE(what_of(st->error()).find("input element 3"), std::string::npos);
}

TEST(ResultState, IsSetOnceAndAnExpiredWaitOnlyLooks) {
  auto st = mproc::detail::make_ref<ResultState<int>>();
  int called = 0;
  st->callback = [&](const int& v) { called += v; };
  EXPECT_FALSE(st->wait(kNow));
  EXPECT_FALSE(st->ready());
  st->set_value(7);
  st->set_value(8);
  st->set_error(std::make_exception_ptr(std::runtime_error("late")));
  EXPECT_TRUE(st->wait(kNow));
  EXPECT_TRUE(st->wait(std::nullopt));
  EXPECT_EQ(st->value(), 7);
  EXPECT_FALSE(st->error());
  EXPECT_EQ(called, 7);
}

}  // namespace
