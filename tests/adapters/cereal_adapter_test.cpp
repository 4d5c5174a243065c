// <mproc/codec/cereal.hpp>: types written for cereal, in every form cereal accepts, through
// to_bytes/from_bytes, a Queue, a Pipe, a Pool and Process arguments; the same types through
// cereal's own binary archive (they compile unchanged in both); hostile bytes.
#include <gtest/gtest.h>

// clang-format off
#include <cereal/archives/binary.hpp>
#include <cereal/types/base_class.hpp>
#include <cereal/types/forward_list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/valarray.hpp>
#include <cereal/types/vector.hpp>
#include <mproc/codec/cereal.hpp>
// clang-format on

#include <cstdint>
#include <cstring>
#include <forward_list>
#include <map>
#include <memory>
#include <mproc/pipe.hpp>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <valarray>
#include <vector>

#include "adapters/adapter_checks.hpp"

namespace cer {

// ---- one type per form -------------------------------------------------------------------------

struct Nvp {  // member serialize with name-value pairs
  std::string name;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), cereal::make_nvp("values", values));
  }
  bool operator==(const Nvp&) const = default;
};

struct FreeSerialize {  // non-member serialize
  int a = 0;
  double b = 0;
  bool operator==(const FreeSerialize&) const = default;
};
template <class Archive>
void serialize(Archive& ar, FreeSerialize& f) {
  ar(cereal::make_nvp("a", f.a), f.b);
}

// Member split save/load; the saved form differs from the members (an offset), so that a
// bitwise copy would be caught.
struct Split {
  int x = 0;
  template <class Archive>
  void save(Archive& ar) const {
    ar(x + 1000);
  }
  template <class Archive>
  void load(Archive& ar) {
    int stored = 0;
    ar(stored);
    x = stored - 1000;
  }
  bool operator==(const Split&) const = default;
};

struct FreeSplit {  // non-member save/load
  std::string s;
  bool operator==(const FreeSplit&) const = default;
};
template <class Archive>
void save(Archive& ar, const FreeSplit& f) {
  ar(f.s + "!");
}
template <class Archive>
void load(Archive& ar, FreeSplit& f) {
  std::string stored;
  ar(stored);
  f.s = stored.substr(0, stored.size() - 1);
}

struct Minimal {  // member save_minimal/load_minimal
  int cents = 0;
  template <class Archive>
  std::string save_minimal(const Archive&) const {
    return std::to_string(cents);
  }
  template <class Archive>
  void load_minimal(const Archive&, const std::string& v) {
    cents = std::stoi(v);
  }
  bool operator==(const Minimal&) const = default;
};

struct FreeMinimal {  // non-member save_minimal/load_minimal
  std::uint16_t code = 0;
  bool operator==(const FreeMinimal&) const = default;
};
template <class Archive>
std::uint32_t save_minimal(const Archive&, const FreeMinimal& f) {
  return f.code * 2u;
}
template <class Archive>
void load_minimal(const Archive&, FreeMinimal& f, const std::uint32_t& v) {
  f.code = static_cast<std::uint16_t>(v / 2);
}

// Versioned serialize: the receiver's function gets the sender's version.
struct Versioned {
  int x = 0;
  std::uint32_t loaded_version = 99;
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t version) {
    ar(x);
    if constexpr (Archive::is_loading::value) loaded_version = version;
  }
};

struct VersionedSplit {  // versioned save/load
  int x = 0;
  std::uint32_t loaded_version = 99;
  template <class Archive>
  void save(Archive& ar, std::uint32_t version) const {
    ar(x, version);
  }
  template <class Archive>
  void load(Archive& ar, std::uint32_t version) {
    std::uint32_t echoed = 0;
    ar(x, echoed);
    loaded_version = version == echoed ? version : 1000 + echoed;
  }
};

// base_class
struct Base {
  std::string b;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(b);
  }
};
struct Derived : Base {
  int d = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::base_class<Base>(this), d);
  }
};

