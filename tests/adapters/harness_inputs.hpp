// adapters/harness_inputs.hpp — the codec fuzz harness (<mproc/testing/codec_fuzz.hpp>) run as a
// unit test over an adapter's decoder, on damaged variants of a valid encoding: every prefix,
// every byte set to 0, to 0xff, inverted and with its low bit flipped, and a byte appended.
//
// The formats of the libraries have several encodings of one value (a varint or a MessagePack
// integer in more bytes than needed, a float64 holding a float32), so their types are checked as
// `by_value<T>`: a decoded value re-encodes, perhaps shorter than the frame it came from, to bytes
// that decode to an equal value.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <mproc/codec.hpp>
#include <mproc/testing/codec_fuzz.hpp>
#include <optional>
#include <string>
#include <vector>

namespace adapter_checks {

inline std::vector<std::vector<std::byte>> damaged_variants(const std::vector<std::byte>& good) {
  std::vector<std::vector<std::byte>> out;
  out.push_back(good);
  for (std::size_t n = 0; n < good.size(); ++n)
    out.emplace_back(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (std::byte b : {std::byte{0}, std::byte{0xff}, ~good[i], good[i] ^ std::byte{1}}) {
      std::vector<std::byte> v = good;
      v[i] = b;
      out.push_back(std::move(v));
    }
  }
  std::vector<std::byte> longer = good;
  longer.push_back(std::byte{0});
  out.push_back(longer);
  return out;
}

// Runs the harness (by value) over every damaged variant of `seed`'s encoding, through windows of
// 1, 7 and 4096 bytes: no finding.
template <class T>
void expect_harness_finds_nothing(const T& seed) {
  for (const auto& input : damaged_variants(mproc::to_bytes(seed))) {
    for (std::size_t window : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
      const std::optional<std::string> finding =
          mproc::testing::check_codec_input<mproc::testing::by_value<T>>(input, {.window = window});
      EXPECT_FALSE(finding.has_value()) << *finding;
    }
  }
}

}  // namespace adapter_checks
