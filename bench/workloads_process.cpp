// bench/workloads_process.cpp — mproc's row of the process start+join group.
#include <cstdint>
#include <mproc/process.hpp>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

void noop() {}

const Registrar kProcessStartJoin{{
    .name = "process.start_join/mproc",
    .group = "process.start_join",
    .impl = "mproc",
    .label = "mproc::Process(noop) start() + join()",
    .make =
        [] {
          return loop_runner([](std::uint64_t n) {
            for (std::uint64_t i = 0; i < n; ++i) {
              mproc::Process p(noop);
              p.start();
              p.join();
              check(p.exitcode() == 0, "child did not exit with 0");
            }
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