// virtual_base_class: the diamond's shared base is archived once.
struct VBase {
  std::string root;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(root);
  }
};
struct Left : virtual VBase {
  int l = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::virtual_base_class<VBase>(this), l);
  }
};
struct Right : virtual VBase {
  int r = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::virtual_base_class<VBase>(this), r);
  }
};
struct Diamond : Left, Right {
  int m = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::base_class<Left>(this), cereal::base_class<Right>(this), m);
  }
};

// binary_data and make_size_tag, as a user writes a container of their own.
struct Blob {
  std::vector<std::uint32_t> words;
  template <class Archive>
  void save(Archive& ar) const {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(words.size())));
    ar(cereal::binary_data(words.data(), words.size() * sizeof(std::uint32_t)));
  }
  template <class Archive>
  void load(Archive& ar) {
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    words.resize(static_cast<std::size_t>(n));
    ar(cereal::binary_data(words.data(), words.size() * sizeof(std::uint32_t)));
  }
  bool operator==(const Blob&) const = default;
};

// cereal's types/*.hpp for what mproc has no rule of its own: smart pointers (with sharing kept
// within one value), std::valarray, std::forward_list.
struct Pointers {
  std::unique_ptr<Nvp> owned;
  std::unique_ptr<int> none;
  std::shared_ptr<std::string> s1;
  std::shared_ptr<std::string> s2;  // the same object as s1
  template <class Archive>
  void serialize(Archive& ar) {
    ar(owned, none, s1, s2);
  }
};

struct CerealStd {
  std::valarray<double> va;
  std::forward_list<std::string> fl;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(va, fl);
  }
};

struct Empty {  // archives nothing: one 0 byte
  template <class Archive>
  void serialize(Archive&) {}
};

// A recursive type through cereal's unique_ptr rule.
struct Node {
  int v = 0;
  std::unique_ptr<Node> next;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(v, next);
  }
};

// Everything at once, members of mproc's own rules (map, optional, tuple) included.
struct Order {
  Nvp header;
  Split split;
  Minimal price;
  Derived who;
  std::map<std::string, std::vector<Minimal>> book;
  std::optional<FreeSplit> note;
  std::tuple<int, Blob> extra;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(header), CEREAL_NVP(split), CEREAL_NVP(price), CEREAL_NVP(who), CEREAL_NVP(book),
       CEREAL_NVP(note), CEREAL_NVP(extra));
  }
};

}  // namespace cer

CEREAL_CLASS_VERSION(cer::Versioned, 3);
CEREAL_CLASS_VERSION(cer::VersionedSplit, 7);

