// mproc/testing/codec_fuzz.hpp without libFuzzer: the fuzz targets' seed corpora, mutations of
// them and generated inputs raise no finding for the built-in codec and the example's codecs
// (examples/custom_codec.hpp); deliberately broken codecs are each reported, by the property they
// break, from the check functions (which return the finding) and from a fuzz target's entry point
// (which aborts with it).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mproc/testing/codec_fuzz.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../fuzz/codec_fuzz_types.hpp"
#include "../fuzz/custom_codec_fuzz_types.hpp"

namespace {

using mproc::testing::check_codec_fuzz_input;
using mproc::testing::check_codec_input;
using mproc::testing::check_codec_value;
using mproc::testing::codec_fuzz_types;

// ---- deliberately broken codecs ---------------------------------------------------------------

// size() says one byte more than encode() writes.
struct SizeOffByOne {
  std::int32_t v = 0;
};
// decode() reads one byte more than encode() wrote.
struct ReadsPastEncoding {
  std::int32_t v = 0;
};
// decode() throws std::runtime_error, not mproc::DecodeError, on a flag byte other than 0 or 1.
struct ThrowsRuntimeError {
  bool flag = false;
};
// min_size says 8 bytes, values take 4.
struct MinSizeTooLarge {
  std::int32_t v = 0;
};
// bitwise is set, but decode() rejects negative values.
struct BitwiseButValidates {
  std::int32_t v = 0;
};
// Reserves memory for the count it read once the count passes check_count, trusting remaining()
// (what a streamed message's sender announced) instead of buffered() (what arrived).
struct ReservesByAnnouncedLength {
  std::vector<char> bytes;
};

}  // namespace

template <>
struct mproc::codec<SizeOffByOne> {
  static std::size_t size(const SizeOffByOne&) { return 5; }
  static void encode(Writer& w, const SizeOffByOne& x) { w.write_value(x.v); }
  static SizeOffByOne decode(Reader& r) { return {r.read_value<std::int32_t>()}; }
};

template <>
struct mproc::codec<ReadsPastEncoding> {
  static std::size_t size(const ReadsPastEncoding&) { return 4; }
  static void encode(Writer& w, const ReadsPastEncoding& x) { w.write_value(x.v); }
  static ReadsPastEncoding decode(Reader& r) {
    const auto v = r.read_value<std::int32_t>();
    (void)r.read_value<std::uint8_t>();
    return {v};
  }
};

template <>
struct mproc::codec<ThrowsRuntimeError> {
  static std::size_t size(const ThrowsRuntimeError&) { return 1; }
  static void encode(Writer& w, const ThrowsRuntimeError& x) {
    w.write_value(static_cast<std::uint8_t>(x.flag));
  }
  static ThrowsRuntimeError decode(Reader& r) {
    const auto b = r.read_value<std::uint8_t>();
    if (b > 1) throw std::runtime_error("flag is neither 0 nor 1");
    return {b == 1};
  }
};

template <>
struct mproc::codec<MinSizeTooLarge> {
  static constexpr std::size_t min_size = 8;
  static std::size_t size(const MinSizeTooLarge&) { return 4; }
  static void encode(Writer& w, const MinSizeTooLarge& x) { w.write_value(x.v); }
  static MinSizeTooLarge decode(Reader& r) { return {r.read_value<std::int32_t>()}; }
};

template <>
struct mproc::codec<BitwiseButValidates> {
  static constexpr bool bitwise = true;
  static constexpr std::size_t min_size = 4;
  static std::size_t size(const BitwiseButValidates&) { return 4; }
  static void encode(Writer& w, const BitwiseButValidates& x) { w.write_value(x.v); }
  static BitwiseButValidates decode(Reader& r) {
    const auto v = r.read_value<std::int32_t>();
    if (v < 0) throw DecodeError("negative");
    return {v};
  }
};

template <>
struct mproc::codec<ReservesByAnnouncedLength> {
  static std::size_t size(const ReservesByAnnouncedLength& x) { return 8 + x.bytes.size(); }
  static void encode(Writer& w, const ReservesByAnnouncedLength& x) {
    w.write_value(static_cast<std::uint64_t>(x.bytes.size()));
    w.write(x.bytes.data(), x.bytes.size());
  }
  static ReservesByAnnouncedLength decode(Reader& r) {
    const auto n = r.read_value<std::uint64_t>();
    r.check_count(n, 1);
    ReservesByAnnouncedLength x;
    x.bytes.reserve(static_cast<std::size_t>(n / 4096));  // the bug: sized by remaining()
    for (std::uint64_t i = 0; i < n; ++i) x.bytes.push_back(r.read_value<char>());
    return x;
  }
};

