// codec: round trips of every built-in and user type, exact sizes, the wire format, truncated and
// corrupt input, streaming through small windows, and large values.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mproc/codec.hpp>
#include <mproc/codec/deque.hpp>
#include <mproc/codec/list.hpp>
#include <mproc/codec/map.hpp>
#include <mproc/codec/set.hpp>
#include <mproc/codec/unordered_map.hpp>
#include <mproc/codec/unordered_set.hpp>
#include <mproc/codec/variant.hpp>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

// ---- user types (at namespace scope so that ADL and specialisation work as for users) ----------

namespace shop {

// A member serialize.
struct Order {
  std::string symbol;
  std::vector<double> prices;
  std::optional<int> limit;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(symbol, prices, limit);
  }
  bool operator==(const Order&) const = default;
};

// A free serialize found by argument-dependent lookup.
struct Customer {
  std::string name;
  std::map<std::string, Order> orders;
  bool operator==(const Customer&) const = default;
};
template <class Archive>
void serialize(Archive& ar, Customer& c) {
  ar(c.name);
  ar(c.orders);
}

// A private serialize, reached through `mproc::codec_access`.
class Account {
 public:
  Account() = default;
  Account(std::int64_t id, std::string owner) : id_(id), owner_(std::move(owner)) {}
  std::int64_t id() const { return id_; }
  const std::string& owner() const { return owner_; }

 private:
  friend class mproc::codec_access;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id_, owner_);
  }
  std::int64_t id_ = 0;
  std::string owner_;
};

// Trivially copyable, yet its serialize (which drops `cache`) is what the codec uses.
struct Cached {
  int value = 0;
  int cache = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
};
static_assert(std::is_trivially_copyable_v<Cached>);

// Archives nothing: still one byte, so containers of it decode.
struct Nothing {
  template <class Archive>
  void serialize(Archive&) {}
  bool operator==(const Nothing&) const = default;
};

// A recursive type.
struct Tree {
  int value = 0;
  std::vector<Tree> children;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value, children);
  }
  bool operator==(const Tree&) const = default;
};

// C arrays inside serialize, and the cereal-style archive traits.
struct Grid {
  int cells[2][3] = {};
  std::string labels[2];
  int loads = 0;  // how many times this object was filled by decoding
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cells, labels);
    if constexpr (Archive::is_loading::value) ++loads;
  }
};

// Specialising mproc::codec directly.
struct Celsius {
  double degrees = 0;
  std::string where;
  bool operator==(const Celsius&) const = default;
};

// A trivially copyable template with a user partial specialisation that uses `Enable`.
template <class T>
struct Tagged {
  T value;
  bool operator==(const Tagged&) const = default;
};

// A codec whose size() lies (for the to_bytes check).
struct Liar {
  int v = 0;
};

}  // namespace shop

template <>
struct mproc::codec<shop::Celsius> {
  static std::size_t size(const shop::Celsius& c) {
    return sizeof(std::int64_t) + mproc::encoded_size(c.where);
  }
  static void encode(Writer& w, const shop::Celsius& c) {
    w.write_value(static_cast<std::int64_t>(std::llround(c.degrees * 100)));  // centidegrees
    mproc::encode(w, c.where);
  }
  static shop::Celsius decode(Reader& r) {
    const auto centi = r.read_value<std::int64_t>();
    return shop::Celsius{static_cast<double>(centi) / 100, mproc::decode<std::string>(r)};
  }
};

template <class T>
struct mproc::codec<shop::Tagged<T>, std::enable_if_t<std::is_integral_v<T>>> {
  // Integral tags travel as one byte (values 0..255 only).
  static std::size_t size(const shop::Tagged<T>&) { return 1; }
  static void encode(Writer& w, const shop::Tagged<T>& t) {
    w.write_value(static_cast<std::uint8_t>(t.value));
  }
  static shop::Tagged<T> decode(Reader& r) {
    return shop::Tagged<T>{static_cast<T>(r.read_value<std::uint8_t>())};
  }
};

template <>
struct mproc::codec<shop::Liar> {
  static std::size_t size(const shop::Liar&) { return 8; }
  static void encode(Writer& w, const shop::Liar& l) { w.write_value(l.v); }
  static shop::Liar decode(Reader& r) { return shop::Liar{r.read_value<int>()}; }
};

namespace {

struct Point {
  std::int32_t x;
  std::int32_t y;
  double weight;
  bool operator==(const Point&) const = default;
};

// Trivially copyable without a default constructor.
struct Fixed {
  explicit Fixed(std::uint16_t v) : value(v) {}
  std::uint16_t value;
  bool operator==(const Fixed&) const = default;
};

enum class Color : std::uint8_t { red, green, blue };
enum Plain { kZero, kOne, kBig = 1 << 20 };

// ---- compile-time properties ------------------------------------------------------------------

static_assert(mproc::is_encodable_v<int>);
static_assert(mproc::is_encodable_v<const int>);
static_assert(mproc::is_encodable_v<Point>);
static_assert(mproc::is_encodable_v<std::string>);
static_assert(mproc::is_encodable_v<std::map<std::string, std::vector<std::optional<int>>>>);
static_assert(mproc::is_encodable_v<shop::Order>);
static_assert(mproc::is_encodable_v<shop::Customer>);
static_assert(mproc::is_encodable_v<shop::Account>);
static_assert(mproc::is_encodable_v<shop::Celsius>);
static_assert(mproc::is_encodable_v<shop::Tree>);
static_assert(mproc::is_encodable_v<std::chrono::steady_clock::time_point>);
static_assert(!mproc::is_encodable_v<int*>);
static_assert(!mproc::is_encodable_v<const char*>);
static_assert(!mproc::is_encodable_v<void (*)()>);
static_assert(!mproc::is_encodable_v<std::nullptr_t>);
static_assert(!mproc::is_encodable_v<int Point::*>);
static_assert(!mproc::is_encodable_v<int[4]>);
static_assert(!mproc::is_encodable_v<int&>);
static_assert(!mproc::is_encodable_v<std::string_view>);
static_assert(!mproc::is_encodable_v<std::span<int>>);
static_assert(!mproc::is_encodable_v<std::unique_ptr<int>>);
static_assert(!mproc::is_encodable_v<std::shared_ptr<int>>);
static_assert(!mproc::is_encodable_v<std::vector<std::unique_ptr<int>>>);
static_assert(!mproc::is_encodable_v<std::optional<int*>>);  // optional<int*> is trivially copyable
static_assert(!mproc::is_encodable_v<std::array<int*, 2>>);  // so is array<int*, 2>
static_assert(!mproc::is_encodable_v<std::variant<int, int*>>);
static_assert(!mproc::is_encodable_v<std::pair<int, std::string_view>>);
static_assert(!mproc::is_encodable_v<std::map<int, std::unique_ptr<int>>>);
struct HoldsUniquePtr {
  std::unique_ptr<int> p;
};
static_assert(!mproc::is_encodable_v<HoldsUniquePtr>);
struct FakeClock {
  using rep = long;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<FakeClock>;
};
static_assert(!mproc::is_encodable_v<FakeClock::time_point>);

// Fixed sizes are compile-time constants.
static_assert(mproc::codec<Point>::size(Point{}) == sizeof(Point));
static_assert(mproc::codec<std::uint64_t>::size(0) == 8);

// ---- helpers ----------------------------------------------------------------------------------

const char* const kTruncated = "mproc: truncated message: a value needs more bytes than remain";
const char* const kBadLength = "mproc: corrupt message: a length exceeds the bytes that remain";

// A Writer's owner that hands out a fresh heap window of `window` bytes at every refill (so ASan
// sees any write past a window), collecting what was written.
class WindowedSink {
 public:
  explicit WindowedSink(std::size_t window) : window_(window) {}

