// bench/workloads_queue.cpp — mproc's rows of the queue and pipe groups (protocols.hpp).
//
// The 64-byte message is `Msg64` (a trivially copyable struct: one memcpy each way); the 64 KiB
// message is a std::vector<std::byte> of 65536 bytes (a length and the bytes), the consumer
// getting a new vector for each message, as a user of Queue<std::vector<std::byte>> does.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mproc/pipe.hpp>
#include <mproc/queue.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

constexpr unsigned kFanout = 4;  // producers of mpsc, consumers of spmc

using MsgQueue = mproc::Queue<Msg64>;
using BulkQueue = mproc::Queue<std::vector<std::byte>>;

// A row with one producer (the partner) and one consumer (this process) of one MsgQueue, on two
// CPUs; `produce` and `consume` are protocols.hpp's functions.
using MsgSide = void (*)(MsgQueue&, std::uint64_t);
Workload spsc_workload(const std::string& group, const std::string& label, MsgSide consume,
                       MsgSide produce) {
  return {
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = label,
      .make =
          [consume, produce] {
            MsgQueue q;
            return pair_runner({
                .pin = Pin::kSplit,
                .before = {},
                .self = [q, consume](std::uint64_t n) mutable { consume(q, n); },
                .partner = [q, produce](std::uint64_t n) mutable { produce(q, n); },
            });
          },
  };
}

const Registrar kSpsc64{spsc_workload("queue.spsc_64B", "mproc::Queue<Msg64> put / get",
                                      &spsc_consume<MsgQueue>, &spsc_produce<MsgQueue>)};

const Registrar kSpsc64Batch{
    spsc_workload("queue.spsc_64B_batch", "mproc::Queue<Msg64> put_many / get_many of up to 256",
                  &spsc_consume_batch<MsgQueue>, &spsc_produce_batch<MsgQueue>)};

const Registrar kMpsc64{{
    .name = "queue.mpsc_64B/mproc",
    .group = "queue.mpsc_64B",
    .impl = "mproc",
    .label = "mproc::Queue<Msg64> put / get, 4 producers",
    .make =
        [] {
          MsgQueue q;
          return team_runner({
              .pin = Pin::kNone,
              .partners = kFanout,
              .before = {},
              .self = [q](std::uint64_t n) mutable { mpsc_consume(q, kFanout, n); },
              .partner = [q](unsigned i,
                             std::uint64_t n) mutable { mpsc_produce(q, i, kFanout, n); },
          });
        },
}};

const Registrar kSpmc64{{
    .name = "queue.spmc_64B/mproc",
    .group = "queue.spmc_64B",
    .impl = "mproc",
    .label = "mproc::Queue<Msg64> put / get, 4 consumers",
    .make =
        [] {
          MsgQueue q;
          return team_runner({
              .pin = Pin::kNone,
              .partners = kFanout,
              .before = {},
              .self = [q](std::uint64_t n) mutable { spsc_produce(q, n); },
              .partner = [q](unsigned i,
                             std::uint64_t n) mutable { spmc_consume(q, i, kFanout, n); },
          });
        },
}};

const Registrar kSpsc64KiB{{
    .name = "queue.spsc_64KiB/mproc",
    .group = "queue.spsc_64KiB",
    .impl = "mproc",
    .label = "mproc::Queue<std::vector<std::byte>> put / get",
    .make =
        [] {
          BulkQueue q;
          auto buf = std::make_shared<std::vector<std::byte>>(kBulkBytes, std::byte{1});
          return pair_runner({
              .pin = Pin::kSplit,
              .before = {},
              .self = [q](std::uint64_t n) mutable { bulk_consume(q, kBulkBytes, n); },
              .partner = [q, buf](std::uint64_t n) mutable { bulk_produce(q, *buf, n); },
          });
        },
}};

// A row of queue.roundtrip*: A puts on q1 and gets from q2, B gets from q1 and puts on q2.
Workload roundtrip_workload(const std::string& group, const std::string& label, Pin pin,
                            mproc::QueueOptions options) {
  return {
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = label,
      .make =
          [pin, options] {
            MsgQueue q1(0, options);
            MsgQueue q2(0, options);
            return pair_runner({
                .pin = pin,
                .before = {},
                .self = [q1, q2](std::uint64_t n) mutable { roundtrip_a(q1, q2, n); },
                .partner = [q1, q2](std::uint64_t n) mutable { roundtrip_b(q1, q2, n); },
            });
          },
  };
}

const Registrar kRoundtrip{roundtrip_workload("queue.roundtrip",
                                              "2 mproc::Queue<Msg64>, QueueOptions{.spin = 0}",
                                              Pin::kSame, mproc::QueueOptions{.spin = 0})};

const Registrar kRoundtripSpin{roundtrip_workload(
    "queue.roundtrip_spin", "2 mproc::Queue<Msg64>, default spin before sleeping", Pin::kSplit,
    mproc::QueueOptions{})};

// A connection of mproc::Pipe as protocols.hpp's `Conn`.
template <class Connection>
class PipeEnd {
 public:
  explicit PipeEnd(Connection c) : c_(std::move(c)) {}
  void send(std::uint64_t v) { c_.send(v); }
  std::uint64_t recv() { return c_.template recv<std::uint64_t>(); }

 private:
  Connection c_;
};

const Registrar kPipeRoundtrip{{
    .name = "pipe.roundtrip/mproc",
    .group = "pipe.roundtrip",
    .impl = "mproc",
    .label = "mproc::Pipe() send / recv<std::uint64_t>",
    .make =
        [] {
          auto [a, b] = mproc::Pipe();
          using End = PipeEnd<std::remove_cvref_t<decltype(a)>>;
          auto ea = std::make_shared<End>(std::move(a));
          auto eb = std::make_shared<End>(std::move(b));
          return pair_runner({
              .pin = Pin::kSame,
              .before = {},
              .self = [ea](std::uint64_t n) { pipe_roundtrip_a(*ea, n); },
              .partner = [eb](std::uint64_t n) { pipe_roundtrip_b(*eb, n); },
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