// A fuzz target defined by the macro (here without libFuzzer: an ordinary function), with a
// template argument list holding a comma.
MPROC_CODEC_FUZZ_TARGET(std::int32_t, std::pair<std::int32_t, std::string>, ThrowsRuntimeError)

namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::vector<std::byte>> read_corpus(const std::string& dir) {
  std::vector<std::vector<std::byte>> inputs;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> bytes(chars.size());
    for (std::size_t i = 0; i < chars.size(); ++i) bytes[i] = static_cast<std::byte>(chars[i]);
    inputs.push_back(std::move(bytes));
  }
  return inputs;
}

// Each seed with each window size, cut at every length, with each byte changed (two ways), and
// with bytes appended: the inputs a fuzzer tries first.
std::vector<std::vector<std::byte>> mutations(const std::vector<std::byte>& seed, unsigned types) {
  std::vector<std::vector<std::byte>> out;
  for (unsigned k = 0; k < 8; ++k) {
    std::vector<std::byte> in = seed;
    in[0] = static_cast<std::byte>(static_cast<unsigned>(seed[0]) % types + k * types);
    out.push_back(in);
  }
  for (std::size_t n = 1; n < seed.size(); ++n) out.emplace_back(seed.begin(), seed.begin() + n);
  for (std::size_t i = 1; i < seed.size(); ++i) {
    for (std::byte x : {std::byte{0x01}, std::byte{0xff}}) {
      std::vector<std::byte> in = seed;
      in[i] ^= x;
      out.push_back(std::move(in));
    }
  }
  std::vector<std::byte> longer = seed;
  longer.insert(longer.end(), {std::byte{0}, std::byte{1}, std::byte{0xff}});
  out.push_back(std::move(longer));
  return out;
}

template <class List>
void expect_no_finding_over_corpus(const std::string& dir, std::size_t expected_seeds) {
  const auto seeds = read_corpus(dir);
  ASSERT_EQ(seeds.size(), expected_seeds) << dir;
  std::size_t checked = 0;
  for (const auto& seed : seeds) {
    ASSERT_FALSE(seed.empty());
    for (const auto& in : mutations(seed, List::size)) {
      const std::optional<std::string> finding = check_codec_fuzz_input<List>(in);
      ASSERT_FALSE(finding.has_value()) << *finding;
      ++checked;
    }
  }
  EXPECT_GT(checked, expected_seeds * 8);
}

// A fixed pseudo-random sequence of inputs (the same on every run).
std::vector<std::byte> generated_input(std::uint64_t& state, std::size_t max_len) {
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::uint32_t>(state >> 33);
  };
  std::vector<std::byte> in(next() % (max_len + 1));
  for (auto& b : in) {
    // Mostly small bytes, so that counts and flags are often plausible.
    const std::uint32_t r = next();
    b = static_cast<std::byte>(r % 4 == 0 ? r >> 8 : r % 4);
  }
  return in;
}

}  // namespace

TEST(CodecFuzzHarness, BuiltInCodecSeedCorpusAndItsMutationsHaveNoFinding) {
  expect_no_finding_over_corpus<codec_fuzz::Types>(MPROC_TEST_SOURCE_DIR "/fuzz/corpus",
                                                   codec_fuzz::kTypes);
}

TEST(CodecFuzzHarness, ExampleCodecSeedCorpusAndItsMutationsHaveNoFinding) {
  expect_no_finding_over_corpus<custom_codec_fuzz::Types>(
      MPROC_TEST_SOURCE_DIR "/fuzz/custom_corpus", custom_codec_fuzz::kTypes);
}

TEST(CodecFuzzHarness, ExampleCodecSamplesHaveNoFindingAndSeedsMatchTheCorpus) {
  std::apply(
      [](const auto&... sample) {
        (
            [&] {
              const std::optional<std::string> finding = check_codec_value(sample);
              EXPECT_FALSE(finding.has_value()) << *finding;
              const std::vector<std::uint8_t> seed =
                  mproc::testing::codec_fuzz_seed<custom_codec_fuzz::Types>(sample);
              std::ifstream in(
                  MPROC_TEST_SOURCE_DIR "/fuzz/custom_corpus/seed-" + std::to_string(seed[0]),
                  std::ios::binary);
              const std::vector<char> file((std::istreambuf_iterator<char>(in)),
                                           std::istreambuf_iterator<char>());
              EXPECT_EQ(std::vector<std::uint8_t>(file.begin(), file.end()), seed)
                  << "regenerate with codec_fuzz_seeds --custom tests/fuzz/custom_corpus";
            }(),
            ...);
      },
      custom_codec_fuzz::samples());
}

