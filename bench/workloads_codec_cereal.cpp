// bench/workloads_codec_cereal.cpp — the codec groups' Record written for cereal, through mproc.
//
// `CerealRecord` is codec_record.hpp's Record as a cereal user writes it: the same members,
// archived with `CEREAL_NVP`, in a file that includes cereal's <cereal/types/string.hpp> and
// <cereal/types/vector.hpp>. mproc's own archives do not take name-value pairs; with
// <mproc/codec/cereal.hpp> the type goes through mproc's cereal archives (cereal's dispatch,
// mproc's rules for the string and the vector inside), and these rows measure that path with the
// same ops as workloads_codec.cpp's: encoded_size + encode into a buffer made once, decode from a
// Reader into a new value, and put + get on a Queue in one process. They are extra mproc rows
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
#include "harness.hpp"
#include "protocols.hpp"

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

void check_same(const CerealRecord& a, const CerealRecord& b, const char* what) {
  check_same_record(Record{a.name, a.values}, Record{b.name, b.values}, what);
}

// The bytes of the native path (codec_record.hpp's layout, written out here so that this file
// does not depend on how the native rule is reached).
std::vector<std::byte> native_bytes(const CerealRecord& r) {
  const std::uint64_t chars = r.name.size();
  const std::uint64_t count = r.values.size();
  std::vector<std::byte> out(8 + chars + 8 + count * sizeof(double));
  std::byte* p = out.data();
  std::memcpy(p, &chars, 8);
  std::memcpy(p + 8, r.name.data(), chars);
  std::memcpy(p + 8 + chars, &count, 8);
  std::memcpy(p + 16 + chars, r.values.data(), count * sizeof(double));
  return out;
}

Workload encode_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc.cereal",
      .group = group,
      .impl = "mproc",
      .label =
          "the Record written for cereal (CEREAL_NVP) through <mproc/codec/cereal.hpp>: "
          "encoded_size + encode into a buffer made once",
      .primary = false,
      .make =
          [values] {
            CerealRecord rec = make_cereal_record(values);
            std::vector<std::byte> buf(mproc::encoded_size(rec));
            check(buf.size() == record_bytes(values), "codec cereal: an unexpected encoded size");
            check(mproc::to_bytes(rec) == native_bytes(rec),
                  "codec cereal: bytes other than the native path's");
            return loop_runner(
                [rec = std::move(rec), buf = std::move(buf)](std::uint64_t n) mutable {
                  for (std::uint64_t i = 0; i < n; ++i) {
                    const std::size_t size = mproc::encoded_size(rec);
                    check(size <= buf.size(), "codec cereal: the record grew");
                    mproc::Writer w(buf.data(), buf.data() + size);
                    mproc::encode(w, rec);
                    do_not_optimize(buf.data());  // the bytes are written, and rec is read anew
                  }
                });
          },
  };
}

Workload decode_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc.cereal",
      .group = group,
      .impl = "mproc",
      .label =
          "the Record written for cereal (CEREAL_NVP) through <mproc/codec/cereal.hpp>: "
          "decode from a Reader, a new value each time",
      .primary = false,
      .make =
          [values] {
            const CerealRecord rec = make_cereal_record(values);
            std::vector<std::byte> bytes = native_bytes(rec);
            check_same(mproc::from_bytes<CerealRecord>(bytes), rec, "codec cereal decode");
            return loop_runner([bytes = std::move(bytes)](std::uint64_t n) {
              for (std::uint64_t i = 0; i < n; ++i) {
                mproc::Reader r(bytes.data(), bytes.size());
                CerealRecord out = mproc::decode<CerealRecord>(r);
                do_not_optimize(out);
              }
            });
          },
  };
}

Workload queue_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc.cereal",
      .group = group,
      .impl = "mproc",
      .label = "mproc::Queue<the Record written for cereal> put + get, one process",
      .primary = false,
      .make =
          [values] {
            CerealRecord rec = make_cereal_record(values);
            mproc::Queue<CerealRecord> q;
            q.put(rec);
            check_same(q.get(), rec, "codec cereal queue");
            return loop_runner([rec = std::move(rec), q](std::uint64_t n) mutable {
              for (std::uint64_t i = 0; i < n; ++i) {
                q.put(rec);
                CerealRecord out = q.get();
                do_not_optimize(out);
              }
            });
          },
  };
}

const Registrar kEncodeSmall{encode_workload("codec.encode_168B", kSmallValues)};
const Registrar kDecodeSmall{decode_workload("codec.decode_168B", kSmallValues)};
const Registrar kEncodeLarge{encode_workload("codec.encode_8KiB", kLargeValues)};
const Registrar kDecodeLarge{decode_workload("codec.decode_8KiB", kLargeValues)};
const Registrar kQueueSmall{queue_workload("codec.queue_168B", kSmallValues)};
const Registrar kQueueLarge{queue_workload("codec.queue_8KiB", kLargeValues)};

}  // namespace
}  // namespace mproc_bench
