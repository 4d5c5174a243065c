// mproc/codec/boost_serialization.hpp: types with Boost.Serialization's serialize (plain, derived
// through base_object, versioned, split save/load) through to_bytes/from_bytes, nested in standard
// types, through a Queue (also streamed), a Pool, a Pipe and as a Process argument, with exact
// sizes and Boost's binary archive as the payload; hostile frames are DecodeError, and what Boost
// does with hostile counts inside its archive (it allocates them before reading) is shown.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/base_object.hpp>
#include <boost/serialization/export.hpp>
#include <boost/serialization/map.hpp>
#include <boost/serialization/split_member.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/unique_ptr.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/version.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mproc/codec/boost_serialization.hpp>
#include <mproc/pool.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "adapter_checks.hpp"
#include "helpers/child.hpp"
#include "helpers/sanitizer.hpp"

namespace inventory {

struct Reading {
  std::string sensor;
  std::vector<double> values;
  std::map<std::string, int> tags;
  template <class Archive>
  void serialize(Archive& ar, const unsigned int /*version*/) {
    ar& sensor& values& tags;
  }
  bool operator==(const Reading&) const = default;
};

struct Base {
  std::int64_t id = 0;
  template <class Archive>
  void serialize(Archive& ar, const unsigned int) {
    ar& id;
  }
  bool operator==(const Base&) const = default;
};

struct Derived : Base {
  std::string label;
  template <class Archive>
  void serialize(Archive& ar, const unsigned int) {
    ar& boost::serialization::base_object<Base>(*this);
    ar& label;
  }
  bool operator==(const Derived&) const = default;
};

struct Versioned {
  int a = 0;
  int b = 0;  // added in version 1
  template <class Archive>
  void serialize(Archive& ar, const unsigned int version) {
    ar& a;
    if (version >= 1) ar& b;
  }
  bool operator==(const Versioned&) const = default;
};

class Split {
 public:
  Split() = default;
  explicit Split(std::string s) : text_(std::move(s)) {}
  const std::string& text() const { return text_; }
  bool operator==(const Split&) const = default;

 private:
  friend class boost::serialization::access;
  template <class Archive>
  void save(Archive& ar, const unsigned int) const {
    const std::string upper = text_ + "#";
    ar& upper;
  }
  template <class Archive>
  void load(Archive& ar, const unsigned int) {
    std::string s;
    ar& s;
    text_ = s.substr(0, s.size() - 1);
  }
  BOOST_SERIALIZATION_SPLIT_MEMBER()
  std::string text_;
};

// The same members as Reading, loaded through Boost's own binary_iarchive (no bounds).
struct StockReading : Reading {
  template <class Archive>
  void serialize(Archive& ar, const unsigned int) {
    ar& boost::serialization::base_object<Reading>(*this);
  }
};

// Polymorphic: a pointer to the base holds a derived object, exported by name.
struct Shape {
  virtual ~Shape() = default;
  virtual double area() const = 0;
  template <class Archive>
  void serialize(Archive&, const unsigned int) {}
};
struct Square : Shape {
  double side = 0;
  double area() const override { return side * side; }
  template <class Archive>
  void serialize(Archive& ar, const unsigned int) {
    ar& boost::serialization::base_object<Shape>(*this);
    ar& side;
  }
};
struct Drawing {
  std::string title;
  std::vector<std::unique_ptr<Shape>> shapes;
  template <class Archive>
  void serialize(Archive& ar, const unsigned int) {
    ar& title& shapes;
  }
};

}  // namespace inventory

BOOST_CLASS_VERSION(inventory::Versioned, 1)
BOOST_SERIALIZATION_ASSUME_ABSTRACT(inventory::Shape)
BOOST_CLASS_EXPORT(inventory::Square)

MPROC_CODEC_BOOST_SERIALIZATION(inventory::Reading);
MPROC_CODEC_BOOST_SERIALIZATION(inventory::Derived);
MPROC_CODEC_BOOST_SERIALIZATION(inventory::Versioned);
MPROC_CODEC_BOOST_SERIALIZATION(inventory::Split);
MPROC_CODEC_BOOST_SERIALIZATION(inventory::Drawing);
template <>
struct mproc::codec<inventory::StockReading>
    : mproc::boost_serialization_codec<inventory::StockReading, boost::archive::binary_iarchive> {};

