// bench/groups.cpp — every group of workloads: what one op is, and the target mproc must meet.
//
// The order here is the order of the table. A group is one operation done several ways (mproc, the
// raw-syscall floor, CPython's multiprocessing); bench/compare.py reads this list from
// `bench --list --json`. Targets are cost ratios, see harness.hpp.
#include "harness.hpp"

namespace mproc_bench {

const std::vector<Group>& groups() {
  static const std::vector<Group> all = {
      {"lock.uncontended", "acquire + release of a free lock, one process", "python/mproc>=8"},
      {"lock.handoff",
       "one hand-off of a lock between 2 processes on 2 CPUs, in strict alternation (lock; take "
       "the turn if it is yours; unlock; yield if it was not)",
       ""},
      {"event.pingpong",
       "one round trip between 2 processes on 1 CPU through 2 events (A: set e1, wait e2, clear "
       "e2; B: wait e1, clear e1, set e2)",
       "mproc/floor<=1.5"},
      // Isolated: once a program has started an mproc::Process, every fork in it runs mproc's
      // pthread_atfork handlers, which would make the raw-fork floor pay part of mproc's cost.
      {"process.start_join", "start + join of a forked child that does nothing", "mproc/floor<=1.3",
       true},
  };
  return all;
}

}  // namespace mproc_bench
