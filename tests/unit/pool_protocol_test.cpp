// The Pool's wire protocol (src/pool/protocol.hpp): a piece written from a worker's staging areas
// by the event codec reads back through TaskContext's layout functions, the staged word
// round-trips, and an event whose body does not decode becomes kUndecodable for its task.
#include <cstddef>
#include <cstdint>
#include <mproc/codec.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "pool/protocol.hpp"

namespace {

using mproc::detail::EventMsg;
using mproc::detail::Span;
using mproc::detail::Spans;
using mproc::detail::TaskContext;

// Two error records and three 8-byte values, as a worker stages them.
struct Staging {
  std::vector<std::byte> errors;
  std::vector<std::byte> values;
  Staging() {
    const std::size_t a = TaskContext::error_record_bytes("std::runtime_error", "boom");
    const std::size_t b = TaskContext::error_record_bytes("Custom", "");
    errors.resize(a + b);
    mproc::Writer w(errors.data(), errors.data() + errors.size());
    TaskContext::write_error_record(w, 1, "std::runtime_error", "boom");
    TaskContext::write_error_record(w, 4, "Custom", "");
    for (std::uint64_t v : {10u, 30u, 20u}) {
      const auto* p = reinterpret_cast<const std::byte*>(&v);
      values.insert(values.end(), p, p + sizeof v);
    }
  }
};

TEST(PoolProtocol, PieceSentFromStagingReadsBackThroughTheLayout) {
  Staging st;
  EventMsg ev;
  ev.kind = mproc::detail::kPart;
  ev.slot = 1;
  ev.pid = 1234;
  ev.id = 77;
  ev.ns = 5000;
  ev.set_piece(Spans{Span{0, 5}}, st.errors.data(), st.errors.size(), st.values.data(),
               st.values.size());
  const std::vector<std::byte> bytes = mproc::to_bytes(ev);
  ASSERT_EQ(bytes.size(), mproc::encoded_size(ev));

  const auto back = mproc::from_bytes<EventMsg>(bytes);
  EXPECT_EQ(back.kind, mproc::detail::kPart);
  EXPECT_EQ(back.slot, 1);
  EXPECT_EQ(back.pid, 1234);
  EXPECT_EQ(back.id, 77u);
  EXPECT_EQ(back.ns, 5000u);
  ASSERT_EQ(back.covered.size(), 1u);
  EXPECT_EQ(back.covered[0].end, 5u);
  ASSERT_EQ(back.payload.size(), TaskContext::piece_bytes(st.errors.size(), st.values.size()));

  mproc::Reader r(back.payload.data(), back.payload.size());
  const std::uint64_t error_bytes = TaskContext::read_piece_header(r);
  ASSERT_EQ(error_bytes, st.errors.size());
  std::uint64_t index = 0;
  std::string type, what;
  TaskContext::read_error_record(r, index, type, what);
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(type, "std::runtime_error");
  EXPECT_EQ(what, "boom");
  TaskContext::read_error_record(r, index, type, what);
  EXPECT_EQ(index, 4u);
  EXPECT_EQ(type, "Custom");
  EXPECT_EQ(what, "");
  std::vector<std::uint64_t> values(3);
  r.read(values.data(), 3 * sizeof(std::uint64_t));
  EXPECT_EQ(values, (std::vector<std::uint64_t>{10, 30, 20}));
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(PoolProtocol, PieceHeaderThrowsDecodeErrorWhenErrorsExceedTheBytesLeft) {
  std::vector<std::byte> bytes(sizeof(std::uint64_t) + 4);
  mproc::Writer w(bytes.data(), bytes.data() + bytes.size());
  w.write_value(std::uint64_t{5});  // 5 bytes of error records announced, 4 present
  mproc::Reader r(bytes.data(), bytes.size());
  EXPECT_THROW((void)TaskContext::read_piece_header(r), mproc::DecodeError);
}

TEST(PoolProtocol, StagedWordRoundTripsAtItsFieldLimits) {
  const std::uint64_t records = (1u << 24) - 1;
  const std::uint64_t values = mproc::detail::kStageValueBytes;
  const std::uint64_t errors = mproc::detail::kStageErrorBytes;
  const auto st = TaskContext::unpack_staged(TaskContext::pack_staged(records, values, errors));
  EXPECT_EQ(st.records, records);
  EXPECT_EQ(st.value_bytes, values);
  EXPECT_EQ(st.error_bytes, errors);
  EXPECT_EQ(TaskContext::unpack_staged(0).records, 0u);
}

TEST(PoolProtocol, EventWhoseBodyDoesNotDecodeBecomesUndecodableForItsTask) {
  EventMsg ev;
  ev.kind = mproc::detail::kOk;
  ev.slot = 0;
  ev.id = 9;
  ev.payload.assign(64, std::byte{1});
  std::vector<std::byte> bytes = mproc::to_bytes(ev);
  bytes.resize(bytes.size() - 40);  // the payload is cut short: its count promises more
  mproc::Reader r(bytes.data(), bytes.size());
  const EventMsg back = mproc::codec<EventMsg>::decode(r);
  EXPECT_EQ(back.kind, mproc::detail::kUndecodable);
  EXPECT_EQ(back.sent_kind, mproc::detail::kOk);
  EXPECT_EQ(back.id, 9u);
  EXPECT_FALSE(back.type.empty());
  EXPECT_EQ(r.remaining(), 0u);  // the rest of the message is consumed
}

}  // namespace
