// bench/codec_workloads.hpp — the ops of mproc's codec rows, once for any record type.
//
// workloads_codec.cpp instantiates them for codec_record.hpp's Record (mproc's native codec), and
// workloads_codec_cereal.cpp for the same record written for cereal (through
// <mproc/codec/cereal.hpp>); each file includes only what its path needs, so the native rows never
// see cereal. `Path` says what differs:
//
//   using Rec = ...;                                // the record type
//   static Rec make(std::size_t values);            // a record of `values` doubles
//   static std::vector<std::byte> bytes(const Rec&);  // the bytes its encoding must be
//   static void check_same(const Rec&, const Rec&, const char* what);  // throws unless equal
//   static constexpr const char* kSuffix;           // appended to the row name: "" or ".cereal"
//   static constexpr const char* kWhat;             // prefixes each row's label and check message
//   static constexpr bool kPrimary;                 // the group's main mproc row, or an extra one
//   static constexpr const char* kEncodeLabel, kDecodeLabel, kQueueLabel;
//
// One op of codec.encode_* is what a Queue does to a message before it copies nothing else:
// `mproc::encoded_size` (the room to reserve), then `mproc::encode` through a `Writer` over a
// buffer made once, outside the clock (the Queue's slot). One op of codec.decode_* is
// `mproc::decode` from a `Reader` over those bytes, building a new record each time (its string
// and vector allocate, and are freed when the next op starts), as a Queue's get() does. One op of
// codec.queue_* is a put and a get on a Queue in one process. Each row checks one round trip (and
// the bytes) when it is made, so that a row measuring a broken path fails instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/codec.hpp>
#include <mproc/queue.hpp>
#include <string>
#include <utility>
#include <vector>

#include "codec_record.hpp"
#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {

template <class Path>
Workload codec_encode_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc" + Path::kSuffix,
      .group = group,
      .impl = "mproc",
      .label = Path::kEncodeLabel,
      .primary = Path::kPrimary,
      .make =
          [values] {
            typename Path::Rec rec = Path::make(values);
            std::vector<std::byte> buf(mproc::encoded_size(rec));
            check(buf.size() == record_bytes(values),
                  (std::string(Path::kWhat) + ": an unexpected encoded size").c_str());
            check(mproc::to_bytes(rec) == Path::bytes(rec),
                  (std::string(Path::kWhat) + ": bytes other than the native path's").c_str());
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

template <class Path>
Workload codec_decode_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc" + Path::kSuffix,
      .group = group,
      .impl = "mproc",
      .label = Path::kDecodeLabel,
      .primary = Path::kPrimary,
      .make =
          [values] {
            using Rec = typename Path::Rec;
            const Rec rec = Path::make(values);
            std::vector<std::byte> bytes = Path::bytes(rec);
            Path::check_same(mproc::from_bytes<Rec>(bytes), rec,
                             (std::string(Path::kWhat) + " decode").c_str());
            return loop_runner([bytes = std::move(bytes)](std::uint64_t n) {
              for (std::uint64_t i = 0; i < n; ++i) {
                mproc::Reader r(bytes.data(), bytes.size());
                Rec out = mproc::decode<Rec>(r);
                do_not_optimize(out);
              }
            });
          },
  };
}

template <class Path>
Workload codec_queue_workload(const std::string& group, std::size_t values) {
  return {
      .name = group + "/mproc" + Path::kSuffix,
      .group = group,
      .impl = "mproc",
      .label = Path::kQueueLabel,
      .primary = Path::kPrimary,
      .make =
          [values] {
            using Rec = typename Path::Rec;
            Rec rec = Path::make(values);
            mproc::Queue<Rec> q;
            q.put(rec);
            Path::check_same(q.get(), rec, (std::string(Path::kWhat) + " queue").c_str());
            return loop_runner([rec = std::move(rec), q](std::uint64_t n) mutable {
              for (std::uint64_t i = 0; i < n; ++i) {
                q.put(rec);
                Rec out = q.get();
                do_not_optimize(out);
              }
            });
          },
  };
}

// The six rows of one path: encode, decode and queue, each for the small and the large record.
template <class Path>
struct CodecRows {
  Registrar encode_small{codec_encode_workload<Path>("codec.encode_168B", kSmallValues)};
  Registrar decode_small{codec_decode_workload<Path>("codec.decode_168B", kSmallValues)};
  Registrar encode_large{codec_encode_workload<Path>("codec.encode_8KiB", kLargeValues)};
  Registrar decode_large{codec_decode_workload<Path>("codec.decode_8KiB", kLargeValues)};
  Registrar queue_small{codec_queue_workload<Path>("codec.queue_168B", kSmallValues)};
  Registrar queue_large{codec_queue_workload<Path>("codec.queue_8KiB", kLargeValues)};
};

}  // namespace mproc_bench
