// The types the custom-codec fuzzer decodes: the example's third-party types with their
// `mproc::codec` specialisations (examples/custom_codec.hpp), alone and inside containers, and one
// sample value of each (its seed corpus, tests/fuzz/custom_corpus). Shared by
// custom_codec_fuzz.cpp, codec_fuzz_seeds.cpp and tests/unit/codec_fuzz_harness_test.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <mproc/codec.hpp>
#include <mproc/codec/map.hpp>
#include <mproc/testing/codec_fuzz.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "../../examples/custom_codec.hpp"

namespace custom_codec_fuzz {

using Square = std::vector<geo::Point<std::int32_t>>;

// The numbers are those of the committed seeds (tests/fuzz/custom_corpus/seed-N): append, do not
// reorder.
using Types = mproc::testing::codec_fuzz_types<
    money::Decimal,                                                               // 0
    geo::Polygon<double>,                                                         // 1
    geo::Polygon<std::int32_t>,                                                   // 2
    std::vector<money::Decimal>,                                                  // 3
    std::optional<geo::Polygon<float>>,                                           // 4
    std::vector<geo::Polygon<std::int16_t>>,                                      // 5
    mproc::testing::by_value<std::map<std::string, geo::Polygon<std::int64_t>>>,  // 6
    std::pair<money::Decimal, geo::Polygon<std::uint8_t>>>;                       // 7

inline constexpr unsigned kTypes = Types::size;

// One sample value of each type (the seed corpus), in any order: each seed's number is its type's.
inline auto samples() {
  using geo::Point;
  return std::make_tuple(
      money::Decimal(-12345, 2), geo::Polygon<double>("tri", {{0, 0}, {1.5, 0}, {0, 2.5}}),
      geo::Polygon<std::int32_t>("square", Square{{0, 0}, {2, 0}, {2, 2}, {0, 2}}),
      std::vector<money::Decimal>{money::Decimal(1, 0), money::Decimal(250, 2)},
      std::optional<geo::Polygon<float>>(geo::Polygon<float>("f", {{0, 0}, {1, 0}, {1, 1}})),
      std::vector<geo::Polygon<std::int16_t>>{
          geo::Polygon<std::int16_t>("a", {{0, 0}, {1, 0}, {0, 1}}),
          geo::Polygon<std::int16_t>("", {{0, 0}, {3, 0}, {3, 3}, {0, 3}})},
      std::map<std::string, geo::Polygon<std::int64_t>>{
          {"k", geo::Polygon<std::int64_t>("k", {{0, 0}, {5, 0}, {0, 5}})}},
      std::pair<money::Decimal, geo::Polygon<std::uint8_t>>{
          money::Decimal(7, 18), geo::Polygon<std::uint8_t>("u8", {{0, 0}, {9, 0}, {0, 9}})});
}

}  // namespace custom_codec_fuzz