namespace {

using namespace std::chrono_literals;
using namespace cer;

template <class T>
T round_trip(const T& v) {
  const std::vector<std::byte> bytes = mproc::to_bytes(v);
  EXPECT_EQ(mproc::encoded_size(v), bytes.size());
  return mproc::from_bytes<T>(bytes);
}

// The same value through cereal's own binary archive: the type compiles unchanged there.
template <class T>
T cereal_round_trip(const T& v) {
  std::stringstream ss;
  {
    cereal::BinaryOutputArchive out(ss);
    out(v);
  }
  T back{};
  cereal::BinaryInputArchive in(ss);
  in(back);
  return back;
}

Order sample_order() {
  Order o;
  o.header = {"order", {1, 2, 3}};
  o.split.x = -5;
  o.price.cents = 1234;
  o.who.b = "alice";
  o.who.d = 42;
  o.book = {{"bid", {{100}, {101}}}, {"ask", {}}};
  o.note = FreeSplit{"rush"};
  std::get<0>(o.extra) = 9;
  std::get<1>(o.extra).words = {0xdeadbeef, 7};
  return o;
}

void expect_same_order(const Order& a, const Order& b) {
  EXPECT_EQ(a.header, b.header);
  EXPECT_EQ(a.split, b.split);
  EXPECT_EQ(a.price, b.price);
  EXPECT_EQ(a.who.b, b.who.b);
  EXPECT_EQ(a.who.d, b.who.d);
  EXPECT_EQ(a.book, b.book);
  EXPECT_EQ(a.note, b.note);
  EXPECT_EQ(a.extra, b.extra);
}

// ---- every form --------------------------------------------------------------------------------

TEST(CerealAdapter, MemberSerializeWithNameValuePairsDropsTheNames) {
  const Nvp v{"symbol", {4, 5}};
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(cereal_round_trip(v), v);
  // The names are not sent: a count and 6 chars, a count and two ints.
  EXPECT_EQ(mproc::to_bytes(v).size(), 8u + 6 + 8 + 2 * sizeof(int));
}

TEST(CerealAdapter, NonMemberSerialize) {
  const FreeSerialize v{3, 2.5};
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(cereal_round_trip(v), v);
}

TEST(CerealAdapter, MemberSplitSaveLoadRunsTheUsersFunctions) {
  const Split v{17};
  EXPECT_EQ(round_trip(v), v);
  int stored = 0;
  const auto bytes = mproc::to_bytes(v);
  ASSERT_EQ(bytes.size(), sizeof(int));
  std::memcpy(&stored, bytes.data(), sizeof stored);
  EXPECT_EQ(stored, 1017) << "save() ran, not a bitwise copy";
  EXPECT_EQ(cereal_round_trip(v), v);
}

TEST(CerealAdapter, NonMemberSplitSaveLoad) {
  const FreeSplit v{"hello"};
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(mproc::to_bytes(v).size(), 8u + 6);  // "hello!"
  EXPECT_EQ(cereal_round_trip(v), v);
}

TEST(CerealAdapter, MemberAndNonMemberMinimal) {
  EXPECT_EQ(round_trip(Minimal{-77}), Minimal{-77});
  EXPECT_EQ(mproc::to_bytes(Minimal{-77}).size(), 8u + 3);  // the string "-77"
  EXPECT_EQ(cereal_round_trip(Minimal{-77}), Minimal{-77});
  EXPECT_EQ(round_trip(FreeMinimal{300}), FreeMinimal{300});
  EXPECT_EQ(mproc::to_bytes(FreeMinimal{300}).size(), sizeof(std::uint32_t));
  EXPECT_EQ(cereal_round_trip(FreeMinimal{300}), FreeMinimal{300});
}

TEST(CerealAdapter, VersionedFormsGetTheSendersVersion) {
  Versioned v;
  v.x = 5;
  const auto bytes = mproc::to_bytes(v);
  EXPECT_EQ(bytes.size(), sizeof(std::uint32_t) + sizeof(int));  // the version, then x
  std::uint32_t sent_version = 0;
  std::memcpy(&sent_version, bytes.data(), sizeof sent_version);
  EXPECT_EQ(sent_version, 3u);
  const Versioned back = mproc::from_bytes<Versioned>(bytes);
  EXPECT_EQ(back.x, 5);
  EXPECT_EQ(back.loaded_version, 3u);

  // A message from a sender whose build had version 2 of the type: the receiver's load sees 2.
  std::vector<std::byte> older = bytes;
  const std::uint32_t two = 2;
  std::memcpy(older.data(), &two, sizeof two);
  EXPECT_EQ(mproc::from_bytes<Versioned>(older).loaded_version, 2u);

  VersionedSplit s;
  s.x = 8;
  const VersionedSplit sb = round_trip(s);
  EXPECT_EQ(sb.x, 8);
  EXPECT_EQ(sb.loaded_version, 7u);
  EXPECT_EQ(cereal_round_trip(s).loaded_version, 7u);
}

TEST(CerealAdapter, VersionIsSentOncePerTypePerValue) {
  const std::vector<Versioned> many(3);
  // mproc's vector rule sends each element as a value of its own: count + 3 * (version + x).
  EXPECT_EQ(mproc::to_bytes(many).size(), 8u + 3 * (4 + sizeof(int)));
  const auto back = round_trip(many);
  ASSERT_EQ(back.size(), 3u);
  for (const auto& b : back) EXPECT_EQ(b.loaded_version, 3u);
}

TEST(CerealAdapter, BaseClass) {
  Derived v;
  v.b = "base part";
  v.d = 11;
  const Derived back = round_trip(v);
  EXPECT_EQ(back.b, "base part");
  EXPECT_EQ(back.d, 11);
  EXPECT_EQ(cereal_round_trip(v).b, "base part");
}

TEST(CerealAdapter, VirtualBaseIsArchivedOnce) {
  Diamond v;
  v.root = "shared";
  v.l = 1;
  v.r = 2;
  v.m = 3;
  const Diamond back = round_trip(v);
  EXPECT_EQ(back.root, "shared");
  EXPECT_EQ(back.l, 1);
  EXPECT_EQ(back.r, 2);
  EXPECT_EQ(back.m, 3);
  // root once (8 + 6), then l, r, m.
  EXPECT_EQ(mproc::to_bytes(v).size(), 8u + 6 + 3 * sizeof(int));
  EXPECT_EQ(cereal_round_trip(v).root, "shared");
}

TEST(CerealAdapter, BinaryDataAndSizeTag) {
  const Blob v{{1, 2, 3, 0xffffffff}};
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(mproc::to_bytes(v).size(), 8u + 4 * 4);
  EXPECT_EQ(round_trip(Blob{}), Blob{});
  EXPECT_EQ(cereal_round_trip(v), v);
}

TEST(CerealAdapter, SmartPointersThroughCerealsOwnRules) {
  Pointers v;
  v.owned = std::make_unique<Nvp>(Nvp{"inner", {9}});
  v.s1 = std::make_shared<std::string>("shared");
  v.s2 = v.s1;
  const Pointers back = round_trip(v);
  ASSERT_TRUE(back.owned);
  EXPECT_EQ(*back.owned, (Nvp{"inner", {9}}));
  EXPECT_FALSE(back.none);
  ASSERT_TRUE(back.s1);
  EXPECT_EQ(*back.s1, "shared");
  EXPECT_EQ(back.s1, back.s2) << "the sharing within one value is kept, as cereal keeps it";
}

TEST(CerealAdapter, OtherStandardTypesThroughCerealsOwnRules) {
  CerealStd v;
  v.va = {1.5, 2.5};
  v.fl = {"a", "bc"};
  const CerealStd back = round_trip(v);
  ASSERT_EQ(back.va.size(), 2u);
  EXPECT_EQ(back.va[1], 2.5);
  EXPECT_EQ(back.fl, (std::forward_list<std::string>{"a", "bc"}));
}

TEST(CerealAdapter, EmptyTypeIsOneZeroByte) {
  EXPECT_EQ(mproc::to_bytes(Empty{}), std::vector<std::byte>{std::byte{0}});
  (void)round_trip(Empty{});
  EXPECT_EQ(mproc::to_bytes(std::vector<Empty>(3)).size(), 8u + 3);
  const std::vector<std::byte> bad{std::byte{1}};
  EXPECT_THROW((void)mproc::from_bytes<Empty>(bad), mproc::DecodeError);
}

TEST(CerealAdapter, RecursiveTypeThroughUniquePtr) {
  Node head;
  Node* tail = &head;
  for (int i = 1; i <= 50; ++i) {
    tail->next = std::make_unique<Node>();
    tail = tail->next.get();
    tail->v = i;
  }
  const Node back = round_trip(head);
  int n = 0;
  for (const Node* p = back.next.get(); p; p = p->next.get()) EXPECT_EQ(p->v, ++n);
  EXPECT_EQ(n, 50);
}

TEST(CerealAdapter, EverythingNestedWithMprocsOwnRules) {
  const Order o = sample_order();
  expect_same_order(round_trip(o), o);
  expect_same_order(cereal_round_trip(o), o);
  const std::vector<Order> many{o, Order{}, o};
  const auto back = round_trip(many);
  ASSERT_EQ(back.size(), 3u);
  expect_same_order(back[2], o);
}

// ---- each value starts from a fresh archive
// ------------------------------------------------------ A thread reuses its archive for the next
// value only while cereal's bookkeeping in it is unused: a value with shared pointers, a version or
// a virtual base must encode (and decode) the same way the second time as the first.

TEST(CerealAdapter, EachValueStartsFromFreshBookkeeping) {
  Pointers p;
  p.s1 = std::make_shared<std::string>("x");
  p.s2 = p.s1;
  const auto first = mproc::to_bytes(p);
  EXPECT_EQ(mproc::to_bytes(p), first) << "pointer ids restart with each value";
  for (int i = 0; i < 3; ++i) {
    const Pointers back = mproc::from_bytes<Pointers>(first);
    ASSERT_TRUE(back.s1);
    EXPECT_EQ(*back.s1, "x");
    EXPECT_EQ(back.s1, back.s2);
  }

  const auto v1 = mproc::to_bytes(Versioned{1, 0});
  EXPECT_EQ(mproc::to_bytes(Versioned{1, 0}), v1) << "the version is sent with every value";
  EXPECT_EQ(mproc::from_bytes<Versioned>(v1).loaded_version, 3u);
  EXPECT_EQ(mproc::from_bytes<Versioned>(v1).loaded_version, 3u);

  Diamond d;
  d.root = "r";
  const auto d1 = mproc::to_bytes(d);
  EXPECT_EQ(mproc::to_bytes(d), d1) << "the virtual base is sent with every value";
  EXPECT_EQ(mproc::from_bytes<Diamond>(d1).root, "r");
  EXPECT_EQ(mproc::from_bytes<Diamond>(d1).root, "r");
}

struct ThrowsOnSave {
  bool fail = false;
  Versioned inner;
  template <class Archive>
  void save(Archive& ar) const {
    ar(inner);
    if (fail) throw std::runtime_error("save failed");
    ar(fail);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(inner, fail);
  }
};

TEST(CerealAdapter, AnArchiveLeftByAnExceptionIsNotReused) {
  ThrowsOnSave bad;
  bad.fail = true;
  EXPECT_THROW((void)mproc::to_bytes(bad), std::runtime_error);
  const ThrowsOnSave good{};
  const auto bytes = mproc::to_bytes(good);
  EXPECT_EQ(bytes.size(), 4u + sizeof(int) + 1) << "version, x, flag";
  EXPECT_EQ(mproc::from_bytes<ThrowsOnSave>(bytes).inner.loaded_version, 3u);
  // A decode cut short, then a whole one.
  EXPECT_THROW((void)mproc::from_bytes<ThrowsOnSave>(std::span(bytes).first(5)),
               mproc::DecodeError);
  EXPECT_EQ(mproc::from_bytes<ThrowsOnSave>(bytes).inner.loaded_version, 3u);
}

TEST(CerealAdapter, ValuesInsideValuesGetArchivesOfTheirOwn) {
  // An Order holds cereal types inside mproc's rules (a map of vectors of Minimal), each encoded
  // while the Order's archive is in use.
  const Order o = sample_order();
  const auto bytes = mproc::to_bytes(o);
  EXPECT_EQ(mproc::to_bytes(o), bytes);
  expect_same_order(mproc::from_bytes<Order>(bytes), o);
  expect_same_order(mproc::from_bytes<Order>(bytes), o);
}

// ---- through the four pillars ------------------------------------------------------------------

TEST(CerealAdapter, ThroughAQueueBetweenProcesses) {
  adapter_checks::expect_through_queue(std::vector<Nvp>{{"a", {1}}, {"", {}}, {"c", {1, 2, 3}}},
                                       [](const Nvp& a, const Nvp& b) { return a == b; });
  mproc::Queue<Order> q;
  const Order o = sample_order();
  mproc_test::Child producer([&] {
    q.put(o, 30s);
    return 0;
  });
  expect_same_order(q.get(30s), o);
  EXPECT_EQ(producer.wait(30s), 0);
}

TEST(CerealAdapter, LargeValueStreamsThroughASmallQueueRing) {
  Nvp big{std::string(3 << 20, 'x'), std::vector<int>(1 << 18, 7)};
  mproc::QueueOptions opts;
  opts.capacity = 1 << 16;
  adapter_checks::expect_through_queue(
      std::vector<Nvp>{big, {"small", {1}}, big}, [](const Nvp& a, const Nvp& b) { return a == b; },
      opts);
}

TEST(CerealAdapter, ThroughAPipe) {
  adapter_checks::expect_through_pipe(std::vector<Split>{{1}, {-2}, {1 << 30}},
                                      [](const Split& a, const Split& b) { return a == b; });
}

TEST(CerealAdapter, AsAProcessArgument) {
  adapter_checks::expect_as_process_argument(
      FreeSplit{"argument"}, [](const FreeSplit& a, const FreeSplit& b) { return a == b; });
}

Nvp scale(Nvp v) {
  for (int& x : v.values) x *= 10;
  v.name += "*10";
  return v;
}

TEST(CerealAdapter, ThroughAPoolAsArgumentsAndResults) {
  mproc::Pool pool(2);
  std::vector<Nvp> in;
  for (int i = 0; i < 20; ++i) in.push_back({"n" + std::to_string(i), {i, i + 1}});
  const std::vector<Nvp> out = pool.map(scale, in);
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], scale(in[i]));
  const Versioned v = pool.apply(
      [](Versioned x) {
        x.x += 1;
        return x;
      },
      Versioned{41, 0});
  EXPECT_EQ(v.x, 42);
  EXPECT_EQ(v.loaded_version, 3u);
}

