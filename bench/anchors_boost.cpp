// bench/anchors_boost.cpp — another library as an anchor: Boost.Interprocess `message_queue`.
//
// Built only when CMake finds Boost's headers (bench/CMakeLists.txt). Its rows have impl "anchor":
// compare.py shows them as extra rows of their group, with the ratio of their time to mproc's.
#include <unistd.h>

#include <atomic>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

namespace bip = boost::interprocess;

// As many 64-byte messages as mproc's default 1 MiB ring holds of payload.
constexpr std::size_t kBoostMessages = 16384;

// A boost::interprocess::message_queue of Msg64 as a channel of protocols.hpp. The queue is made
// under a unique name in /dev/shm that is removed at once: the mapping lives on, in this process
// and in the partner forked after it, and nothing is left behind if the run is killed.
class BoostChannel {
 public:
  BoostChannel() {
    static std::atomic<unsigned> serial{0};
    const std::string name =
        "mproc_bench_" + std::to_string(::getpid()) + "_" + std::to_string(serial++);
    bip::message_queue::remove(name.c_str());
    mq_ = std::make_unique<bip::message_queue>(bip::create_only, name.c_str(), kBoostMessages,
                                               sizeof(Msg64));
    bip::message_queue::remove(name.c_str());
  }

  void put(const Msg64& m) { mq_->send(&m, sizeof m, 0); }
  Msg64 get() {
    Msg64 m;
    std::size_t got = 0;
    unsigned priority = 0;
    mq_->receive(&m, sizeof m, got, priority);
    check(got == sizeof m, "boost message_queue: a message of the wrong size");
    return m;
  }

 private:
  std::unique_ptr<bip::message_queue> mq_;
};

const Registrar kSpsc64{{
    .name = "queue.spsc_64B/boost",
    .group = "queue.spsc_64B",
    .impl = "anchor",
    .label = "Boost.Interprocess message_queue send / receive (process-shared mutex + condvars)",
    .primary = false,
    .make =
        [] {
          auto ch = std::make_shared<BoostChannel>();
          return pair_runner({
              .pin = Pin::kSplit,
              .before = {},
              .self = [ch](std::uint64_t n) { spsc_consume(*ch, n); },
              .partner = [ch](std::uint64_t n) { spsc_produce(*ch, n); },
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