  mproc::Writer writer() {
    next();
    return mproc::Writer(buf_.get(), buf_.get() + window_, &WindowedSink::refill, this);
  }
  // Collects the last window's bytes; call once after encoding.
  std::vector<std::byte> finish(const mproc::Writer& w) {
    out_.insert(out_.end(), buf_.get(), w.cur());
    return std::move(out_);
  }
  int refills() const { return refills_; }

 private:
  static void refill(mproc::Writer& w, void* ctx) {
    auto* self = static_cast<WindowedSink*>(ctx);
    self->out_.insert(self->out_.end(), self->buf_.get(), w.cur());
    self->next();
    ++self->refills_;
    w.set_window(self->buf_.get(), self->buf_.get() + self->window_);
  }
  void next() { buf_ = std::make_unique<std::byte[]>(window_); }

  std::size_t window_;
  std::unique_ptr<std::byte[]> buf_;
  std::vector<std::byte> out_;
  int refills_ = 0;
};

// A Reader's owner that copies the message into a fresh heap window of at most `window` bytes at
// every refill (so ASan sees any read past a window, or from a released one).
class WindowedSource {
 public:
  WindowedSource(std::span<const std::byte> all, std::size_t window) : all_(all), window_(window) {}

  mproc::Reader reader() {
    return mproc::Reader(nullptr, nullptr, all_.size(), &WindowedSource::refill, this);
  }
  int refills() const { return refills_; }

 private:
  static void refill(mproc::Reader& r, void* ctx) {
    auto* self = static_cast<WindowedSource*>(ctx);
    const std::size_t k = std::min(self->window_, self->all_.size() - self->pos_);
    if (k == 0) throw std::logic_error("refill asked for bytes past the end of the message");
    self->buf_ = std::make_unique<std::byte[]>(k);
    std::memcpy(self->buf_.get(), self->all_.data() + self->pos_, k);
    self->pos_ += k;
    ++self->refills_;
    r.set_window(self->buf_.get(), self->buf_.get() + k);
  }

