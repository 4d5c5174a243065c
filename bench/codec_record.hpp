// bench/codec_record.hpp — the record of the codec groups: a string and a vector of doubles.
//
// `Record` is the struct of issue 14's evidence: one `serialize(Archive&)` member written once,
// `ar(name, values)`, that mproc's codec and cereal's archives both accept. Its rows:
// workloads_codec.cpp (mproc's codec and a Queue), anchors_cereal.cpp (cereal's binary archive).
//
// Both encodings are the same 8 + kNameChars + 8 + 8 * N bytes: mproc writes a string and a vector
// of doubles as a uint64 count and the bytes (codec.hpp), cereal's BinaryOutputArchive as a
// uint64 size and the bytes (`binary_data` for a vector of arithmetic values).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace mproc_bench {

// 24 characters: past libstdc++'s 15-character small-string buffer, so a decoded name allocates,
// as the names of real records do.
inline constexpr std::size_t kNameChars = 24;
inline constexpr std::size_t kSmallValues = 16;    // 168 bytes encoded
inline constexpr std::size_t kLargeValues = 1024;  // 8232 bytes encoded

struct Record {
  std::string name;
  std::vector<double> values;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values);
  }
};

// The bytes either library writes for a Record of `values` doubles.
constexpr std::uint64_t record_bytes(std::size_t values) { return 8 + kNameChars + 8 + 8 * values; }

// The bytes both libraries write for a record of this name and these values (the layout above,
// written out here so that a row can check a path's bytes without depending on how that path is
// reached).
inline std::vector<std::byte> record_encoding(const std::string& name,
                                              const std::vector<double>& values) {
  const std::uint64_t chars = name.size();
  const std::uint64_t count = values.size();
  std::vector<std::byte> out(8 + chars + 8 + count * sizeof(double));
  std::byte* p = out.data();
  std::memcpy(p, &chars, 8);
  std::memcpy(p + 8, name.data(), chars);
  std::memcpy(p + 8 + chars, &count, 8);
  std::memcpy(p + 16 + chars, values.data(), count * sizeof(double));
  return out;
}

// A Record of `values` doubles, the same every time it is made.
inline Record make_record(std::size_t values) {
  Record r;
  r.name.reserve(kNameChars);
  for (std::size_t i = 0; i < kNameChars; ++i) r.name += static_cast<char>('a' + i % 26);
  r.values.reserve(values);
  for (std::size_t i = 0; i < values; ++i) r.values.push_back(0.5 * static_cast<double>(i) + 1.0);
  return r;
}

// Throws std::runtime_error unless `a` and `b` hold the same name and values: each row checks
// one round trip when it is made, so that a row measuring a broken path fails instead.
inline void check_same_record(const Record& a, const Record& b, const char* what) {
  if (a.name != b.name || a.values != b.values)
    throw std::runtime_error(std::string(what) +
                             ": the record read back differs from the one written");
}

}  // namespace mproc_bench