namespace {

using inventory::Derived;
using inventory::Reading;
using inventory::Split;
using inventory::Versioned;

constexpr std::equal_to<> kEq;

Reading make_reading(int id, std::size_t n_values = 4) {
  Reading r;
  r.sensor = "sensor-" + std::to_string(id);
  for (std::size_t i = 0; i < n_values; ++i) r.values.push_back(0.5 * static_cast<double>(i) + id);
  r.tags = {{"unit", 1}, {"id", id}};
  return r;
}

// Boost's own bytes for v, as the adapter's payload.
template <class T>
std::string boost_bytes(const T& v) {
  std::ostringstream os;
  {
    boost::archive::binary_oarchive oa(os, boost::archive::no_header | boost::archive::no_codecvt);
    oa << v;
  }
  return os.str();
}

// A frame holding `payload`: the same bytes as a std::string's encoding.
std::vector<std::byte> frame(const std::string& payload) { return mproc::to_bytes(payload); }

TEST(BoostSerializationAdapter, RoundTripsAloneAndNestedWithExactSizes) {
  adapter_checks::expect_round_trips(make_reading(1), kEq);
  adapter_checks::expect_round_trips(Reading{}, kEq);
  Derived d;
  d.id = 77;
  d.label = "derived";
  adapter_checks::expect_round_trips(d, kEq);
  adapter_checks::expect_round_trips(Versioned{3, 4}, kEq);
  adapter_checks::expect_round_trips(Split("split"), kEq);
}

TEST(BoostSerializationAdapter, WireFormatIsTheLengthThenBoostsBinaryArchive) {
  const Reading r = make_reading(5);
  const std::vector<std::byte> bytes = mproc::to_bytes(r);
  const std::string payload = boost_bytes(r);
  EXPECT_EQ(bytes, frame(payload));
  EXPECT_EQ(mproc::encoded_size(r), sizeof(std::uint64_t) + payload.size());
  // Version 1 of Versioned carries b; the archive records the class version.
  EXPECT_EQ(mproc::from_bytes<Versioned>(mproc::to_bytes(Versioned{1, 2})), (Versioned{1, 2}));
}

TEST(BoostSerializationAdapter, EncodesThroughSmallWindows) {
  // Windows of 5 bytes: the value does not fit the first, so it is counted then streamed.
  const Reading r = make_reading(9, 10000);
  const std::size_t n = mproc::encoded_size(r);
  std::vector<std::byte> out(n);
  struct Ctx {
    std::byte* next;
    std::byte* end;
  } ctx{out.data() + 5, out.data() + n};
  mproc::Writer w(
      out.data(), out.data() + 5,
      [](mproc::Writer& wr, void* c) {
        auto* x = static_cast<Ctx*>(c);
        std::byte* e = x->end - x->next > 5 ? x->next + 5 : x->end;
        wr.set_window(x->next, e);
        x->next = e;
      },
      &ctx);
  mproc::encode(w, r);
  EXPECT_EQ(w.cur(), out.data() + n);
  EXPECT_EQ(out, mproc::to_bytes(r));
}

TEST(BoostSerializationAdapter, ThroughAQueueBetweenProcesses) {
  adapter_checks::expect_through_queue<Reading>({make_reading(1), Reading{}, make_reading(2)}, kEq);
  adapter_checks::expect_through_queue<Split>({Split("a"), Split("")}, kEq);
}

TEST(BoostSerializationAdapter, AValueOfSeveralMiBStreamsThroughASmallRing) {
  const Reading big = make_reading(7, std::size_t{6} << 17);  // 6 MiB of doubles
  adapter_checks::expect_through_queue<Reading>({big, make_reading(8), big}, kEq,
                                                mproc::QueueOptions{.capacity = 64 * 1024});
}

TEST(BoostSerializationAdapter, AFailingRefillPassesThroughBoostsArchive) {
  adapter_checks::expect_refill_exception_passes_through(make_reading(1, 10000));
  adapter_checks::expect_put_timeout_mid_stream_leaves_the_queue_usable(
      make_reading(1, std::size_t{1} << 17), make_reading(2), kEq);
}

TEST(BoostSerializationAdapter, ThroughAPipe) {
  adapter_checks::expect_through_pipe<Reading>(
      {make_reading(3), Reading{}, make_reading(4, std::size_t{1} << 19)}, kEq);
}

TEST(BoostSerializationAdapter, AsAProcessArgument) {
  adapter_checks::expect_as_process_argument(make_reading(11), kEq);
}

Reading doubled(Reading r) {
  for (double& v : r.values) v *= 2;
  r.sensor += "!";
  return r;
}

TEST(BoostSerializationAdapter, PoolMapsOverValuesWithValueResults) {
  mproc::Pool pool(2);
  std::vector<Reading> in;
  for (int i = 0; i < 20; ++i) in.push_back(make_reading(i, i == 13 ? std::size_t{1} << 17 : 3));
  const std::vector<Reading> out = pool.map(doubled, in, 3);
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], doubled(in[i])) << i;
  EXPECT_EQ(pool.apply(doubled, make_reading(99)), doubled(make_reading(99)));
}

TEST(BoostSerializationAdapter, HostileFramingThrowsDecodeError) {
  adapter_checks::expect_hostile_framing_throws(make_reading(1));
  adapter_checks::expect_hostile_framing_throws(Reading{});
}

