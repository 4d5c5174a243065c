// The types the codec fuzzer decodes, chosen by the first byte of each input, and one sample value
// of each (the seed corpus). Shared by codec_fuzz.cpp, codec_fuzz_seeds.cpp and
// tests/unit/codec_fuzz_harness_test.cpp.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <mproc/codec.hpp>
#include <mproc/codec/deque.hpp>
#include <mproc/codec/list.hpp>
#include <mproc/codec/map.hpp>
#include <mproc/codec/set.hpp>
#include <mproc/codec/unordered_map.hpp>
#include <mproc/codec/unordered_set.hpp>
#include <mproc/codec/variant.hpp>
#include <mproc/testing/codec_fuzz.hpp>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace codec_fuzz {

struct Point {
  std::int32_t x;
  std::int32_t y;
  bool operator==(const Point&) const = default;
};

enum class Color : std::uint8_t { red, green, blue };

struct Nothing {
  template <class Archive>
  void serialize(Archive&) {}
  bool operator==(const Nothing&) const = default;
};

struct Order {
  std::string symbol;
  std::vector<double> prices;
  std::optional<int> limit;
  Nothing nothing;
  std::array<std::string, 2> tags;
  int pair[2] = {};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(symbol, prices, limit, nothing, tags, pair);
  }
  bool operator==(const Order&) const = default;
};

struct Tree {
  int value = 0;
  std::vector<Tree> children;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value, children);
  }
  bool operator==(const Tree&) const = default;
};

using Cell = std::optional<std::variant<int, std::string>>;

// Types listed as by_value<T>: re-encoding a decoded value need not reproduce the input bytes (a
// container may iterate in another order than the bytes listed its elements); values are compared.
template <class T>
using by_value = mproc::testing::by_value<T>;

using Tuple7 = std::tuple<std::int8_t, std::pair<std::string, double>, std::array<std::uint16_t, 3>,
                          std::deque<std::list<char>>>;
using Chrono9 = std::tuple<std::chrono::nanoseconds, std::chrono::system_clock::time_point,
                           std::chrono::steady_clock::time_point, std::tuple<>>;
using Variant10 =
    std::variant<std::monostate, bool, char, std::vector<Point>, std::unordered_set<std::int64_t>,
                 std::tuple<>, std::array<std::string, 2>>;

// The fuzzed types; the first byte of an input picks one (its value modulo kTypes) and the window
// size. The numbers are those of the committed seeds (tests/fuzz/corpus/seed-N): append, do not
// reorder.
using Types = mproc::testing::codec_fuzz_types<
    bool,                                                                    // 0
    std::string,                                                             // 1
    std::vector<std::uint32_t>,                                              // 2
    std::vector<bool>,                                                       // 3
    std::optional<std::variant<std::int32_t, std::string, std::monostate>>,  // 4
    by_value<std::map<std::string, std::vector<Cell>>>,                      // 5
    by_value<std::unordered_map<std::int32_t, std::set<std::string>>>,       // 6
    Tuple7,                                                                  // 7
    Order,                                                                   // 8
    Chrono9,                                                                 // 9
    by_value<Variant10>,                                                     // 10
    by_value<std::list<std::multimap<std::int16_t, std::string>>>,           // 11
    std::vector<Tree>,                                                       // 12
    by_value<std::unordered_multiset<std::string>>,                          // 13
    std::vector<std::optional<std::array<char, 512>>>,                       // 14
    std::pair<Color, std::u16string>,                                        // 15
    std::vector<std::vector<std::monostate>>,                                // 16
    by_value<std::map<std::int16_t, std::int64_t>>>;                         // 17

inline constexpr unsigned kTypes = Types::size;
static_assert(kTypes == 18, "tests/fuzz/corpus numbers the types 0 to 17");

// One sample value of each type (the seed corpus), in any order: each seed's number is its type's.
inline auto samples() {
  using namespace std::chrono_literals;
  return std::make_tuple(
      true, std::string("hello"), std::vector<std::uint32_t>{1, 2, 3},
      std::vector<bool>{true, false, true},
      std::optional<std::variant<std::int32_t, std::string, std::monostate>>("v"),
      std::map<std::string, std::vector<Cell>>{{"a", {Cell{}, Cell{1}}}, {"b", {}}},
      std::unordered_map<std::int32_t, std::set<std::string>>{{1, {"x", "y"}}},
      Tuple7{-1, {"pi", 3.14}, {1, 2, 3}, {{'a', 'b'}, {}}},
      Order{"ACME", {1.5}, 7, {}, {"t", ""}, {1, 2}}, Chrono9{5ns, {}, {}, {}},
      Variant10{std::vector<Point>{{1, 2}}},
      std::list<std::multimap<std::int16_t, std::string>>{{{1, "a"}, {1, "b"}}},
      std::vector<Tree>{Tree{1, {Tree{2, {}}}}},
      std::unordered_multiset<std::string>{"a", "a", "b"},
      std::vector<std::optional<std::array<char, 512>>>{std::nullopt, std::array<char, 512>{'x'}},
      std::pair<Color, std::u16string>{Color::blue, u"\u00e9"},
      std::vector<std::vector<std::monostate>>{{{}, {}}, {}},
      std::map<std::int16_t, std::int64_t>{{-1, 10}, {7, -70}});
}

}  // namespace codec_fuzz
