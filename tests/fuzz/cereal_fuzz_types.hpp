// The types the cereal fuzzer decodes: types written for cereal, in its forms (name-value pairs,
// split save/load, minimal, versioning, base_class, virtual_base_class, cereal's own smart pointer
// rules), sent through <mproc/codec/cereal.hpp>, alone and inside
// mproc's containers; and one sample value of each (the seed corpus, tests/fuzz/cereal_corpus).
// Shared by cereal_fuzz.cpp, codec_fuzz_seeds.cpp (--cereal) and
// tests/adapters/cereal_harness_test.cpp. Not here: binary_data behind a size tag, as a user's
// load that resizes to the tag writes it (cereal_adapter_test's Blob): such a load allocates for
// the bytes a streamed message announces (<mproc/codec/cereal.hpp>, "Decoding untrusted bytes"),
// which the harness reports by design.
#pragma once

// clang-format off
#include <cereal/types/base_class.hpp>
#include <cereal/types/memory.hpp>
#include <mproc/codec/cereal.hpp>
// clang-format on

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mproc/testing/codec_fuzz.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace cereal_fuzz {

struct Named {
  std::string name;
  std::vector<std::int32_t> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), cereal::make_nvp("values", values));
  }
  bool operator==(const Named&) const = default;
};

struct Offset {  // split save/load that transform the value (unsigned: no overflow)
  std::uint32_t x = 0;
  template <class Archive>
  void save(Archive& ar) const {
    ar(x + 1000u);
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t stored = 0;
    ar(stored);
    x = stored - 1000u;
  }
  bool operator==(const Offset&) const = default;
};

struct Halved {  // a minimal form that is not one to one: compared by value
  std::uint16_t code = 0;
  template <class Archive>
  std::uint32_t save_minimal(const Archive&) const {
    return code * 2u;
  }
  template <class Archive>
  void load_minimal(const Archive&, const std::uint32_t& v) {
    code = static_cast<std::uint16_t>(v / 2);
  }
  bool operator==(const Halved&) const = default;
};

struct Versioned {  // any version decodes; the re-encoding sends this build's: compared by value
  std::int64_t x = 0;
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t) {
    ar(x);
  }
  bool operator==(const Versioned&) const = default;
};

struct Root {
  std::array<char, 8> root{};  // trivially movable (a virtual base's move is its derived classes')
  template <class Archive>
  void serialize(Archive& ar) {
    ar(root);
  }
};
struct Left : virtual Root {
  std::int8_t l = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::virtual_base_class<Root>(this), l);
  }
};
struct Right : virtual Root {
  double r = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::virtual_base_class<Root>(this), r);
  }
};
struct Diamond : Left, Right {
  std::optional<Named> extra;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::base_class<Left>(this), cereal::base_class<Right>(this), extra);
  }
  bool operator==(const Diamond& o) const {
    return root == o.root && l == o.l && r == o.r && extra == o.extra;
  }
};

struct Pointers {  // cereal's rules: any nonzero "valid" byte is valid, so compared by value
  std::unique_ptr<Named> owned;
  std::shared_ptr<std::string> a;
  std::shared_ptr<std::string> b;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(owned, a, b);
  }
  bool operator==(const Pointers& o) const {
    auto same = [](const auto& p, const auto& q) { return (!p && !q) || (p && q && *p == *q); };
    return same(owned, o.owned) && same(a, o.a) && same(b, o.b) && (a == b) == (o.a == o.b);
  }
};

// The numbers are those of the committed seeds (tests/fuzz/cereal_corpus/seed-N): append, do not
// reorder.
using Types = mproc::testing::codec_fuzz_types<
    Named,                                                                       // 0
    Offset,                                                                      // 1
    mproc::testing::by_value<Halved>,                                            // 2
    mproc::testing::by_value<Versioned>,                                         // 3
    Diamond,                                                                     // 4
    std::vector<Offset>,                                                         // 5
    mproc::testing::by_value<Pointers>,                                          // 6
    std::vector<Named>,                                                          // 7
    mproc::testing::by_value<std::map<std::string, std::tuple<Offset, Named>>>,  // 8 (key order)
    mproc::testing::by_value<std::pair<std::vector<Halved>, Named>>>;            // 9

inline constexpr unsigned kTypes = Types::size;

inline Diamond sample_diamond() {
  Diamond d;
  d.root = {'r', 'o', 'o', 't'};
  d.l = -3;
  d.r = 2.5;
  d.extra = Named{"x", {1}};
  return d;
}

inline Pointers sample_pointers() {
  Pointers p;
  p.owned = std::make_unique<Named>(Named{"owned", {7, 8}});
  p.a = std::make_shared<std::string>("shared");
  p.b = p.a;
  return p;
}

// One sample value of each type (the seed corpus): each seed's number is its type's.
inline auto samples() {
  return std::make_tuple(
      Named{"name", {1, -2, 3}}, Offset{5}, Halved{21}, Versioned{-9}, sample_diamond(),
      std::vector<Offset>{Offset{1}, Offset{0xffffffff}}, sample_pointers(),
      std::vector<Named>{Named{"a", {}}, Named{"", {4}}},
      std::map<std::string, std::tuple<Offset, Named>>{{"k", {Offset{1}, Named{"v", {9}}}}},
      std::pair<std::vector<Halved>, Named>{{Halved{1}, Halved{2}}, Named{"p", {}}});
}

}  // namespace cereal_fuzz
