// <mproc/codec/cereal.hpp> sends a type that mproc's own serialize() rule also understands in the
// same bytes as that rule: so a file that includes the header and one that does not agree on
// every such type. Checked two ways: against mproc's own rule for the same type (called directly,
// `detail::serialize_codec<T>`), and against the bytes of a std::tuple of the same members (mproc's
// rules only, no class involved).
#include <gtest/gtest.h>

#include <array>
#include <bitset>
#include <chrono>
#include <cstdint>
#include <map>
#include <mproc/codec/cereal.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace wire {

enum class Side : std::uint8_t { buy = 1, sell = 2 };

struct Pod {  // trivially copyable, no function: mproc's bitwise rule inside either archive
  std::int32_t a;
  float f;  // no padding: the object bytes are all the members'
  double b;
};

struct Empty {
  template <class Archive>
  void serialize(Archive&) {}
};

struct Inner {
  std::string s;
  std::vector<double> v;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(s, v);
  }
};

struct Outer {
  Inner inner;
  std::map<std::string, std::optional<int>> m;
  std::vector<Inner> many;
  Empty empty;
  int c_array[3] = {1, 2, 3};
  Side side = Side::sell;
  Pod pod{7, 0.25f, 0.5};
  std::bitset<12> bits{0xabc};
  std::pair<std::uint16_t, std::string> p{9, "p"};
  std::array<std::int64_t, 2> arr{-1, 1};
  std::chrono::milliseconds ms{1500};
  bool flag = true;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(inner, m, many, empty, c_array, side, pod, bits, p, arr, ms, flag);
  }
};

}  // namespace wire

namespace {

using namespace wire;

// mproc's own serialize() rule for T, whatever rule codec<T> picked in this file.
template <class T>
std::vector<std::byte> native_bytes(const T& v) {
  using Native = mproc::detail::serialize_codec<T>;
  std::vector<std::byte> out(Native::size(v));
  mproc::Writer w(out.data(), out.data() + out.size());
  Native::encode(w, v);
  EXPECT_EQ(w.cur(), out.data() + out.size());
  return out;
}

Outer sample() {
  Outer o;
  o.inner = {"inner", {1.5, -2.5}};
  o.m = {{"a", 1}, {"b", std::nullopt}};
  o.many = {{"x", {}}, {"", {3.0}}};
  return o;
}

TEST(CerealWire, ThisFileSendsSerializeTypesThroughCereal) {
  // The premise of the other tests: with the header, codec<T> is cereal's archive for these.
  EXPECT_TRUE(
      (std::is_base_of_v<mproc::detail::cereal_archive::cereal_codec<Outer>, mproc::codec<Outer>>));
  EXPECT_TRUE(
      (std::is_base_of_v<mproc::detail::cereal_archive::cereal_codec<Inner>, mproc::codec<Inner>>));
}

TEST(CerealWire, SameBytesAsMprocsSerializeRule) {
  EXPECT_EQ(mproc::to_bytes(Inner{"abc", {1, 2}}), native_bytes(Inner{"abc", {1, 2}}));
  EXPECT_EQ(mproc::to_bytes(Inner{}), native_bytes(Inner{}));
  EXPECT_EQ(mproc::to_bytes(Empty{}), native_bytes(Empty{}));
  EXPECT_EQ(mproc::to_bytes(sample()), native_bytes(sample()));
}

TEST(CerealWire, SameBytesAsATupleOfTheMembers) {
  const Outer o = sample();
  const auto as_tuple = std::make_tuple(
      std::make_tuple(o.inner.s, o.inner.v), o.m,
      std::vector<std::tuple<std::string, std::vector<double>>>{{"x", {}}, {"", {3.0}}},
      std::uint8_t{0},  // Empty: one 0 byte
      std::array<int, 3>{1, 2, 3}, o.side, o.pod, o.bits, o.p, o.arr, o.ms, o.flag);
  EXPECT_EQ(mproc::to_bytes(o), mproc::to_bytes(as_tuple));
}

TEST(CerealWire, BytesOfOneDecodeAsTheOther) {
  const Outer o = sample();
  const Outer back = mproc::from_bytes<Outer>(native_bytes(o));
  EXPECT_EQ(back.inner.s, "inner");
  EXPECT_EQ(back.m, o.m);
  ASSERT_EQ(back.many.size(), 2u);
  EXPECT_EQ(back.many[1].v, std::vector<double>{3.0});
  EXPECT_EQ(back.c_array[2], 3);
  EXPECT_EQ(back.side, Side::sell);
  EXPECT_EQ(back.pod.a, 7);
  EXPECT_EQ(back.bits, o.bits);
  EXPECT_EQ(back.p, o.p);
  EXPECT_EQ(back.arr, o.arr);
  EXPECT_EQ(back.ms, o.ms);
  EXPECT_TRUE(back.flag);
}

TEST(CerealWire, DecodingChecksWhatMprocsRuleChecks) {
  // A bool that is neither 0 nor 1, and an Empty's byte that is not 0, are DecodeError through
  // cereal's archive as through mproc's rule.
  std::vector<std::byte> bytes = mproc::to_bytes(sample());
  bytes.back() = std::byte{2};
  EXPECT_THROW((void)mproc::from_bytes<Outer>(bytes), mproc::DecodeError);
  EXPECT_THROW((void)mproc::from_bytes<Empty>(std::vector<std::byte>{std::byte{5}}),
               mproc::DecodeError);
}

}  // namespace