void expect_decode_error(const std::vector<std::byte>& bytes, const std::string& needle) {
  try {
    (void)mproc::from_bytes<Reading>(bytes);
    ADD_FAILURE() << "decoded";
  } catch (const mproc::DecodeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("inventory::Reading"), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

TEST(BoostSerializationAdapter, GarbageAndTrailingBytesThrowDecodeErrorNamingTheType) {
  // Too short for the archive: Boost's input stream error.
  expect_decode_error(frame(std::string(3, '\x01')), "Boost.Serialization could not load");
  // A valid archive followed by a byte the archive does not read.
  expect_decode_error(frame(boost_bytes(make_reading(1)) + "x"), "remain after it loaded");
}

// The payload of make_reading(1) (as T) with the 8 bytes `find` replaced by `count`.
template <class T = Reading>
std::vector<std::byte> with_count(const std::string& find, std::uint64_t count) {
  T v;
  static_cast<Reading&>(v) = make_reading(1);
  std::string payload = boost_bytes(v);
  const std::size_t at = payload.find(find);
  EXPECT_NE(at, std::string::npos);
  std::memcpy(payload.data() + at, &count, sizeof count);
  return frame(payload);
}
const std::string kValuesCount("\x04\0\0\0\0\0\0\0", 8);   // the 4 values
const std::string kSensorLength("\x08\0\0\0\0\0\0\0", 8);  // "sensor-1"

TEST(BoostSerializationAdapter, HostileCountsAndLengthsAreCheckedAgainstTheFrame) {
  for (std::uint64_t n :
       {std::uint64_t{200}, std::uint64_t{1} << 20, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
    expect_decode_error(with_count(kValuesCount, n),
                        "a collection's count (" + std::to_string(n) + ") exceeds the");
    expect_decode_error(with_count(kSensorLength, n),
                        "a string's length (" + std::to_string(n) + ") exceeds the");
  }
  // A count that the frame could hold but that is wrong still fails at the missing bytes.
  expect_decode_error(with_count(kValuesCount, 6), "mproc: corrupt message");
}

TEST(BoostSerializationAdapter, PolymorphicPointersExportedAfterTheHeaderLoad) {
  inventory::Drawing d;
  d.title = "plan";
  auto sq = std::make_unique<inventory::Square>();
  sq->side = 3;
  d.shapes.push_back(std::move(sq));
  const auto back = mproc::from_bytes<inventory::Drawing>(mproc::to_bytes(d));
  EXPECT_EQ(back.title, "plan");
  ASSERT_EQ(back.shapes.size(), 1u);
  ASSERT_NE(dynamic_cast<const inventory::Square*>(back.shapes[0].get()), nullptr);
  EXPECT_EQ(back.shapes[0]->area(), 9.0);
  EXPECT_EQ(mproc::encoded_size(d), mproc::to_bytes(d).size());
}

// ---- Boost's own binary_iarchive: what the bounded archive prevents -------------------------

void expect_stock_decode_error(const std::vector<std::byte>& bytes, const std::string& needle) {
  try {
    (void)mproc::from_bytes<inventory::StockReading>(bytes);
    ADD_FAILURE() << "decoded";
  } catch (const mproc::DecodeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("inventory::StockReading"), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

TEST(BoostSerializationAdapter, StockArchiveRoundTrips) {
  inventory::StockReading r;
  static_cast<Reading&>(r) = make_reading(4);
  const auto back = mproc::from_bytes<inventory::StockReading>(mproc::to_bytes(r));
  EXPECT_EQ(static_cast<const Reading&>(back), static_cast<const Reading&>(r));
}

TEST(BoostSerializationAdapter, StockArchiveAllocatesHostileCountsBeforeReadingThem) {
  // Boost resizes the vector to the count it read, then reads the elements: a count beyond
  // max_size() is std::length_error, a count it can allocate fails only at the missing bytes
  // (8 MiB allocated and zeroed for a frame of about 100 bytes).
  expect_stock_decode_error(with_count<inventory::StockReading>(kValuesCount, ~std::uint64_t{0}),
                            "vector");
  expect_stock_decode_error(
      with_count<inventory::StockReading>(kValuesCount, std::uint64_t{1} << 20),
      "input stream error");
}

TEST(BoostSerializationAdapter, StockArchiveCountThatCannotBeAllocatedIsADecodeErrorNotACrash) {
  if (mproc_test::kSanitized) GTEST_SKIP() << "sanitizers abort when an allocation fails";
  // 2^40 doubles (8 TiB): std::bad_alloc under a 4 GiB address space limit, in a child.
  const auto bytes = with_count<inventory::StockReading>(kValuesCount, std::uint64_t{1} << 40);
  const int rc = mproc_test::run_in_child([&] {
    rlimit lim{std::uint64_t{4} << 30, std::uint64_t{4} << 30};
    if (setrlimit(RLIMIT_AS, &lim) != 0) return 2;
    try {
      (void)mproc::from_bytes<inventory::StockReading>(bytes);
      return 3;
    } catch (const mproc::DecodeError& e) {
      return std::string(e.what()).find("bad_alloc") != std::string::npos ? 0 : 4;
    }
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