  std::span<const std::byte> all_;
  std::size_t window_;
  std::size_t pos_ = 0;
  std::unique_ptr<std::byte[]> buf_;
  int refills_ = 0;
};

template <class T>
std::vector<std::byte> encode_windowed(const T& v, std::size_t window) {
  WindowedSink sink(window);
  mproc::Writer w = sink.writer();
  mproc::encode(w, v);
  return sink.finish(w);
}

template <class T>
T decode_windowed(std::span<const std::byte> bytes, std::size_t window) {
  WindowedSource source(bytes, window);
  mproc::Reader r = source.reader();
  T v = mproc::decode<T>(r);
  EXPECT_EQ(r.remaining(), 0u);
  return v;
}

// Expects `f()` to throw DecodeError with exactly `message`.
template <class F>
void expect_decode_error(F&& f, const std::string& message) {
  try {
    f();
    ADD_FAILURE() << "no DecodeError; expected: " << message;
  } catch (const mproc::DecodeError& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

// Every property the codec promises for one value: the exact size, the round trip (whole, and
// through 3-byte windows both ways, with identical bytes), a DecodeError at every cut point, and a
// DecodeError for one trailing byte.
template <class T, class Eq = std::equal_to<>>
void expect_round_trip(const T& v, Eq eq = {}) {
  SCOPED_TRACE(testing::Message() << "type " << typeid(T).name());
  const std::size_t n = mproc::encoded_size(v);

  // The size is exact: encoding into a larger buffer stops exactly there, and leaves the rest.
  std::vector<std::byte> big(n + 16, std::byte{0xAB});
  mproc::Writer w(big.data(), big.data() + big.size());
  mproc::encode(w, v);
  ASSERT_EQ(static_cast<std::size_t>(w.cur() - big.data()), n);
  for (std::size_t i = n; i < big.size(); ++i) ASSERT_EQ(big[i], std::byte{0xAB});

  const std::vector<std::byte> bytes = mproc::to_bytes(v);
  ASSERT_EQ(bytes.size(), n);
  ASSERT_TRUE(std::equal(bytes.begin(), bytes.end(), big.begin()));
  EXPECT_TRUE(eq(mproc::from_bytes<T>(bytes), v));

  EXPECT_EQ(encode_windowed(v, 3), bytes);
  EXPECT_TRUE(eq(decode_windowed<T>(bytes, 3), v));

  for (std::size_t cut = 0; cut < n; ++cut) {
    try {
      (void)mproc::from_bytes<T>(std::span(bytes.data(), cut));
      ADD_FAILURE() << "decoding the first " << cut << " of " << n << " bytes did not throw";
    } catch (const mproc::DecodeError& e) {
      const std::string what = e.what();
      EXPECT_TRUE(what == kTruncated || what == kBadLength) << "cut " << cut << ": " << what;
    }
  }

  std::vector<std::byte> longer = bytes;
  longer.push_back(std::byte{0});
  expect_decode_error([&] { (void)mproc::from_bytes<T>(longer); },
                      "mproc: trailing bytes: 1 bytes remain after the decoded value");
}

template <class T>
std::vector<std::byte> raw(const T& v) {
  std::vector<std::byte> b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}

template <class... Ts>
std::vector<std::byte> concat(const Ts&... parts) {
  std::vector<std::byte> out;
  (out.insert(out.end(), parts.begin(), parts.end()), ...);
  return out;
}

std::vector<std::byte> u64(std::uint64_t v) { return raw(v); }
std::vector<std::byte> u8(std::uint8_t v) { return raw(v); }

// Records the largest single allocation made through it, and counts allocations. Refuses (with
// std::bad_alloc) any allocation above kAllocationLimit, so that a decoder that would commit memory
// in proportion to an announced length fails fast instead of taking the machine's memory.
inline std::size_t g_largest_allocation = 0;
inline std::size_t g_allocations = 0;
inline constexpr std::size_t kAllocationLimit = std::size_t{256} << 20;
template <class T>
struct CountingAllocator {
  using value_type = T;
  CountingAllocator() = default;
  template <class U>
  CountingAllocator(const CountingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    g_largest_allocation = std::max(g_largest_allocation, n * sizeof(T));
    ++g_allocations;
    if (n > kAllocationLimit / sizeof(T)) throw std::bad_alloc();
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U>
  bool operator==(const CountingAllocator<U>&) const noexcept {
    return true;
  }
};

// ---- scalars -----------------------------------------------------------------------------------

TEST(Codec, ArithmeticTypesRoundTripAsTheirBytes) {
  expect_round_trip(std::int8_t{-5});
  expect_round_trip(std::uint8_t{250});
  expect_round_trip(std::int16_t{-30000});
  expect_round_trip(std::uint16_t{65000});
  expect_round_trip(std::numeric_limits<std::int32_t>::min());
  expect_round_trip(std::numeric_limits<std::uint32_t>::max());
  expect_round_trip(std::numeric_limits<std::int64_t>::min());
  expect_round_trip(std::numeric_limits<std::uint64_t>::max());
  expect_round_trip('x');
  expect_round_trip(L'w');
  expect_round_trip(u8'u');
  expect_round_trip(u'\u00e9');
  expect_round_trip(U'\U0001F600');
  expect_round_trip(3.25f);
  expect_round_trip(-1e300);
  expect_round_trip(std::numeric_limits<double>::infinity());
  expect_round_trip(std::numeric_limits<double>::denorm_min());
  expect_round_trip(0.1L);
  EXPECT_EQ(mproc::to_bytes(std::uint32_t{0x11223344}), raw(std::uint32_t{0x11223344}));
  EXPECT_EQ(mproc::to_bytes(-2.5), raw(-2.5));
}

TEST(Codec, NanKeepsItsBits) {
  const double nan = std::bit_cast<double>(std::uint64_t{0x7ff8'dead'beef'0001});
  const double back = mproc::from_bytes<double>(mproc::to_bytes(nan));
  EXPECT_EQ(std::bit_cast<std::uint64_t>(back), std::uint64_t{0x7ff8'dead'beef'0001});
}

TEST(Codec, BoolIsOneByteZeroOrOne) {
  expect_round_trip(true);
  expect_round_trip(false);
  EXPECT_EQ(mproc::to_bytes(true), u8(1));
  EXPECT_EQ(mproc::to_bytes(false), u8(0));
  expect_decode_error([] { (void)mproc::from_bytes<bool>(u8(2)); },
                      "mproc: corrupt message: a bool is neither 0 nor 1");
  expect_decode_error([] { (void)mproc::from_bytes<bool>(u8(0xFF)); },
                      "mproc: corrupt message: a bool is neither 0 nor 1");
}

TEST(Codec, EnumsAcceptAnyValueOfTheUnderlyingType) {
  expect_round_trip(Color::blue);
  expect_round_trip(kBig);
  expect_round_trip(std::byte{0x7F});
  EXPECT_EQ(mproc::to_bytes(Color::green), u8(1));
  EXPECT_EQ(mproc::encoded_size(kBig), sizeof(Plain));
  EXPECT_EQ(mproc::from_bytes<Color>(u8(200)), static_cast<Color>(200));
}

TEST(Codec, TriviallyCopyableStructIsItsObjectBytes) {
  const Point p{-3, 7, 0.5};
  expect_round_trip(p);
  EXPECT_EQ(mproc::encoded_size(p), sizeof(Point));
  const auto bytes = mproc::to_bytes(p);
  EXPECT_EQ(std::memcmp(bytes.data(), &p, sizeof(Point)), 0);
  expect_round_trip(Fixed{4242});  // no default constructor
  expect_round_trip(std::complex<double>(1.5, -2.5));
  expect_round_trip(std::array<Point, 2>{Point{1, 2, 3}, Point{4, 5, 6}});
}

// ---- strings -------------------------------------------------------------------------------

TEST(Codec, StringIsCountThenCharacters) {
  expect_round_trip(std::string());
  expect_round_trip(std::string("hello"));
  expect_round_trip(std::string("with\0nul\0bytes", 14));
  expect_round_trip(std::string(1000, 'z'));
  expect_round_trip(std::u16string(u"\u00e9t\u00e9"));
  expect_round_trip(std::u32string(U"\U0001F600"));
  expect_round_trip(std::wstring(L"wide"));
  const std::vector<std::byte> abc = {std::byte{'a'}, std::byte{'b'}, std::byte{'c'}};
  EXPECT_EQ(mproc::to_bytes(std::string("abc")), concat(u64(3), abc));
  EXPECT_EQ(mproc::to_bytes(std::string()), u64(0));
  EXPECT_EQ(mproc::encoded_size(std::u16string(u"ab")), 8u + 4u);
}

// ---- sequences -------------------------------------------------------------------------------

TEST(Codec, VectorOfTriviallyCopyableIsCountThenOneBlock) {
  const std::vector<std::uint32_t> v = {1, 2, 0xFFFFFFFF};
  expect_round_trip(v);
  std::vector<std::byte> block(v.size() * 4);
  std::memcpy(block.data(), v.data(), block.size());
  EXPECT_EQ(mproc::to_bytes(v), concat(u64(3), block));
  expect_round_trip(std::vector<Point>{{1, 2, 3.5}, {-1, -2, -3.5}});
  expect_round_trip(std::vector<Fixed>{Fixed{1}, Fixed{2}});  // elementwise: no default ctor
  expect_round_trip(std::vector<int>{});
  EXPECT_EQ(mproc::to_bytes(std::vector<int>{}), u64(0));
}

TEST(Codec, VectorOfBoolIsOneByteEach) {
  expect_round_trip(std::vector<bool>{});
  expect_round_trip(std::vector<bool>{true, false, true});
  std::vector<bool> many(1000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = (i * 7) % 3 == 0;
  EXPECT_EQ(mproc::encoded_size(many), 8u + 1000u);
  EXPECT_EQ(mproc::from_bytes<std::vector<bool>>(mproc::to_bytes(many)), many);
  EXPECT_EQ(decode_windowed<std::vector<bool>>(mproc::to_bytes(many), 5), many);
  EXPECT_EQ(mproc::to_bytes(std::vector<bool>{true, false}), concat(u64(2), u8(1), u8(0)));
  expect_decode_error(
      [] { (void)mproc::from_bytes<std::vector<bool>>(concat(u64(2), u8(1), u8(3))); },
      "mproc: corrupt message: a bool is neither 0 nor 1");
}

TEST(Codec, OtherSequencesRoundTrip) {
  expect_round_trip(std::vector<std::string>{"a", "", "ccc"});
  expect_round_trip(std::deque<int>{5, 6, 7});
  expect_round_trip(std::deque<std::string>{});
  expect_round_trip(std::list<std::string>{"x", "y"});
  expect_round_trip(std::list<double>{});
  expect_round_trip(std::vector<std::vector<int>>{{}, {1}, {2, 3}});
  // The same elements give the same bytes in any sequence.
  EXPECT_EQ(mproc::to_bytes(std::deque<int>{1, 2}), mproc::to_bytes(std::vector<int>{1, 2}));
  EXPECT_EQ(mproc::to_bytes(std::list<int>{1, 2}), mproc::to_bytes(std::vector<int>{1, 2}));
}

TEST(Codec, ArrayHasNoCount) {
  expect_round_trip(std::array<int, 3>{1, 2, 3});
  expect_round_trip(std::array<std::string, 2>{"left", "right"});
  expect_round_trip(std::array<Fixed, 2>{Fixed{7}, Fixed{8}});
  expect_round_trip(std::array<std::optional<Fixed>, 2>{Fixed{7}, std::nullopt});
  expect_round_trip(std::array<int, 0>{});
  EXPECT_EQ(mproc::encoded_size(std::array<int, 3>{}), 12u);
  EXPECT_EQ(mproc::to_bytes(std::array<std::int16_t, 2>{1, 2}),
            concat(raw(std::int16_t{1}), raw(std::int16_t{2})));
  EXPECT_EQ(mproc::to_bytes(std::array<int, 0>{}), u8(0));
  static_assert(mproc::codec<std::array<int, 3>>::bitwise);
  static_assert(!mproc::codec<std::array<std::string, 3>>::bitwise);
}

// ---- associative containers --------------------------------------------------------------------

TEST(Codec, MapsAndSetsRoundTrip) {
  expect_round_trip(std::map<std::string, int>{{"a", 1}, {"b", 2}});
  expect_round_trip(std::map<int, std::string>{});
  expect_round_trip(std::multimap<int, std::string>{{1, "x"}, {1, "y"}, {2, "z"}});
  expect_round_trip(std::unordered_map<std::string, std::vector<int>>{{"k", {1, 2}}, {"", {}}});
  expect_round_trip(std::unordered_multimap<int, int>{{1, 1}, {1, 2}});
  expect_round_trip(std::set<std::string>{"b", "a"});
  expect_round_trip(std::multiset<int>{3, 3, 1});
  expect_round_trip(std::unordered_set<std::int64_t>{-1, 0, 1});
  expect_round_trip(std::unordered_multiset<char>{'a', 'a'});
  expect_round_trip(std::set<int, std::greater<>>{1, 2, 3});
  EXPECT_EQ(mproc::to_bytes(std::map<std::uint8_t, bool>{{2, true}, {1, false}}),
            concat(u64(2), u8(1), u8(0), u8(2), u8(1)));
}

TEST(Codec, DuplicateKeysInAUniqueContainerAreRejected) {
  expect_decode_error(
      [] {
        (void)mproc::from_bytes<std::map<std::uint8_t, std::uint8_t>>(
            concat(u64(2), u8(1), u8(10), u8(1), u8(11)));
      },
      "mproc: corrupt message: a duplicate key in a map");
  expect_decode_error(
      [] {
        (void)mproc::from_bytes<std::unordered_set<std::uint8_t>>(concat(u64(2), u8(4), u8(4)));
      },
      "mproc: corrupt message: a duplicate key in a set");
  // Multi-containers keep duplicates.
  EXPECT_EQ(mproc::from_bytes<std::multiset<std::uint8_t>>(concat(u64(2), u8(4), u8(4))).count(4),
            2u);
}

TEST(Codec, MapsDecodeKeysInAnyOrder) {
  const auto m = mproc::from_bytes<std::map<std::uint8_t, std::uint8_t>>(
      concat(u64(3), u8(9), u8(90), u8(1), u8(10), u8(5), u8(50)));
  EXPECT_EQ(m, (std::map<std::uint8_t, std::uint8_t>{{1, 10}, {5, 50}, {9, 90}}));
}

// ---- optional, variant, tuple, pair, monostate ---------------------------------------------

TEST(Codec, OptionalIsAFlagThenTheValue) {
  expect_round_trip(std::optional<int>{});
  expect_round_trip(std::optional<int>{42});
  expect_round_trip(std::optional<std::string>{""});
  expect_round_trip(std::optional<std::optional<bool>>{std::optional<bool>{}});
  EXPECT_EQ(mproc::to_bytes(std::optional<std::uint8_t>{}), u8(0));
  EXPECT_EQ(mproc::to_bytes(std::optional<std::uint8_t>{7}), concat(u8(1), u8(7)));
  expect_decode_error([] { (void)mproc::from_bytes<std::optional<std::uint8_t>>(u8(2)); },
                      "mproc: corrupt message: an optional's flag is neither 0 nor 1");
}

TEST(Codec, VariantIsTheIndexThenTheAlternative) {
  using V = std::variant<std::monostate, int, std::string, std::vector<double>>;
  expect_round_trip(V{});
  expect_round_trip(V{5});
  expect_round_trip(V{std::string("s")});
  expect_round_trip(V{std::vector<double>{1.5}});
  using Same = std::variant<int, int>;  // alternatives of the same type stay apart
  expect_round_trip(Same{std::in_place_index<1>, 3});
  EXPECT_EQ(mproc::from_bytes<Same>(mproc::to_bytes(Same{std::in_place_index<1>, 3})).index(), 1u);
  EXPECT_EQ(mproc::to_bytes(std::variant<std::uint8_t, bool>{true}), concat(u8(1), u8(1)));
  expect_decode_error([] { (void)mproc::from_bytes<V>(concat(u8(4), raw(1))); },
                      "mproc: corrupt message: variant index 4 is out of range (4 alternatives)");
  expect_decode_error([] { (void)mproc::from_bytes<V>(u8(255)); },
                      "mproc: corrupt message: variant index 255 is out of range (4 alternatives)");
}

struct ThrowsOnCopy {
  ThrowsOnCopy() = default;
  ThrowsOnCopy(const ThrowsOnCopy&) { throw std::runtime_error("copy"); }
  ThrowsOnCopy& operator=(const ThrowsOnCopy&) = default;
  template <class Archive>
  void serialize(Archive&) {}
};

TEST(Codec, ValuelessVariantCannotBeEncoded) {
  std::variant<int, ThrowsOnCopy> v;
  const ThrowsOnCopy t;
  EXPECT_THROW(v.emplace<ThrowsOnCopy>(t), std::runtime_error);
  ASSERT_TRUE(v.valueless_by_exception());
  try {
    (void)mproc::encoded_size(v);
    FAIL() << "no ValueError";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc: a valueless std::variant cannot be encoded");
  }
  std::array<std::byte, 16> buf;
  mproc::Writer w(buf.data(), buf.data() + buf.size());
  EXPECT_THROW(mproc::encode(w, v), mproc::ValueError);
}

TEST(Codec, TupleAndPairAreTheirMembersInOrder) {
  expect_round_trip(std::tuple<>{});
  expect_round_trip(std::tuple<int, std::string, bool>{1, "two", true});
  expect_round_trip(std::pair<std::string, double>{"pi", 3.14});
  expect_round_trip(std::pair<const int, std::string>{1, "const key"});
  expect_round_trip(std::monostate{});
  EXPECT_EQ(mproc::to_bytes(std::tuple<>{}), u8(0));
  EXPECT_EQ(mproc::to_bytes(std::monostate{}), u8(0));
  EXPECT_EQ(mproc::to_bytes(std::pair<std::uint8_t, bool>{9, false}), concat(u8(9), u8(0)));
  // Members decode left to right.
  const std::tuple<std::string, std::string, int> t{"first", "second", 3};
  EXPECT_EQ(mproc::from_bytes<decltype(t)>(mproc::to_bytes(t)), t);
  expect_decode_error([] { (void)mproc::from_bytes<std::monostate>(u8(1)); },
                      "mproc: corrupt message: a padding byte is not 0");
}

// ---- chrono --------------------------------------------------------------------------------

TEST(Codec, DurationsAndTimePointsAreTheirCounts) {
  expect_round_trip(std::chrono::nanoseconds(-123456789));
  expect_round_trip(std::chrono::duration<double, std::milli>(2.5));
  expect_round_trip(std::chrono::hours(48));
  const auto now = std::chrono::system_clock::now();
  expect_round_trip(now);
  expect_round_trip(std::chrono::steady_clock::now());
  expect_round_trip(std::chrono::sys_days(std::chrono::days(19000)));
  EXPECT_EQ(mproc::to_bytes(5ms), raw(std::int64_t{5}));
  EXPECT_EQ(mproc::to_bytes(now), raw(now.time_since_epoch().count()));
  static_assert(mproc::codec<std::chrono::seconds>::bitwise);
}

// ---- nesting ---------------------------------------------------------------------------------

TEST(Codec, NestedCombinationsRoundTrip) {
  using Cell = std::optional<std::variant<int, std::string>>;
  using Table = std::map<std::string, std::vector<Cell>>;
  Table t;
  t["empty"] = {};
  t["mixed"] = {Cell{}, Cell{1}, Cell{std::string("two")}, Cell{std::string()}};
  t[""] = {Cell{-1}};
  expect_round_trip(t);
  expect_round_trip(Table{});

  using Deep = std::vector<std::tuple<std::pair<int, std::set<std::string>>, std::deque<bool>,
                                      std::array<std::optional<std::chrono::seconds>, 2>>>;
  Deep d;
  d.push_back({{1, {"a", "b"}}, {true, false}, {std::chrono::seconds(3), std::nullopt}});
  d.push_back({{2, {}}, {}, {std::nullopt, std::nullopt}});
  expect_round_trip(d);

  std::unordered_map<int, std::list<std::unordered_map<std::string, std::monostate>>> u;
  u[1] = {{{"x", {}}}, {}};
  expect_round_trip(u);
}

// ---- user types ------------------------------------------------------------------------------

TEST(Codec, MemberSerialize) {
  const shop::Order o{"ACME", {1.5, 2.5}, 10};
  expect_round_trip(o);
  expect_round_trip(shop::Order{});
  // The archived members in order, no framing.
  EXPECT_EQ(mproc::to_bytes(o),
            concat(mproc::to_bytes(o.symbol), mproc::to_bytes(o.prices), mproc::to_bytes(o.limit)));
}

TEST(Codec, FreeSerializeFoundByArgumentDependentLookup) {
  shop::Customer c{"ann", {}};
  c.orders["x"] = shop::Order{"X", {1}, std::nullopt};
  expect_round_trip(c);
  EXPECT_EQ(mproc::encoded_size(c), mproc::encoded_size(c.name) + mproc::encoded_size(c.orders));
}

TEST(Codec, PrivateSerializeThroughCodecAccess) {
  const shop::Account a(77, "bob");
  const auto b = mproc::from_bytes<shop::Account>(mproc::to_bytes(a));
  EXPECT_EQ(b.id(), 77);
  EXPECT_EQ(b.owner(), "bob");
}

TEST(Codec, SerializeWinsOverTriviallyCopyable) {
  const shop::Cached c{5, 99};
  EXPECT_EQ(mproc::encoded_size(c), sizeof(int));
  const auto back = mproc::from_bytes<shop::Cached>(mproc::to_bytes(c));
  EXPECT_EQ(back.value, 5);
  EXPECT_EQ(back.cache, 0);
  // A vector of them goes element by element through serialize too.
  EXPECT_EQ(mproc::encoded_size(std::vector<shop::Cached>(3)), 8u + 3 * sizeof(int));
}

TEST(Codec, SerializeThatArchivesNothingIsOneByte) {
  expect_round_trip(shop::Nothing{});
  EXPECT_EQ(mproc::to_bytes(shop::Nothing{}), u8(0));
  expect_round_trip(std::vector<shop::Nothing>(5));
  expect_round_trip(std::optional<shop::Nothing>(shop::Nothing{}));
  expect_decode_error([] { (void)mproc::from_bytes<shop::Nothing>(u8(3)); },
                      "mproc: corrupt message: a padding byte is not 0");
}

TEST(Codec, RecursiveType) {
  shop::Tree t{1, {{2, {}}, {3, {{4, {}}}}}};
  expect_round_trip(t);
}

TEST(Codec, CArraysInsideSerialize) {
  shop::Grid g;
  int k = 0;
  for (auto& row : g.cells)
    for (auto& c : row) c = ++k;
  g.labels[0] = "rows";
  g.labels[1] = "cols";
  EXPECT_EQ(mproc::encoded_size(g), 6 * sizeof(int) + (8 + 4) + (8 + 4));
  const auto back = mproc::from_bytes<shop::Grid>(mproc::to_bytes(g));
  EXPECT_EQ(back.cells[1][2], 6);
  EXPECT_EQ(back.cells[0][0], 1);
  EXPECT_EQ(back.labels[1], "cols");
  EXPECT_EQ(back.loads, 1);
  EXPECT_EQ(g.loads, 0);  // encoding is not loading
  const auto windowed = decode_windowed<shop::Grid>(mproc::to_bytes(g), 3);
  EXPECT_EQ(windowed.labels[0], "rows");
  EXPECT_EQ(windowed.cells[1][0], 4);
}

TEST(Codec, SpecialisedTrait) {
  const shop::Celsius c{21.5, "lab"};
  expect_round_trip(c);
  EXPECT_EQ(mproc::encoded_size(c), 8u + 8u + 3u);
  EXPECT_EQ(mproc::to_bytes(c), concat(raw(std::int64_t{2150}), mproc::to_bytes(c.where)));
  // The specialisation is used inside containers too.
  expect_round_trip(std::vector<shop::Celsius>{{1.25, "a"}, {-4, ""}});
}

TEST(Codec, PartialSpecialisationWithEnableWinsOverTriviallyCopyable) {
  EXPECT_EQ(mproc::encoded_size(shop::Tagged<int>{7}), 1u);
  expect_round_trip(shop::Tagged<long>{200});
  // Not integral: the built-in trivially-copyable rule.
  EXPECT_EQ(mproc::encoded_size(shop::Tagged<double>{1.0}), sizeof(double));
  expect_round_trip(shop::Tagged<double>{1.0});
}

TEST(Codec, ToBytesDetectsASizeThatDisagreesWithEncode) {
  try {
    (void)mproc::to_bytes(shop::Liar{1});
    FAIL() << "no Error";
  } catch (const mproc::Error& e) {
    EXPECT_STREQ(e.what(), "mproc: codec<T>::size() is larger than what codec<T>::encode() wrote");
  }
}

// ---- damaged input -----------------------------------------------------------------------------

TEST(Codec, TruncationAtEveryCutThrowsDecodeError) {
  // expect_round_trip checks every cut; here the values are chosen for many kinds of cut.
  expect_round_trip(std::vector<std::string>{"abc", "", std::string(40, 'q')});
  expect_round_trip(
      std::map<std::string, std::vector<std::optional<std::variant<int, std::string>>>>{
          {"k", {std::nullopt, 3, std::string("v")}}, {"", {}}});
  expect_round_trip(std::tuple<bool, std::array<std::uint16_t, 3>, std::list<std::int8_t>>{
      true, {1, 2, 3}, {-1, 1}});
  expect_round_trip(shop::Customer{"c", {{"o", shop::Order{"s", {1, 2}, 3}}}});
  expect_decode_error([] { (void)mproc::from_bytes<std::uint64_t>(u8(1)); }, kTruncated);
  expect_decode_error([] { (void)mproc::from_bytes<int>({}); }, kTruncated);
}

TEST(Codec, HugeCountsThrowWithoutHugeAllocation) {
  const std::uint64_t huge[] = {std::uint64_t{1} << 62, std::numeric_limits<std::uint64_t>::max(),
                                1000};
  for (std::uint64_t count : huge) {
    SCOPED_TRACE(count);
    const auto bytes = concat(u64(count), std::vector<std::byte>(64, std::byte{1}));
    g_largest_allocation = 0;
    expect_decode_error(
        [&] {
          (void)mproc::from_bytes<std::vector<std::uint64_t, CountingAllocator<std::uint64_t>>>(
              bytes);
        },
        kBadLength);
    expect_decode_error(
        [&] {
          (void)mproc::from_bytes<
              std::basic_string<char, std::char_traits<char>, CountingAllocator<char>>>(bytes);
        },
        kBadLength);
    expect_decode_error([&] { (void)mproc::from_bytes<std::vector<bool>>(bytes); }, kBadLength);
    expect_decode_error(
        [&] {
          (void)mproc::from_bytes<
              std::map<int, int, std::less<>, CountingAllocator<std::pair<const int, int>>>>(bytes);
        },
        kBadLength);
    expect_decode_error([&] { (void)mproc::from_bytes<std::unordered_set<std::string>>(bytes); },
                        kBadLength);
    expect_decode_error([&] { (void)mproc::from_bytes<std::deque<std::string>>(bytes); },
                        kBadLength);
    EXPECT_EQ(g_largest_allocation, 0u);
  }
}

TEST(Codec, CountsAreBoundedByTheSmallestElementEncoding) {
  // 8 uint64 elements need 64 bytes; 9 do not fit, even though 9 bytes remain.
  auto bytes = concat(u64(8), std::vector<std::byte>(64, std::byte{1}));
  EXPECT_EQ(mproc::from_bytes<std::vector<std::uint64_t>>(bytes).size(), 8u);
  bytes = concat(u64(9), std::vector<std::byte>(64, std::byte{1}));
  expect_decode_error([&] { (void)mproc::from_bytes<std::vector<std::uint64_t>>(bytes); },
                      kBadLength);
  // A string takes at least its 8-byte count: 8 strings fit into 64 bytes, 9 do not.
  bytes = concat(u64(9), std::vector<std::byte>(64, std::byte{0}));
  expect_decode_error([&] { (void)mproc::from_bytes<std::vector<std::string>>(bytes); },
                      kBadLength);
}

TEST(Codec, ReservationIsBoundedForLargeElementsWithSmallEncodings) {
  // Each optional<array<char, 4096>> may encode to one byte; a corrupt count of 1000 with 1000
  // bytes must not reserve 1000 * 4 KiB up front.
  using Big = std::optional<std::array<char, 4096>>;
  const auto bytes = concat(u64(1000), std::vector<std::byte>(1000, std::byte{7}));
  g_largest_allocation = 0;
  expect_decode_error(
      [&] { (void)mproc::from_bytes<std::vector<Big, CountingAllocator<Big>>>(bytes); },
      "mproc: corrupt message: an optional's flag is neither 0 nor 1");
  EXPECT_LE(g_largest_allocation, 8 * 1000 + sizeof(Big));
  // The same count of empty optionals is valid and decodes.
  const auto ok = concat(u64(1000), std::vector<std::byte>(1000, std::byte{0}));
  EXPECT_EQ(mproc::from_bytes<std::vector<Big>>(ok).size(), 1000u);
}

TEST(Codec, TrailingBytesAreRejected) {
  const auto bytes = concat(mproc::to_bytes(std::string("ab")), u8(0), u8(0), u8(0));
  expect_decode_error([&] { (void)mproc::from_bytes<std::string>(bytes); },
                      "mproc: trailing bytes: 3 bytes remain after the decoded value");
  // decode() itself reads one value and leaves the rest.
  mproc::Reader r(bytes.data(), bytes.size());
  EXPECT_EQ(mproc::decode<std::string>(r), "ab");
  EXPECT_EQ(r.remaining(), 3u);
}

TEST(Codec, ValuesFollowOneAnotherInAStream) {
  std::vector<std::byte> buf(64);
  mproc::Writer w(buf.data(), buf.data() + buf.size());
  mproc::encode(w, 1);
  mproc::encode(w, std::string("x"));
  mproc::encode(w, std::optional<bool>(true));
  const auto n = static_cast<std::size_t>(w.cur() - buf.data());
  EXPECT_EQ(n, 4u + 9u + 2u);
  mproc::Reader r(buf.data(), n);
  EXPECT_EQ(mproc::decode<int>(r), 1);
  EXPECT_EQ(mproc::decode<std::string>(r), "x");
  EXPECT_EQ(mproc::decode<const std::optional<bool>>(r), std::optional<bool>(true));
  EXPECT_EQ(r.remaining(), 0u);
}

// ---- a sender that announces more than it sends -------------------------------------------------

// Thrown by ShortSource's refill once the bytes it was given are spent: the stand-in for a peer
// that went away (a Connection throws EOFError there).
struct PeerGone {};

// A Reader's owner standing for an untrusted peer: the Reader is told the message holds
// `announced` bytes, but the peer sends only `prefix` and then `filler_bytes` bytes of `filler`, in
// fresh heap windows of at most `window` bytes, and then goes away.
class ShortSource {
 public:
  ShortSource(std::vector<std::byte> prefix, std::size_t filler_bytes, std::byte filler,
              std::size_t window)
      : prefix_(std::move(prefix)),
        total_(prefix_.size() + filler_bytes),
        filler_(filler),
        window_(window) {}

  mproc::Reader reader(std::size_t announced) {
    return mproc::Reader(nullptr, nullptr, announced, &ShortSource::refill, this);
  }
  std::size_t delivered() const { return pos_; }

 private:
  static void refill(mproc::Reader& r, void* ctx) {
    auto* self = static_cast<ShortSource*>(ctx);
    if (self->pos_ == self->total_) throw PeerGone{};
    const std::size_t k = std::min(self->window_, self->total_ - self->pos_);
    self->buf_ = std::make_unique<std::byte[]>(k);
    for (std::size_t i = 0; i < k; ++i) {
      const std::size_t at = self->pos_ + i;
      self->buf_[i] = at < self->prefix_.size() ? self->prefix_[at] : self->filler_;
    }
    self->pos_ += k;
    r.set_window(self->buf_.get(), self->buf_.get() + k);
  }

  std::vector<std::byte> prefix_;
  std::size_t total_;
  std::byte filler_;
  std::size_t window_;
  std::size_t pos_ = 0;
  std::unique_ptr<std::byte[]> buf_;
};

// Decodes a T from a peer that announces `announced` bytes and sends `prefix` and 1 MiB of
// `filler` in 4 KiB windows; expects the decode to end because the peer went away (not with
// bad_alloc, not with a DecodeError), and returns the bytes the peer delivered.
template <class T>
std::size_t decode_from_short_peer(std::size_t announced, std::vector<std::byte> prefix,
                                   std::byte filler) {
  ShortSource peer(std::move(prefix), std::size_t{1} << 20, filler, 4096);
  mproc::Reader r = peer.reader(announced);
  try {
    (void)mproc::decode<T>(r);
    ADD_FAILURE() << "decoded a value from a truncated message";
  } catch (const PeerGone&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected the peer to go away first; got " << typeid(e).name() << ": "
                  << e.what();
  }
  return peer.delivered();
}

TEST(Codec, BlockReadsAllocateAsTheBytesArriveNotAsTheSenderAnnounced) {
  using String = std::basic_string<char, std::char_traits<char>, CountingAllocator<char>>;
  using Words = std::vector<std::uint64_t, CountingAllocator<std::uint64_t>>;
  using Bits = std::vector<bool, CountingAllocator<bool>>;
  for (const std::size_t announced :
       {(std::size_t{1} << 30) + 8, (std::size_t{4} << 30) + 8, std::size_t{1} << 62}) {
    SCOPED_TRACE(announced);
    const std::size_t count = announced - 8;
    g_largest_allocation = 0;
    std::size_t got = decode_from_short_peer<String>(announced, u64(count), std::byte{'x'});
    // The capacity runs at most 8 times ahead of what arrived (plus one 256 KiB piece).
    EXPECT_LE(g_largest_allocation, 8 * (got + (std::size_t{256} << 10)));

    g_largest_allocation = 0;
    got = decode_from_short_peer<Words>(announced, u64(count / 8), std::byte{7});
    EXPECT_LE(g_largest_allocation, 8 * (got + (std::size_t{256} << 10)));

    g_largest_allocation = 0;
    got = decode_from_short_peer<Bits>(announced, u64(count), std::byte{1});
    EXPECT_LE(g_largest_allocation, 2 * got);
  }
}

TEST(Codec, ReservationsFollowTheBytesReceivedNotTheAnnouncedTotal) {
  using Strings = std::vector<std::string, CountingAllocator<std::string>>;
  using Multimap =
      std::unordered_multimap<std::int32_t, std::int32_t, std::hash<std::int32_t>, std::equal_to<>,
                              CountingAllocator<std::pair<const std::int32_t, int>>>;
  using Tree = std::map<std::string, std::vector<std::optional<std::uint64_t>>>;
  for (const std::size_t announced : {(std::size_t{1} << 30) + 8, (std::size_t{4} << 30) + 8}) {
    SCOPED_TRACE(announced);
    // Each string is at least its 8-byte count: the announced total allows count / 8 of them. The
    // filler (zero bytes) makes empty strings, so elements do arrive.
    g_largest_allocation = 0;
    std::size_t got =
        decode_from_short_peer<Strings>(announced, u64((announced - 8) / 8), std::byte{0});
    // sizeof(std::string) per 8 bytes received, doubled by growth.
    EXPECT_LE(g_largest_allocation, 2 * (got / 8) * sizeof(std::string) + (64 << 10));

    g_largest_allocation = 0;
    got = decode_from_short_peer<Multimap>(announced, u64((announced - 8) / 8), std::byte{0});
    EXPECT_LE(g_largest_allocation, 16 * got);

    // Nested: a map whose first value is a vector announcing more optionals than arrive.
    const auto prefix = concat(u64(1), mproc::to_bytes(std::string("k")), u64(announced / 2));
    (void)decode_from_short_peer<Tree>(announced, prefix, std::byte{0});
  }
}

TEST(Codec, AWholeMessageInTheWindowIsOneAllocationOfItsSize) {
  using String = std::basic_string<char, std::char_traits<char>, CountingAllocator<char>>;
  using Words = std::vector<std::uint64_t, CountingAllocator<std::uint64_t>>;
  using Strings = std::vector<std::string, CountingAllocator<std::string>>;
  const std::size_t n = std::size_t{1} << 20;

  const auto s = mproc::to_bytes(std::string(n, 's'));
  g_allocations = 0;
  g_largest_allocation = 0;
  EXPECT_EQ(mproc::from_bytes<String>(s).size(), n);
  EXPECT_EQ(g_allocations, 1u);
  EXPECT_EQ(g_largest_allocation, n + 1);

  const auto w = mproc::to_bytes(std::vector<std::uint64_t>(n / 8, 3));
  g_allocations = 0;
  g_largest_allocation = 0;
  EXPECT_EQ(mproc::from_bytes<Words>(w).size(), n / 8);
  EXPECT_EQ(g_allocations, 1u);
  EXPECT_EQ(g_largest_allocation, n);

  const auto v = mproc::to_bytes(std::vector<std::string>(1000, "abc"));
  g_allocations = 0;
  g_largest_allocation = 0;
  EXPECT_EQ(mproc::from_bytes<Strings>(v).size(), 1000u);
  EXPECT_EQ(g_allocations, 1u);
  EXPECT_EQ(g_largest_allocation, 1000 * sizeof(std::string));
}

// A WindowedSource that also places bytes straight into the decoder's memory (Reader::DirectFn),
// at most `direct` bytes per call, as a Connection reads a socket into the string being decoded.
class DirectSource {
 public:
  DirectSource(std::span<const std::byte> all, std::size_t window, std::size_t direct)
      : all_(all), window_(window), direct_(direct) {}
  mproc::Reader reader() {
    mproc::Reader r(nullptr, nullptr, all_.size(), &DirectSource::refill, this);
    r.set_direct(&DirectSource::place);
    return r;
  }
  std::size_t placed() const { return placed_; }

 private:
  static void refill(mproc::Reader& r, void* ctx) {
    auto* self = static_cast<DirectSource*>(ctx);
    const std::size_t k = std::min(self->window_, self->all_.size() - self->pos_);
    if (k == 0) throw std::logic_error("refill asked for bytes past the end of the message");
    self->buf_ = std::make_unique<std::byte[]>(k);
    std::memcpy(self->buf_.get(), self->all_.data() + self->pos_, k);
    self->pos_ += k;
    r.set_window(self->buf_.get(), self->buf_.get() + k);
  }
  static std::size_t place(std::byte* out, std::size_t n, void* ctx) {
    auto* self = static_cast<DirectSource*>(ctx);
    const std::size_t k = std::min({n, self->direct_, self->all_.size() - self->pos_});
    if (k == 0) throw std::logic_error("direct read past the end of the message");
    std::memcpy(out, self->all_.data() + self->pos_, k);
    self->pos_ += k;
    self->placed_ += k;
    return k;
  }

  std::span<const std::byte> all_;
  std::size_t window_;
  std::size_t direct_;
  std::size_t pos_ = 0;
  std::size_t placed_ = 0;
  std::unique_ptr<std::byte[]> buf_;
};

TEST(Codec, LargeBlocksAreReadStraightIntoTheValueWhenTheReaderOffersIt) {
  std::string s((std::size_t{3} << 20) + 5, 'a');
  for (std::size_t i = 0; i < s.size(); i += 4093) s[i] = static_cast<char>('a' + i % 26);
  std::vector<std::uint64_t> words(300000);
  for (std::size_t i = 0; i < words.size(); ++i) words[i] = i * 0x9E3779B97F4A7C15ull;
  const auto value = std::make_tuple(s, words, std::string("tail"));
  const auto bytes = mproc::to_bytes(value);
  // 4097-byte direct reads split elements; 4 KiB windows carry the counts and the small string.
  DirectSource source(bytes, 4096, 4097);
  mproc::Reader r = source.reader();
  EXPECT_TRUE(mproc::decode<decltype(value)>(r) == value);
  EXPECT_EQ(r.remaining(), 0u);
  // All but the ends of pieces (under kDirectMin, through a window) went direct.
  EXPECT_GT(source.placed(), (s.size() + words.size() * 8) * 9 / 10);
  // Small reads never go direct.
  const auto strings = mproc::to_bytes(std::vector<std::string>(2000, "x"));
  DirectSource small(strings, 7, 4097);
  mproc::Reader rs = small.reader();
  EXPECT_EQ(mproc::decode<std::vector<std::string>>(rs).size(), 2000u);
  EXPECT_EQ(small.placed(), 0u);
}

TEST(Codec, HonestStreamsLargerThanTheWindowDecodeWithBoundedGrowth) {
  using String = std::basic_string<char, std::char_traits<char>, CountingAllocator<char>>;
  String s((std::size_t{3} << 20) + 5, 'a');
  for (std::size_t i = 0; i < s.size(); i += 4093) s[i] = static_cast<char>('a' + i % 26);
  const auto bytes = mproc::to_bytes(s);
  g_largest_allocation = 0;
  g_allocations = 0;
  EXPECT_TRUE(decode_windowed<String>(bytes, 4096) == s);
  // 2 MiB ahead of the first piece, then the size (libstdc++'s reserve may double instead: the
  // rest is address space, never written).
  EXPECT_LE(g_largest_allocation, 2 * s.size());
  EXPECT_LE(g_allocations, 3u);

  // Elements split across windows of 1 and 3 bytes.
  std::vector<std::uint64_t> words(20000);
  for (std::size_t i = 0; i < words.size(); ++i) words[i] = i * 0x9E3779B97F4A7C15ull;
  const auto wb = mproc::to_bytes(words);
  EXPECT_TRUE(decode_windowed<std::vector<std::uint64_t>>(wb, 1) == words);
  EXPECT_TRUE(decode_windowed<std::vector<std::uint64_t>>(wb, 3) == words);
  std::vector<bool> bits(70000);
  for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = i % 3 == 1;
  EXPECT_EQ(decode_windowed<std::vector<bool>>(mproc::to_bytes(bits), 7), bits);

  // An element larger than any growth step.
  using Page = std::array<char, 100000>;
  std::vector<Page> pages(5);
  for (std::size_t i = 0; i < pages.size(); ++i) pages[i].fill(static_cast<char>('0' + i));
  EXPECT_TRUE(decode_windowed<std::vector<Page>>(mproc::to_bytes(pages), 4096) == pages);
}

// ---- streaming and size ------------------------------------------------------------------------

TEST(Codec, StreamingThroughSmallWindowsGivesTheSameBytes) {
  const std::map<std::string, std::vector<int>> m = {{"alpha", {1, 2, 3, 4, 5}}, {"b", {}}};
  const auto whole = mproc::to_bytes(m);
  for (std::size_t window : {1u, 2u, 3u, 7u, 64u}) {
    SCOPED_TRACE(window);
    WindowedSink sink(window);
    mproc::Writer w = sink.writer();
    mproc::encode(w, m);
    EXPECT_EQ(sink.finish(w), whole);
    EXPECT_GE(sink.refills(), static_cast<int>(whole.size() / window) - 1);

    WindowedSource source(whole, window);
    mproc::Reader r = source.reader();
    EXPECT_EQ(mproc::decode<decltype(m)>(r), m);
    EXPECT_EQ(source.refills(), static_cast<int>((whole.size() + window - 1) / window));
  }
}

TEST(Codec, SixtyFourMebibyteVectorRoundTrips) {
  std::vector<std::uint64_t> v(std::size_t{8} << 20);  // 64 MiB
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = i * 0x9E3779B97F4A7C15ull;
  EXPECT_EQ(mproc::encoded_size(v), 8u + (std::size_t{64} << 20));
  const auto bytes = mproc::to_bytes(v);
  EXPECT_TRUE(mproc::from_bytes<std::vector<std::uint64_t>>(bytes) == v);
  // Streamed through 64 KiB windows both ways.
  EXPECT_TRUE(encode_windowed(v, 64 << 10) == bytes);
  EXPECT_TRUE(decode_windowed<std::vector<std::uint64_t>>(bytes, 64 << 10) == v);
  // A 64 MiB string too.
  const std::string s(std::size_t{64} << 20, 's');
  EXPECT_TRUE(mproc::from_bytes<std::string>(mproc::to_bytes(s)) == s);
}

}  // namespace
