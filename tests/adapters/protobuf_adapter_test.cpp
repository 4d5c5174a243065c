// mproc/codec/protobuf.hpp: protobuf messages (generated at build time from
// adapter_messages.proto and adapter_required.proto) through to_bytes/from_bytes, nested in
// standard types, through a Queue (also streamed), a Pool, a Pipe and as a Process argument, with
// exact sizes, their own wire format, and hostile bytes.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mproc/codec/protobuf.hpp>
#include <mproc/pool.hpp>
#include <string>
#include <vector>

#include "adapter_checks.hpp"
#include "adapter_messages.pb.h"
#include "adapter_required.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "harness_inputs.hpp"

// An Order compared by value (the codec fuzz harness compares decoded values with ==).
struct ComparableOrder {
  mproc_test::proto::Order order;
  bool operator==(const ComparableOrder& o) const {
    return google::protobuf::util::MessageDifferencer::Equals(order, o.order);
  }
};

template <>
struct mproc::codec<ComparableOrder> {
  using Inner = mproc::codec<mproc_test::proto::Order>;
  static constexpr std::size_t min_size = Inner::min_size;
  static std::size_t size(const ComparableOrder& v) { return Inner::size(v.order); }
  static void encode(mproc::Writer& w, const ComparableOrder& v) { Inner::encode(w, v.order); }
  static ComparableOrder decode(mproc::Reader& r) { return {Inner::decode(r)}; }
};

namespace {

using mproc_test::proto::Empty;
using mproc_test::proto::Order;
using mproc_test::proto::Strict;

bool same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}
constexpr auto kSame = [](const auto& a, const auto& b) { return same(a, b); };

Order make_order(std::int64_t id, std::size_t blob_bytes = 16) {
  Order o;
  o.set_symbol("ACME-" + std::to_string(id));
  o.set_id(id);
  for (int i = 0; i < 5; ++i) o.add_prices(1.5 * i + static_cast<double>(id));
  auto* line = o.add_lines();
  line->set_sku("sku");
  line->set_quantity(3);
  line->set_price(9.75);
  std::string blob(blob_bytes, '\0');
  for (std::size_t i = 0; i < blob_bytes; ++i) blob[i] = static_cast<char>(i * 131 + 7);
  o.set_blob(blob);
  (*o.mutable_attrs())["k"] = 1;
  o.mutable_child()->set_symbol("inner");
  return o;
}

static_assert(mproc::is_encodable_v<Order>);
static_assert(mproc::is_encodable_v<Empty>);
static_assert(mproc::codec<Order>::min_size == sizeof(std::uint64_t));

TEST(ProtobufAdapter, RoundTripsAloneAndNestedWithExactSizes) {
  adapter_checks::expect_round_trips(make_order(42), kSame);
  adapter_checks::expect_round_trips(Empty{}, kSame);
  adapter_checks::expect_round_trips(Order{}, kSame);
}

TEST(ProtobufAdapter, WireFormatIsTheLengthThenSerializeToString) {
  const Order o = make_order(5);
  const std::vector<std::byte> bytes = mproc::to_bytes(o);
  const std::string wire = o.SerializeAsString();
  ASSERT_EQ(bytes.size(), sizeof(std::uint64_t) + wire.size());
  EXPECT_EQ(adapter_checks::frame_length(bytes), wire.size());
  EXPECT_EQ(std::memcmp(bytes.data() + sizeof(std::uint64_t), wire.data(), wire.size()), 0);
  EXPECT_EQ(mproc::encoded_size(o), sizeof(std::uint64_t) + o.ByteSizeLong());
  // An empty message is its frame alone.
  EXPECT_EQ(mproc::to_bytes(Empty{}).size(), sizeof(std::uint64_t));
  // The same frame as a std::string holding those bytes.
  EXPECT_EQ(mproc::to_bytes(wire), bytes);
}

TEST(ProtobufAdapter, EncodesIntoSmallWindowsThroughItsBuffer) {
  // A Writer whose windows are 7 bytes: the message streams through protobuf's output stream.
  const Order o = make_order(9, 100000);
  const std::size_t n = mproc::encoded_size(o);
  std::vector<std::byte> out(n);
  struct Ctx {
    std::byte* next;
    std::byte* end;
  } ctx{out.data() + 7, out.data() + n};
  mproc::Writer w(
      out.data(), out.data() + 7,
      [](mproc::Writer& wr, void* c) {
        auto* x = static_cast<Ctx*>(c);
        std::byte* e = x->end - x->next > 7 ? x->next + 7 : x->end;
        wr.set_window(x->next, e);
        x->next = e;
      },
      &ctx);
  mproc::encode(w, o);
  EXPECT_EQ(w.cur(), out.data() + n);
  EXPECT_EQ(out, mproc::to_bytes(o));
}

TEST(ProtobufAdapter, ThroughAQueueBetweenProcesses) {
  adapter_checks::expect_through_queue<Order>({make_order(1), Order{}, make_order(2)}, kSame);
  adapter_checks::expect_through_queue<Empty>({Empty{}, Empty{}}, kSame);
}

