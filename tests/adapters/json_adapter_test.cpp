// mproc/codec/json.hpp: nlohmann::json and ordered_json values, and a user type with to_json /
// from_json (MPROC_CODEC_JSON), through to_bytes/from_bytes, nested in standard types, through a
// Queue (also streamed), a Pool, a Pipe and as a Process argument, with exact sizes and
// MessagePack as the payload; hostile frames, invalid MessagePack, trailing bytes and hostile
// nesting are DecodeError.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mproc/codec/json.hpp>
#include <mproc/pool.hpp>
#include <string>
#include <vector>

#include "adapter_checks.hpp"
#include "harness_inputs.hpp"

namespace market {

struct Quote {
  std::string symbol;
  double price = 0;
  std::vector<int> sizes;
  bool operator==(const Quote&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Quote, symbol, price, sizes)

}  // namespace market

MPROC_CODEC_JSON(market::Quote);

namespace {

using market::Quote;
using nlohmann::json;
using nlohmann::ordered_json;

constexpr std::equal_to<> kEq;

json make_value(int id, std::size_t blob_bytes = 8) {
  std::vector<std::uint8_t> blob(blob_bytes);
  for (std::size_t i = 0; i < blob_bytes; ++i) blob[i] = static_cast<std::uint8_t>(i * 13 + 1);
  return json{{"id", id},
              {"negative", -12345678901},
              {"big", std::uint64_t{1} << 63},
              {"pi", 3.25},
              {"ok", true},
              {"none", nullptr},
              {"text", "héllo"},
              {"list", {1, "two", 3.5, json::array(), json::object()}},
              {"nested", {{"a", {{"b", {1, 2, 3}}}}}},
              {"blob", json::binary(blob)},
              {"typed_blob", json::binary({1, 2, 3}, 42)}};
}

TEST(JsonAdapter, RoundTripsAloneAndNestedWithExactSizes) {
  adapter_checks::expect_round_trips(make_value(1), kEq);
  adapter_checks::expect_round_trips(json(), kEq);  // null
  adapter_checks::expect_round_trips(json::array(), kEq);
  adapter_checks::expect_round_trips(json("just a string"), kEq);
  adapter_checks::expect_round_trips(json(-7), kEq);
}

TEST(JsonAdapter, BinarySubtypesSurvive) {
  const json back = mproc::from_bytes<json>(mproc::to_bytes(make_value(1)));
  ASSERT_TRUE(back["typed_blob"].is_binary());
  EXPECT_TRUE(back["typed_blob"].get_binary().has_subtype());
  EXPECT_EQ(back["typed_blob"].get_binary().subtype(), 42u);
  EXPECT_FALSE(back["blob"].get_binary().has_subtype());
}

TEST(JsonAdapter, OrderedJsonKeepsItsKeyOrder) {
  ordered_json o;
  o["zeta"] = 1;
  o["alpha"] = 2;
  o["mid"] = {{"z", 1}, {"a", 2}};
  adapter_checks::expect_round_trips(o, kEq);
  const ordered_json back = mproc::from_bytes<ordered_json>(mproc::to_bytes(o));
  EXPECT_EQ(back.dump(), R"({"zeta":1,"alpha":2,"mid":{"z":1,"a":2}})");
}

TEST(JsonAdapter, WireFormatIsTheLengthThenMessagePack) {
  const json j = make_value(5);
  const std::vector<std::uint8_t> msgpack = json::to_msgpack(j);
  const std::vector<std::byte> bytes = mproc::to_bytes(j);
  ASSERT_EQ(bytes.size(), sizeof(std::uint64_t) + msgpack.size());
  EXPECT_EQ(adapter_checks::frame_length(bytes), msgpack.size());
  EXPECT_EQ(std::memcmp(bytes.data() + sizeof(std::uint64_t), msgpack.data(), msgpack.size()), 0);
  EXPECT_EQ(mproc::encoded_size(j), bytes.size());
}

TEST(JsonAdapter, EncodesThroughSmallWindows) {
  const json j = make_value(9, 100000);
  const std::size_t n = mproc::encoded_size(j);
  std::vector<std::byte> out(n);
  struct Ctx {
    std::byte* next;
    std::byte* end;
  } ctx{out.data() + 11, out.data() + n};
  mproc::Writer w(
      out.data(), out.data() + 11,
      [](mproc::Writer& wr, void* c) {
        auto* x = static_cast<Ctx*>(c);
        std::byte* e = x->end - x->next > 11 ? x->next + 11 : x->end;
        wr.set_window(x->next, e);
        x->next = e;
      },
      &ctx);
  mproc::encode(w, j);
  EXPECT_EQ(w.cur(), out.data() + n);
  EXPECT_EQ(out, mproc::to_bytes(j));
}

TEST(JsonAdapter, ThroughAQueueBetweenProcesses) {
  adapter_checks::expect_through_queue<json>({make_value(1), json(), make_value(2)}, kEq);
}

TEST(JsonAdapter, AValueOfSeveralMiBStreamsThroughASmallRing) {
  json big = make_value(7, std::size_t{4} << 20);
  for (int i = 0; i < 50000; ++i) big["many"].push_back({{"i", i}, {"s", std::to_string(i)}});
  adapter_checks::expect_through_queue<json>({big, make_value(8), big}, kEq,
                                             mproc::QueueOptions{.capacity = 64 * 1024});
}

TEST(JsonAdapter, AFailingRefillPassesThroughNlohmannsWriter) {
  adapter_checks::expect_refill_exception_passes_through(make_value(1, 100000));
  adapter_checks::expect_put_timeout_mid_stream_leaves_the_queue_usable(
      make_value(1, std::size_t{1} << 20), make_value(2), kEq);
}

TEST(JsonAdapter, ThroughAPipe) {
  adapter_checks::expect_through_pipe<json>(
      {make_value(3), json::object(), make_value(4, std::size_t{3} << 20)}, kEq);
}

TEST(JsonAdapter, AsAProcessArgument) {
  adapter_checks::expect_as_process_argument(make_value(11), kEq);
}

json with_total(json j) {
  j["total"] = j["id"].get<int>() * 2;
  return j;
}

TEST(JsonAdapter, PoolMapsOverValuesWithValueResults) {
  mproc::Pool pool(2);
  std::vector<json> in;
  for (int i = 0; i < 20; ++i) in.push_back(make_value(i, i == 13 ? std::size_t{1} << 20 : 4));
  const std::vector<json> out = pool.map(with_total, in, 3);
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], with_total(in[i])) << i;
}

