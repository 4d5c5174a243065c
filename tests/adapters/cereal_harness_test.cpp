// The codec fuzz harness (<mproc/testing/codec_fuzz.hpp>) without libFuzzer over types written for
// cereal (tests/fuzz/cereal_fuzz_types.hpp, the cereal_fuzz target's types): the seed corpus, every
// damaged variant of each seed (every prefix, every byte set to 0, 0xff, inverted, its low bit
// flipped, a byte appended) through windows of 1, 7 and 4096 bytes, and generated inputs.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mproc/testing/codec_fuzz.hpp>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "../fuzz/cereal_fuzz_types.hpp"
#include "adapters/harness_inputs.hpp"

namespace {

using Types = cereal_fuzz::Types;

std::vector<std::uint8_t> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return std::vector<std::uint8_t>(chars.begin(), chars.end());
}

TEST(CerealHarness, CommittedSeedsAreTheSamplesAndRaiseNoFinding) {
  const std::filesystem::path dir =
      std::filesystem::path(MPROC_TEST_SOURCE_DIR) / "../fuzz/cereal_corpus";
  std::size_t seen = 0;
  std::apply(
      [&](const auto&... sample) {
        unsigned index = 0;
        (
            [&] {
              const auto expected = mproc::testing::codec_fuzz_seed<Types>(sample);
              const auto committed = read_file(dir / ("seed-" + std::to_string(index)));
              EXPECT_EQ(committed, expected)
                  << "seed-" << index << " differs: regenerate with codec_fuzz_seeds --cereal";
              const std::optional<std::string> f = mproc::testing::check_codec_fuzz_input<Types>(
                  std::as_bytes(std::span(committed)));
              EXPECT_FALSE(f.has_value()) << "seed-" << index << ": " << f.value_or("");
              ++index;
              ++seen;
            }(),
            ...);
      },
      cereal_fuzz::samples());
  EXPECT_EQ(seen, cereal_fuzz::kTypes);
}

TEST(CerealHarness, DamagedVariantsOfEachSampleRaiseNoFinding) {
  std::apply(
      [](const auto&... sample) {
        (
            [&] {
              for (const auto& input : adapter_checks::damaged_variants(mproc::to_bytes(sample))) {
                for (std::size_t window : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
                  using T = std::remove_cvref_t<decltype(sample)>;
                  const std::optional<std::string> f =
                      mproc::testing::check_codec_input<mproc::testing::by_value<T>>(
                          input, {.window = window});
                  EXPECT_FALSE(f.has_value()) << f.value_or("");
                }
              }
            }(),
            ...);
      },
      cereal_fuzz::samples());
}

TEST(CerealHarness, GeneratedInputsRaiseNoFinding) {
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  std::vector<std::byte> input;
  for (int i = 0; i < 3000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    input.resize(x % 96);
    std::uint64_t y = x;
    for (auto& b : input) {
      y = y * 6364136223846793005ull + 1442695040888963407ull;
      b = std::byte(y >> 56);
    }
    if (!input.empty()) input[0] = std::byte(i % (cereal_fuzz::kTypes * 8));
    const std::optional<std::string> f = mproc::testing::check_codec_fuzz_input<Types>(input);
    ASSERT_FALSE(f.has_value()) << "input " << i << ": " << *f;
  }
}

}  // namespace