TEST(ProtobufAdapter, AMessageOfSeveralMiBStreamsThroughASmallRing) {
  // 64 KiB ring: a 6 MiB message is far beyond its quarter and streams in chunks both ways.
  const Order big = make_order(7, std::size_t{6} << 20);
  adapter_checks::expect_through_queue<Order>({big, make_order(8), big}, kSame,
                                              mproc::QueueOptions{.capacity = 64 * 1024});
}

TEST(ProtobufAdapter, AFailingRefillPassesThroughProtobufsSerializer) {
  adapter_checks::expect_refill_exception_passes_through(make_order(1, 100000));
  adapter_checks::expect_put_timeout_mid_stream_leaves_the_queue_usable(
      make_order(1, std::size_t{1} << 20), make_order(2), kSame);
}

TEST(ProtobufAdapter, ThroughAPipe) {
  adapter_checks::expect_through_pipe<Order>(
      {make_order(3), Order{}, make_order(4, std::size_t{3} << 20)}, kSame);
}

TEST(ProtobufAdapter, AsAProcessArgument) {
  adapter_checks::expect_as_process_argument(make_order(11), kSame);
}

Order price_up(Order o) {
  for (auto& p : *o.mutable_prices()) p *= 2;
  o.set_symbol(o.symbol() + "!");
  return o;
}

TEST(ProtobufAdapter, PoolMapsOverMessagesWithMessageResults) {
  mproc::Pool pool(2);
  std::vector<Order> in;
  for (int i = 0; i < 20; ++i) in.push_back(make_order(i, i == 13 ? std::size_t{1} << 20 : 8));
  const std::vector<Order> out = pool.map(price_up, in, 3);
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_TRUE(same(out[i], price_up(in[i]))) << i;
  EXPECT_TRUE(same(pool.apply(price_up, make_order(99)), price_up(make_order(99))));
}

TEST(ProtobufAdapter, HostileFramingThrowsDecodeError) {
  adapter_checks::expect_hostile_framing_throws(make_order(1));
  adapter_checks::expect_hostile_framing_throws(Empty{});
}

TEST(ProtobufAdapter, GarbagePayloadThrowsDecodeErrorNamingTheType) {
  // A field tag of 0 is never valid; 0xff... is a varint longer than 10 bytes.
  for (const std::string& garbage : {std::string("\x00\x01", 2), std::string(12, '\xff'),
                                     std::string("\x0a\x7f"
                                                 "ab",
                                                 4)}) {
    const std::vector<std::byte> bytes = mproc::to_bytes(garbage);  // the same frame
    try {
      (void)mproc::from_bytes<Order>(bytes);
      ADD_FAILURE() << "garbage decoded";
    } catch (const mproc::DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find("mproc_test.proto.Order"), std::string::npos)
          << e.what();
    }
  }
}

TEST(ProtobufAdapter, MissingRequiredFieldIsAValueErrorToEncodeAndADecodeError) {
  Strict s;
  s.set_note("no id");
  try {
    (void)mproc::to_bytes(s);
    ADD_FAILURE() << "an uninitialised message encoded";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc_test.proto.Strict"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("id"), std::string::npos) << e.what();
  }
  // The same bytes made by protobuf itself do not decode.
  const std::vector<std::byte> bytes = mproc::to_bytes(s.SerializePartialAsString());
  try {
    (void)mproc::from_bytes<Strict>(bytes);
    ADD_FAILURE() << "a message without its required field decoded";
  } catch (const mproc::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc_test.proto.Strict lacks required fields: id"),
              std::string::npos)
        << e.what();
  }
  s.set_id(1);
  EXPECT_TRUE(same(mproc::from_bytes<Strict>(mproc::to_bytes(s)), s));
  EXPECT_EQ(mproc::encoded_size(s), mproc::to_bytes(s).size());
}

TEST(ProtobufAdapter, TheCodecFuzzHarnessFindsNothingInDamagedEncodings) {
  // Every property of <mproc/testing/codec_fuzz.hpp> that concerns hostile bytes, by value
  // (harness_inputs.hpp says why protobuf's non-minimal encodings are accepted). protobuf's parser
  // logs each invalid UTF-8 string of a proto3 message before it fails: not printed here.
  google::protobuf::LogHandler* previous = google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  adapter_checks::expect_harness_finds_nothing(ComparableOrder{make_order(1)});
  adapter_checks::expect_harness_finds_nothing(ComparableOrder{Order{}});
  google::protobuf::SetLogHandler(previous);
}

TEST(ProtobufAdapter, NestingBeyondProtobufsRecursionLimitIsADecodeError) {
  Order o;
  Order* at = &o;
  for (int i = 0; i < 150; ++i) at = at->mutable_child();
  at->set_id(1);
  // protobuf serialises it; its parser refuses more than 100 levels.
  EXPECT_THROW((void)mproc::from_bytes<Order>(mproc::to_bytes(o)), mproc::DecodeError);
}

}  // namespace