TEST(CodecFuzzHarness, GeneratedInputsHaveNoFindingForTheExampleCodecs) {
  std::uint64_t state = 42;
  int decoded = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::vector<std::byte> in = generated_input(state, 96);
    const std::optional<std::string> finding = check_codec_fuzz_input<custom_codec_fuzz::Types>(in);
    ASSERT_FALSE(finding.has_value()) << *finding;
    if (!in.empty() && static_cast<unsigned>(in[0]) % custom_codec_fuzz::kTypes == 0 &&
        in.size() >= 10) {
      try {
        (void)mproc::from_bytes<money::Decimal>(std::span(in).subspan(1, 9));
        ++decoded;
      } catch (const mproc::DecodeError&) {
      }
    }
  }
  EXPECT_GT(decoded, 0);  // the inputs reach past the first checks
}

TEST(CodecFuzzHarness, ExampleCodecRejectsHostileBytesWithDecodeErrorOnly) {
  // A Decimal of scale 19, and a polygon that claims 2^60 vertices: allowed failures, no finding.
  std::vector<std::byte> decimal = mproc::to_bytes(money::Decimal(5, 1));
  decimal[8] = std::byte{19};
  EXPECT_THROW((void)mproc::from_bytes<money::Decimal>(decimal), mproc::DecodeError);
  EXPECT_FALSE(check_codec_input<money::Decimal>(decimal).has_value());
  std::vector<std::byte> polygon =
      mproc::to_bytes(geo::Polygon<double>("p", {{0, 0}, {1, 0}, {0, 1}}));
  const std::uint64_t huge = std::uint64_t{1} << 60;
  std::memcpy(polygon.data() + 9, &huge, sizeof(huge));
  EXPECT_THROW((void)mproc::from_bytes<geo::Polygon<double>>(polygon), mproc::DecodeError);
  EXPECT_FALSE(check_codec_input<geo::Polygon<double>>(polygon).has_value());
}

TEST(CodecFuzzHarness, ReportsSizeLargerThanWhatEncodeWrites) {
  const auto from_value = check_codec_value(SizeOffByOne{7});
  ASSERT_TRUE(from_value.has_value());
  EXPECT_NE(from_value->find("size() and encode() must agree"), std::string::npos) << *from_value;
  EXPECT_NE(from_value->find("codec<T>::size() is larger"), std::string::npos) << *from_value;

  const auto from_input = check_codec_input<SizeOffByOne>(bytes_of({7, 0, 0, 0}));
  ASSERT_TRUE(from_input.has_value());
  EXPECT_EQ(*from_input, "encoded_size() of a decoded value is 5 bytes, but decoding it used 4");
}

TEST(CodecFuzzHarness, ReportsDecodeThatReadsPastWhatEncodeWrote) {
  const auto from_value = check_codec_value(ReadsPastEncoding{7});
  ASSERT_TRUE(from_value.has_value());
  EXPECT_EQ(from_value->rfind("the encoding of a value does not decode: mproc: truncated", 0), 0u)
      << *from_value;

  const auto from_input = check_codec_input<ReadsPastEncoding>(bytes_of({7, 0, 0, 0, 9}));
  ASSERT_TRUE(from_input.has_value());
  EXPECT_EQ(*from_input, "encoded_size() of a decoded value is 4 bytes, but decoding it used 5");
}

TEST(CodecFuzzHarness, ReportsDecodeThatThrowsAnotherExceptionThanDecodeError) {
  EXPECT_FALSE(check_codec_value(ThrowsRuntimeError{true}).has_value());
  int findings = 0;
  for (int b = 0; b < 256; ++b) {
    const auto finding = check_codec_input<ThrowsRuntimeError>(bytes_of({b}));
    if (b <= 1) {
      EXPECT_FALSE(finding.has_value()) << b << ": " << *finding;
      continue;
    }
    ASSERT_TRUE(finding.has_value()) << b;
    EXPECT_EQ(*finding,
              "decode threw std::runtime_error, not mproc::DecodeError (whole buffer): flag is "
              "neither 0 nor 1");
    ++findings;
  }
  EXPECT_EQ(findings, 254);
}

