// The types the codec fuzzer decodes, chosen by the first byte of each input, and one sample value
// of each (the seed corpus). Shared by codec_fuzz.cpp and codec_fuzz_seeds.cpp.
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

// Whether re-encoding a decoded value reproduces the input bytes exactly (false where a container
// may iterate in another order than the bytes listed its elements).
template <class T>
struct Case {
  using type = T;
  bool canonical;
};

using Cell = std::optional<std::variant<int, std::string>>;

// Calls `f(Case<T>{...}, sample)` for the type numbered `index % kTypes`.
inline constexpr unsigned kTypes = 18;

template <class F>
void with_type(unsigned index, F&& f) {
  using namespace std::chrono_literals;
  switch (index % kTypes) {
    case 0:
      return f(Case<bool>{true}, true);
    case 1:
      return f(Case<std::string>{true}, std::string("hello"));
    case 2:
      return f(Case<std::vector<std::uint32_t>>{true}, std::vector<std::uint32_t>{1, 2, 3});
    case 3:
      return f(Case<std::vector<bool>>{true}, std::vector<bool>{true, false, true});
    case 4:
      return f(Case<std::optional<std::variant<std::int32_t, std::string, std::monostate>>>{true},
               std::optional<std::variant<std::int32_t, std::string, std::monostate>>("v"));
    case 5:
      return f(Case<std::map<std::string, std::vector<Cell>>>{false},
               std::map<std::string, std::vector<Cell>>{{"a", {Cell{}, Cell{1}}}, {"b", {}}});
    case 6:
      return f(Case<std::unordered_map<std::int32_t, std::set<std::string>>>{false},
               std::unordered_map<std::int32_t, std::set<std::string>>{{1, {"x", "y"}}});
    case 7: {
      using T = std::tuple<std::int8_t, std::pair<std::string, double>,
                           std::array<std::uint16_t, 3>, std::deque<std::list<char>>>;
      return f(Case<T>{true}, T{-1, {"pi", 3.14}, {1, 2, 3}, {{'a', 'b'}, {}}});
    }
    case 8:
      return f(Case<Order>{true}, Order{"ACME", {1.5}, 7, {}, {"t", ""}, {1, 2}});
    case 9: {
      using T = std::tuple<std::chrono::nanoseconds, std::chrono::system_clock::time_point,
                           std::chrono::steady_clock::time_point, std::tuple<>>;
      return f(Case<T>{true}, T{5ns, {}, {}, {}});
    }
    case 10: {
      using T =
          std::variant<std::monostate, bool, char, std::vector<Point>,
                       std::unordered_set<std::int64_t>, std::tuple<>, std::array<std::string, 2>>;
      return f(Case<T>{false}, T{std::vector<Point>{{1, 2}}});
    }
    case 11:
      return f(Case<std::list<std::multimap<std::int16_t, std::string>>>{false},
               std::list<std::multimap<std::int16_t, std::string>>{{{1, "a"}, {1, "b"}}});
    case 12:
      return f(Case<std::vector<Tree>>{true}, std::vector<Tree>{Tree{1, {Tree{2, {}}}}});
    case 13:
      return f(Case<std::unordered_multiset<std::string>>{false},
               std::unordered_multiset<std::string>{"a", "a", "b"});
    case 14: {
      using T = std::vector<std::optional<std::array<char, 512>>>;
      return f(Case<T>{true}, T{std::nullopt, std::array<char, 512>{'x'}});
    }
    case 15:
      return f(Case<std::pair<Color, std::u16string>>{true},
               std::pair<Color, std::u16string>{Color::blue, u"\u00e9"});
    case 16:
      return f(Case<std::vector<std::vector<std::monostate>>>{true},
               std::vector<std::vector<std::monostate>>{{{}, {}}, {}});
    case 17:
      return f(Case<std::map<std::int16_t, std::int64_t>>{false},
               std::map<std::int16_t, std::int64_t>{{-1, 10}, {7, -70}});
  }
}

}  // namespace codec_fuzz
