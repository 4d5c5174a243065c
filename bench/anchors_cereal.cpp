// bench/anchors_cereal.cpp — another library as an anchor: cereal's binary archive.
//
// The codec groups' Record (codec_record.hpp) through `cereal::BinaryOutputArchive` and
// `cereal::BinaryInputArchive`, with cereal's own <cereal/types/string.hpp> and
// <cereal/types/vector.hpp>. Its rows have impl "anchor": compare.py shows them under mproc's row
// of the same group, with the ratio of their time to mproc's.
//
// The stream is a `FixedBuf`: a std::streambuf over a buffer made once, outside the clock, whose
// put or get area is rewound before each op. So the anchor pays no std::stringstream growth or
// copy-out, as mproc's rows pay no allocation for their bytes: both write into, and read from,
// memory that is already there. The std::ostream / std::istream over it are made once too
// (making one costs a locale copy). In the main cereal row of each group every op makes its
// archive, as a program that sends each message on its own does (an archive is bound to its
// stream, and cereal's archives keep per-archive state such as pointer tracking); the extra row
// ".reused" makes one archive outside the clock and reuses it for every record, which is sound
// here (a Record holds no pointers for the archive to track) and shows what of cereal's time is
// the archive's making. Decoding builds a new Record each time, as mproc's decode does.
#include <cereal/archives/binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

#include "codec_record.hpp"
#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

// A std::streambuf over [begin, begin + capacity) that never grows: a write past the end or a
// read past what was written fails (short count), which cereal reports by throwing.
class FixedBuf final : public std::streambuf {
 public:
  explicit FixedBuf(std::size_t capacity) : bytes_(capacity) {}

  void rewind_put() { setp(bytes_.data(), bytes_.data() + bytes_.size()); }
  std::size_t written() const { return static_cast<std::size_t>(pptr() - pbase()); }
  // The next reads see the first `n` bytes written.
  void rewind_get(std::size_t n) { setg(bytes_.data(), bytes_.data(), bytes_.data() + n); }
  const char* data() const { return bytes_.data(); }

 private:
  std::vector<char> bytes_;
};

// Everything a row uses, made once (streams and archives can be neither copied nor moved into
// the runner's lambda).
struct CerealState {
  explicit CerealState(std::size_t values)
      : rec(make_record(values)),
        buf(record_bytes(values)),
        out(&buf),
        in(&buf),
        out_ar(out),
        in_ar(in) {}

  // One op of an encode row: a new archive, or `out_ar` when `reuse`.
  void encode(bool reuse) {
    buf.rewind_put();
    if (reuse) {
      out_ar(rec);
    } else {
      cereal::BinaryOutputArchive ar(out);
      ar(rec);
    }
  }

  // One op of a decode row, from the `size` bytes the last encode() wrote: a new archive, or
  // `in_ar` when `reuse`.
  Record decode(std::size_t size, bool reuse) {
    buf.rewind_get(size);
    Record r;
    if (reuse) {
      in_ar(r);
    } else {
      cereal::BinaryInputArchive ar(in);
      ar(r);
    }
    return r;
  }

  Record rec;
  FixedBuf buf;
  std::ostream out;
  std::istream in;
  cereal::BinaryOutputArchive out_ar;
  cereal::BinaryInputArchive in_ar;
};

// "<group>/cereal" (a new archive per op) or "<group>/cereal.reused".
std::string row_name(const std::string& group, bool reuse) {
  return group + (reuse ? "/cereal.reused" : "/cereal");
}

Workload encode_workload(const std::string& group, std::size_t values, bool reuse) {
  return {
      .name = row_name(group, reuse),
      .group = group,
      .impl = "anchor",
      .label = reuse ? "cereal::BinaryOutputArchive into a fixed streambuf, one archive reused"
                     : "cereal::BinaryOutputArchive into a fixed streambuf, one archive per record",
      .primary = false,
      .make =
          [values, reuse] {
            auto st = std::make_unique<CerealState>(values);
            st->encode(reuse);
            check(st->buf.written() == record_bytes(values), "cereal: an unexpected encoded size");
            check_same_record(st->decode(st->buf.written(), reuse), st->rec, "cereal encode");
            return loop_runner([st = std::move(st), reuse](std::uint64_t n) {
              for (std::uint64_t i = 0; i < n; ++i) {
                st->encode(reuse);
                do_not_optimize(st->buf.data());  // the bytes are written, and rec is read anew
              }
            });
          },
  };
}

Workload decode_workload(const std::string& group, std::size_t values, bool reuse) {
  return {
      .name = row_name(group, reuse),
      .group = group,
      .impl = "anchor",
      .label = reuse ? "cereal::BinaryInputArchive from a fixed streambuf, one archive reused, "
                       "a new Record each time"
                     : "cereal::BinaryInputArchive from a fixed streambuf, one archive per "
                       "record, a new Record each time",
      .primary = false,
      .make =
          [values, reuse] {
            auto st = std::make_unique<CerealState>(values);
            st->encode(reuse);
            const std::size_t size = st->buf.written();
            check_same_record(st->decode(size, reuse), st->rec, "cereal decode");
            return loop_runner([st = std::move(st), size, reuse](std::uint64_t n) {
              for (std::uint64_t i = 0; i < n; ++i) {
                Record out = st->decode(size, reuse);
                do_not_optimize(out);
              }
            });
          },
  };
}

const Registrar kEncodeSmall{encode_workload("codec.encode_168B", kSmallValues, false)};
const Registrar kEncodeSmallReused{encode_workload("codec.encode_168B", kSmallValues, true)};
const Registrar kDecodeSmall{decode_workload("codec.decode_168B", kSmallValues, false)};
const Registrar kDecodeSmallReused{decode_workload("codec.decode_168B", kSmallValues, true)};
const Registrar kEncodeLarge{encode_workload("codec.encode_8KiB", kLargeValues, false)};
const Registrar kEncodeLargeReused{encode_workload("codec.encode_8KiB", kLargeValues, true)};
const Registrar kDecodeLarge{decode_workload("codec.decode_8KiB", kLargeValues, false)};
const Registrar kDecodeLargeReused{decode_workload("codec.decode_8KiB", kLargeValues, true)};

}  // namespace
}  // namespace mproc_bench
