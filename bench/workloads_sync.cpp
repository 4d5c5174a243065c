// bench/workloads_sync.cpp — mproc's rows of the lock and event groups (protocols.hpp).
#include <cstdint>
#include <mproc/sync.hpp>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

const Registrar kLockUncontended{{
    .name = "lock.uncontended/mproc",
    .group = "lock.uncontended",
    .impl = "mproc",
    .label = "mproc::Lock lock()/unlock()",
    .make =
        [] {
          mproc::Lock lock;
          return loop_runner([lock](std::uint64_t n) mutable { lock_uncontended(lock, n); });
        },
}};

const Registrar kLockHandoff{{
    .name = "lock.handoff/mproc",
    .group = "lock.handoff",
    .impl = "mproc",
    .label = "mproc::Lock",
    .make =
        [] {
          mproc::Lock lock;
          auto t = make_shared_object<Turns>();
          return pair_runner({
              .pin = Pin::kSplit,
              .before = [t] { t->turns.store(0); },
              .self = [lock, t](std::uint64_t n) mutable { lock_handoff_side(lock, *t, 0, n); },
              .partner = [lock, t](std::uint64_t n) mutable { lock_handoff_side(lock, *t, 1, n); },
          });
        },
}};

const Registrar kEventPingpong{{
    .name = "event.pingpong/mproc",
    .group = "event.pingpong",
    .impl = "mproc",
    .label = "mproc::Event set/wait/clear",
    .make =
        [] {
          mproc::Event e1;
          mproc::Event e2;
          return pair_runner({
              .pin = Pin::kSame,
              .before = {},
              .self = [e1, e2](std::uint64_t n) mutable { event_pingpong_a(e1, e2, n); },
              .partner = [e1, e2](std::uint64_t n) mutable { event_pingpong_b(e1, e2, n); },
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