TEST(JsonAdapter, HostileFramingThrowsDecodeError) {
  adapter_checks::expect_hostile_framing_throws(make_value(1));
  adapter_checks::expect_hostile_framing_throws(json());
}

void expect_decode_error(const std::string& payload, const std::string& needle) {
  const std::vector<std::byte> bytes = mproc::to_bytes(payload);  // the same frame
  try {
    (void)mproc::from_bytes<json>(bytes);
    ADD_FAILURE() << "decoded";
  } catch (const mproc::DecodeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("nlohmann::json"), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

TEST(JsonAdapter, InvalidMessagePackThrowsDecodeErrorNamingTheType) {
  expect_decode_error("", "not one MessagePack value");          // nothing
  expect_decode_error("\xc1", "not one MessagePack value");      // the byte MessagePack never uses
  expect_decode_error("\x92\x01", "not one MessagePack value");  // an array of 2 with 1 element
  expect_decode_error("\xdd\xff\xff\xff\xff", "not one MessagePack value");  // 2^32-1 elements
  expect_decode_error("\xc0\xc0", "not one MessagePack value");  // a value and a trailing byte
  expect_decode_error(
      "\xdb\x7f\xff\xff\xff"
      "ab",
      "not one MessagePack value");  // str32 2 GiB
}

TEST(JsonAdapter, HostileNestingIsRejectedBeforeTheParserRecurses) {
  // A million nested one-element arrays: 1 byte per level, far deeper than the stack would take.
  std::string deep(1000000, '\x91');
  deep += '\xc0';
  expect_decode_error(deep, "deeper than 1000 levels");
  // Just under the limit decodes.
  std::string ok(999, '\x91');
  ok += '\xc0';
  const json j = mproc::from_bytes<json>(mproc::to_bytes(ok));
  EXPECT_TRUE(j.is_array());
}

TEST(JsonAdapter, DiscardedValueIsAValueErrorToEncode) {
  const json discarded = json::parse("{", nullptr, false);
  ASSERT_TRUE(discarded.is_discarded());
  EXPECT_THROW((void)mproc::to_bytes(discarded), mproc::ValueError);
}

TEST(JsonAdapter, TheCodecFuzzHarnessFindsNothingInDamagedEncodings) {
  // Every property of <mproc/testing/codec_fuzz.hpp> that concerns hostile bytes, by value
  // (harness_inputs.hpp says why MessagePack's non-minimal encodings are accepted).
  adapter_checks::expect_harness_finds_nothing(make_value(1));
  adapter_checks::expect_harness_finds_nothing(json::array({json::array({json::object()})}));
  adapter_checks::expect_harness_finds_nothing(json());
}

// ---- a user type with to_json / from_json ----------------------------------------------------

TEST(JsonAdapter, UserTypeTravelsAsItsJson) {
  const Quote q{"ACME", 12.5, {100, 200}};
  adapter_checks::expect_round_trips(q, kEq);
  EXPECT_EQ(mproc::to_bytes(q), mproc::to_bytes(json(q)));
  adapter_checks::expect_through_queue<Quote>({q, Quote{}}, kEq);
  adapter_checks::expect_through_pipe<Quote>({q}, kEq);
}

TEST(JsonAdapter, UserTypeFromTheWrongJsonThrowsDecodeErrorNamingTheType) {
  for (const json& wrong :
       {json{{"symbol", "X"}}, json{{"symbol", 1}, {"price", 1}, {"sizes", {}}}, json(3)}) {
    try {
      (void)mproc::from_bytes<Quote>(mproc::to_bytes(wrong));
      ADD_FAILURE() << wrong.dump();
    } catch (const mproc::DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find("market::Quote"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
