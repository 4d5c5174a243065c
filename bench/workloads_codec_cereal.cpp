// bench/workloads_codec_cereal.cpp — the codec groups' Record written for cereal, through mproc.
//
// `CerealRecord` is codec_record.hpp's Record as a cereal user writes it: the same members,
// archived with `CEREAL_NVP`, in a file that includes cereal's <cereal/types/string.hpp> and
// <cereal/types/vector.hpp>. mproc's own archives do not take name-value pairs; with
// <mproc/codec/cereal.hpp> the type goes through mproc's cereal archives (cereal's dispatch,
// mproc's rules for the string and the vector inside), and these rows measure that path with the
// same ops as workloads_codec.cpp's (codec_workloads.hpp): encoded_size + encode into a buffer
// made once, decode from a Reader into a new value, and put + get on a Queue in one process. They
// are extra mproc rows
// ("<group>/mproc.cereal") of the same groups, so the table shows the three paths side by side:
// mproc's native codec, mproc's cereal adapter, and cereal's binary archive (the anchor). Both
// mproc paths write the same bytes (checked when a row is made).
#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mproc/codec.hpp>
#include <mproc/codec/cereal.hpp>
#include <mproc/queue.hpp>
#include <string>
#include <utility>
#include <vector>

#include "codec_record.hpp"
#include "codec_workloads.hpp"

namespace mproc_bench {
namespace {

struct CerealRecord {
  std::string name;
  std::vector<double> values;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), CEREAL_NVP(values));
  }
};

CerealRecord make_cereal_record(std::size_t values) {
  Record r = make_record(values);
  return {std::move(r.name), std::move(r.values)};
}

// The path of the record written for cereal; its bytes are the native path's.
struct CerealPath {
  using Rec = CerealRecord;
  static Rec make(std::size_t values) { return make_cereal_record(values); }
  static std::vector<std::byte> bytes(const Rec& r) { return record_encoding(r.name, r.values); }
  static void check_same(const Rec& a, const Rec& b, const char* what) {
    check_same_record(Record{a.name, a.values}, Record{b.name, b.values}, what);
  }
  static constexpr const char* kSuffix = ".cereal";
  static constexpr const char* kWhat = "codec cereal";
  static constexpr bool kPrimary = false;
  static constexpr const char* kEncodeLabel =
      "the Record written for cereal (CEREAL_NVP) through <mproc/codec/cereal.hpp>: "
      "encoded_size + encode into a buffer made once";
  static constexpr const char* kDecodeLabel =
      "the Record written for cereal (CEREAL_NVP) through <mproc/codec/cereal.hpp>: "
      "decode from a Reader, a new value each time";
  static constexpr const char* kQueueLabel =
      "mproc::Queue<the Record written for cereal> put + get, one process";
};

const CodecRows<CerealPath> kRows;

}  // namespace
}  // namespace mproc_bench
