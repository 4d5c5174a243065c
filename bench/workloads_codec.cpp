// bench/workloads_codec.cpp — mproc's rows of the codec groups: a Record (codec_record.hpp)
// through mproc's own codec, and through a Queue in one process (the ops: codec_workloads.hpp).
// This file does not include cereal, so these rows measure mproc's native path whatever cereal
// support codec.hpp gains; cereal's own archives are the anchor (anchors_cereal.cpp).
#include <cstddef>
#include <vector>

#include "codec_record.hpp"
#include "codec_workloads.hpp"

namespace mproc_bench {
namespace {

struct NativePath {
  using Rec = Record;
  static Rec make(std::size_t values) { return make_record(values); }
  static std::vector<std::byte> bytes(const Rec& r) { return record_encoding(r.name, r.values); }
  static void check_same(const Rec& a, const Rec& b, const char* what) {
    check_same_record(a, b, what);
  }
  static constexpr const char* kSuffix = "";
  static constexpr const char* kWhat = "codec";
  static constexpr bool kPrimary = true;
  static constexpr const char* kEncodeLabel =
      "mproc::encoded_size + mproc::encode into a buffer made once";
  static constexpr const char* kDecodeLabel =
      "mproc::decode<Record> from a Reader, a new Record each time";
  static constexpr const char* kQueueLabel = "mproc::Queue<Record> put + get, one process";
};

const CodecRows<NativePath> kRows;

}  // namespace
}  // namespace mproc_bench