// ---- hostile bytes -----------------------------------------------------------------------------

TEST(CerealAdapter, TruncatedBytesThrowDecodeError) {
  const auto bytes = mproc::to_bytes(sample_order());
  for (std::size_t cut = 0; cut < bytes.size(); cut += 3)
    EXPECT_THROW((void)mproc::from_bytes<Order>(std::span(bytes).first(cut)), mproc::DecodeError)
        << "cut at " << cut;
}

TEST(CerealAdapter, SizeTagLargerThanTheMessageIsRejectedBeforeAllocating) {
  std::vector<std::byte> bytes = mproc::to_bytes(Blob{{1, 2}});
  for (std::uint64_t n : {std::uint64_t{1} << 40, ~std::uint64_t{0}, std::uint64_t{9}}) {
    std::memcpy(bytes.data(), &n, sizeof n);
    try {
      (void)mproc::from_bytes<Blob>(bytes);
      ADD_FAILURE() << "a size tag of " << n << " decoded";
    } catch (const mproc::DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find("exceeds the bytes that remain"), std::string::npos)
          << e.what();
    }
  }
}

TEST(CerealAdapter, CerealsOwnLoadErrorsBecomeDecodeError) {
  Pointers v;
  v.s1 = std::make_shared<std::string>("x");
  v.s2 = v.s1;
  std::vector<std::byte> bytes = mproc::to_bytes(v);
  // Layout: owned (flag 0), none (flag 0), s1: id with the top bit (new) + data, s2: id 1 (seen).
  // Make s2 name an id never sent.
  const std::size_t s2_id = bytes.size() - sizeof(std::uint32_t);
  std::uint32_t id = 0;
  std::memcpy(&id, bytes.data() + s2_id, sizeof id);
  ASSERT_EQ(id, 1u);
  id = 5;
  std::memcpy(bytes.data() + s2_id, &id, sizeof id);
  try {
    (void)mproc::from_bytes<Pointers>(bytes);
    ADD_FAILURE() << "an unknown shared pointer id decoded";
  } catch (const mproc::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("(cereal)"), std::string::npos) << e.what();
  }
}

TEST(CerealAdapter, GarbageNeverCrashes) {
  std::vector<std::byte> noise(256);
  std::uint32_t x = 12345;
  for (int round = 0; round < 200; ++round) {
    for (auto& b : noise) {
      x = x * 1664525u + 1013904223u;
      b = std::byte(x >> 24);
    }
    const std::size_t n = x % noise.size();
    for (std::size_t len : {n, noise.size()}) {
      try {
        (void)mproc::from_bytes<Order>(std::span(noise).first(len));
      } catch (const mproc::DecodeError&) {
      }
    }
  }
}

}  // namespace