TEST(CodecFuzzHarness, ReportsABrokenElementCodecInsideAContainerWithTheTypeAndWindow) {
  using List = codec_fuzz_types<int, std::vector<ThrowsRuntimeError>>;
  // Selector 3: type 1 (3 % 2), window 2 (1 + (3 / 2) % 8); a vector of one element, flag 2.
  const auto finding = check_codec_fuzz_input<List>(bytes_of({3, 1, 0, 0, 0, 0, 0, 0, 0, 2}));
  ASSERT_TRUE(finding.has_value());
  EXPECT_EQ(finding->rfind("type 1 (std::vector<", 0), 0u) << *finding;
  EXPECT_NE(finding->find("ThrowsRuntimeError"), std::string::npos) << *finding;
  EXPECT_NE(finding->find("), window 2: decode threw std::runtime_error"), std::string::npos)
      << *finding;
  // The same vector with a valid flag: no finding.
  EXPECT_FALSE(check_codec_fuzz_input<List>(bytes_of({3, 1, 0, 0, 0, 0, 0, 0, 0, 1})));
}

TEST(CodecFuzzHarness, ReportsMinSizeHintLargerThanAValue) {
  const auto finding = check_codec_input<MinSizeTooLarge>(bytes_of({1, 2, 3, 4}));
  ASSERT_TRUE(finding.has_value());
  EXPECT_EQ(*finding, "a value decoded from fewer bytes than codec<T>::min_size");
}

TEST(CodecFuzzHarness, ReportsBitwiseHintOnACodecThatRejectsBytes) {
  EXPECT_FALSE(check_codec_input<BitwiseButValidates>(bytes_of({1, 0, 0, 0})).has_value());
  const auto finding = check_codec_input<BitwiseButValidates>(bytes_of({0, 0, 0, 0x80}));
  ASSERT_TRUE(finding.has_value());
  EXPECT_EQ(finding->rfind("codec<T>::bitwise is set, but decode rejected sizeof(T) bytes", 0), 0u)
      << *finding;
}

TEST(CodecFuzzHarness, ReportsAnAllocationSizedByTheAnnouncedLength) {
  if (!mproc::testing::kCodecFuzzChecksAllocations)
    GTEST_SKIP() << "the allocation bound needs a sanitizer's allocator hooks (make asan)";
  // A count of 2^39: more than the input holds (the whole-buffer decode fails), less than the
  // 2^40 extra bytes a streamed sender announces (the reservation of 128 MiB happens there).
  const auto finding =
      check_codec_input<ReservesByAnnouncedLength>(bytes_of({0, 0, 0, 0, 0x80, 0, 0, 0, 'a'}));
  ASSERT_TRUE(finding.has_value());
  EXPECT_EQ(*finding, "an allocation followed the announced length, not the bytes that arrived");
}

TEST(CodecFuzzHarness, MacroTargetReturnsZeroOnInputsWithoutFinding) {
  // Type 1 (the pair), window 1: a valid pair, then a truncated one, then trailing bytes.
  std::vector<std::uint8_t> in = {1};
  for (std::byte b : mproc::to_bytes(std::pair<std::int32_t, std::string>{5, "ab"}))
    in.push_back(static_cast<std::uint8_t>(b));
  EXPECT_EQ(LLVMFuzzerTestOneInput(in.data(), in.size()), 0);
  EXPECT_EQ(LLVMFuzzerTestOneInput(in.data(), in.size() - 1), 0);
  in.push_back(0);
  EXPECT_EQ(LLVMFuzzerTestOneInput(in.data(), in.size()), 0);
  EXPECT_EQ(LLVMFuzzerTestOneInput(in.data(), 0), 0);
}

TEST(CodecFuzzHarnessDeathTest, MacroTargetAbortsWithTheFinding) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Type 2 (ThrowsRuntimeError), window 1, flag byte 7.
  const std::uint8_t in[] = {2, 7};
  EXPECT_DEATH(LLVMFuzzerTestOneInput(in, sizeof(in)),
               "mproc codec fuzz: type 2 \\(.*ThrowsRuntimeError\\), window 1: decode threw "
               "std::runtime_error, not mproc::DecodeError");
}
