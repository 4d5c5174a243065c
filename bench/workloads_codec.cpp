// bench/workloads_codec.cpp — mproc's rows of the codec groups: a Record (codec_record.hpp)
// through mproc's own codec, and through a Queue in one process.
//
// One op of codec.encode_* is what a Queue does to a message before it copies nothing else:
// `mproc::encoded_size` (the room to reserve), then `mproc::encode` through a `Writer` over a
// buffer made once, outside the clock (the Queue's slot). One op of codec.decode_* is
// `mproc::decode<Record>` from a `Reader` over those bytes, building a new Record each time (its
// string and vector allocate, and are freed when the next op starts), as a Queue's get() does.
// This file does not include cereal, so these rows measure mproc's native path whatever cereal
// support codec.hpp gains; cereal's own archives are the anchor (anchors_cereal.cpp).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mproc/codec.hpp>
#include <mproc/queue.hpp>
#include <string>
#include <utility>
#include <vector>

#include "codec_record.hpp"
#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

Workload encode_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = "mproc::encoded_size + mproc::encode into a buffer made once",
      .make =
          [values] {
            Record rec = make_record(values);
            std::vector<std::byte> buf(mproc::encoded_size(rec));
            check(buf.size() == record_bytes(values), "codec: an unexpected encoded size");
            return loop_runner(
                [rec = std::move(rec), buf = std::move(buf)](std::uint64_t n) mutable {
                  for (std::uint64_t i = 0; i < n; ++i) {
                    const std::size_t size = mproc::encoded_size(rec);
                    check(size <= buf.size(), "codec: the record grew");
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
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = "mproc::decode<Record> from a Reader, a new Record each time",
      .make =
          [values] {
            const Record rec = make_record(values);
            std::vector<std::byte> bytes = mproc::to_bytes(rec);
            check_same_record(mproc::from_bytes<Record>(bytes), rec, "codec decode");
            return loop_runner([bytes = std::move(bytes)](std::uint64_t n) {
              for (std::uint64_t i = 0; i < n; ++i) {
                mproc::Reader r(bytes.data(), bytes.size());
                Record out = mproc::decode<Record>(r);
                do_not_optimize(out);
              }
            });
          },
  };
}

Workload queue_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = "mproc::Queue<Record> put + get, one process",
      .make =
          [values] {
            Record rec = make_record(values);
            mproc::Queue<Record> q;
            q.put(rec);
            check_same_record(q.get(), rec, "codec queue");
            return loop_runner([rec = std::move(rec), q](std::uint64_t n) mutable {
              for (std::uint64_t i = 0; i < n; ++i) {
                q.put(rec);
                Record out = q.get();
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
