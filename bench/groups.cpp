// bench/groups.cpp — every group of workloads: what one op is, and the target mproc must meet.
//
// The order here is the order of the table. A group is one operation done several ways (mproc, the
// raw-syscall floor, CPython's multiprocessing); bench/compare.py reads this list from
// `bench --list`. Targets are cost ratios or bounds on mproc's figure, see harness.hpp
// (and "mproc/manual", the main row against the group's best manual-chunksize row, in compare.py).
#include "codec_record.hpp"
#include "harness.hpp"
#include "protocols.hpp"

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
      // The start methods (workloads_start.cpp, floors_start.cpp, python/anchors_start.py),
      // isolated as process.start_join. spawn's floor is an exec of a C++ program that exits at
      // once; a forkserver's child is a fork of the server, so its floor is the raw fork's. The
      // forkserver rows start their server before the clock runs; its cost is the next group's.
      {"process.start_join_spawn",
       "start + join of a child started with spawn (the program run again) that does nothing",
       "mproc<=1ms", true},
      {"process.start_join_forkserver",
       "start + join of a child started with forkserver (server already running) that does "
       "nothing",
       "mproc/floor<=1.5", true},
      {"process.forkserver_first_start",
       "start + join of the first forkserver child of a process: the server's spawn included", "",
       true},
      // Throughput groups: one op is one message (the clock runs from the start of the transfer to
      // its end, producers and consumers running at once); compare.py also shows the rate.
      {.name = "queue.spsc_64B",
       .op = "one 64-byte message from 1 producer to 1 consumer on 2 CPUs, put / get one at a time",
       .target = "mproc<=100ns",
       .rate = Rate::kMessages},
      {.name = "queue.spsc_64B_batch",
       .op = "one 64-byte message from 1 producer to 1 consumer on 2 CPUs, put_many / get_many "
             "of up to 256",
       .target = "mproc<=20ns",
       .rate = Rate::kMessages},
      {.name = "queue.mpsc_64B",
       .op = "one 64-byte message from 4 producers to 1 consumer (5 processes; CPUs as the "
             "scheduler places them)",
       .target = "",
       .rate = Rate::kMessages},
      {.name = "queue.spmc_64B",
       .op = "one 64-byte message from 1 producer to 4 consumers (5 processes; CPUs as the "
             "scheduler places them)",
       .target = "",
       .rate = Rate::kMessages},
      {.name = "queue.spsc_64KiB",
       .op = "one 64 KiB message from 1 producer to 1 consumer on 2 CPUs",
       .target = "mproc>=5GB/s",
       .rate = Rate::kBytes,
       .bytes_per_op = kBulkBytes},
      {.name = "queue.roundtrip",
       .op = "one round trip of a 64-byte message between 2 processes on 1 CPU through 2 queues "
             "that sleep at once (A: put q1, get q2; B: get q1, put q2)",
       .target = "mproc/floor<=1.5"},
      {.name = "queue.roundtrip_spin",
       .op = "one round trip of a 64-byte message between 2 processes on 2 CPUs through 2 queues "
             "that spin before they sleep",
       .target = ""},
      {.name = "pipe.roundtrip",
       .op = "one round trip of a small value between 2 processes on 1 CPU over a duplex pipe "
             "(A: send, recv; B: recv, send)",
       .target = ""},
      // Codec groups: a Record (codec_record.hpp: a 24-character std::string and a
      // std::vector<double>) through mproc's codec, and through cereal's binary archive as the
      // anchor (anchors_cereal.cpp); both write the same bytes. One process, no partner.
      {.name = "codec.encode_168B",
       .op = "one Record of 16 doubles (168 bytes) encoded into a buffer made once: encoded_size "
             "+ encode",
       .target = "",
       .rate = Rate::kBytes,
       .bytes_per_op = record_bytes(kSmallValues)},
      {.name = "codec.decode_168B",
       .op = "one Record of 16 doubles (168 bytes) decoded into a new Record",
       .target = "",
       .rate = Rate::kBytes,
       .bytes_per_op = record_bytes(kSmallValues)},
      {.name = "codec.encode_8KiB",
       .op = "one Record of 1024 doubles (8232 bytes) encoded into a buffer made once: "
             "encoded_size + encode",
       .target = "",
       .rate = Rate::kBytes,
       .bytes_per_op = record_bytes(kLargeValues)},
      {.name = "codec.decode_8KiB",
       .op = "one Record of 1024 doubles (8232 bytes) decoded into a new Record",
       .target = "",
       .rate = Rate::kBytes,
       .bytes_per_op = record_bytes(kLargeValues)},
      {.name = "codec.queue_168B",
       .op = "one Record of 16 doubles (168 bytes) put on a Queue and got back, one process",
       .target = "",
       .rate = Rate::kBytes,
       .bytes_per_op = record_bytes(kSmallValues)},
      {.name = "codec.queue_8KiB",
       .op = "one Record of 1024 doubles (8232 bytes) put on a Queue and got back, one process",
       .target = "",
       .rate = Rate::kBytes,
       .bytes_per_op = record_bytes(kLargeValues)},
      // Pool groups: each row makes its Pool (one worker per usable CPU) once, outside the clock.
      {.name = "pool.apply_async_noop",
       .op = "one no-op task: apply_async (submit), n of them, then get() each",
       .target = "mproc<=5us"},
      {.name = "pool.imap_chunk1",
       .op = "one item of imap(identity, range(n)) with chunksize 1, consumed in order",
       .target = "mproc<=3us"},
      {.name = "pool.imap_adaptive",
       .op = "one item of imap(identity, range(n)) with the default chunksize (mproc: adaptive; "
             "python: 1), consumed in order",
       .target = ""},
      {.name = "pool.map_noop_1e6",
       .op = "one item of map(identity, range(10^6)) with the automatic chunksize",
       .target = "python/mproc>=5"},
      // The floor is the serial loop divided by the CPU count, so mproc/floor <= 1.11 is a speedup
      // over the serial loop of at least 0.9 x the CPUs.
      {.name = "pool.cpu_bound",
       .op = "one of 64 equal CPU-bound tasks (5 ms of CPU time each) in a map with chunksize 1",
       .target = "mproc/floor<=1.11"},
      {.name = "pool.cpu_bound_uneven",
       .op = "one of 64 CPU-bound tasks whose CPU times cycle through 1, 2, 4, 8 and 16 ms, in a "
             "map with chunksize 1",
       .target = "mproc/floor<=1.11"},
      {.name = "pool.imap_uneven",
       .op = "one of the 64 uneven CPU-bound tasks of pool.cpu_bound_uneven in "
             "imap_unordered with the default chunksize (mproc: adaptive; python: 1)",
       .target = "mproc/floor<=1.11"},
      {.name = "pool.imap_first_result",
       .op = "imap(identity, unbounded input) started, until its first result is returned",
       .target = ""},
      {.name = "pool.map_throwing",
       .op = "one element of map(f, range(10^5)) whose f throws for every element (the map "
             "throws the first RemoteError; timed until every element has failed): an element's "
             "failure, traceback included",
       .target = ""},
      // Futures (workloads_futures.cpp, anchors_futures.py).
      {.name = "pool.as_completed_noop",
       .op = "one no-op future: submit, then handed out by as_completed (mproc::as_completed; "
             "python: concurrent.futures.as_completed with ProcessPoolExecutor)",
       .target = ""},
      {.name = "pool.cancel_queued",
       .op = "one no-op task submitted while every worker is busy, then cancel() (withdrawn, "
             "never run)",
       .target = ""},
      // The automatic chunksize of map against manual ones: the main row uses the automatic
      // chunksize, the rows named "<group>/mproc.chunksize<N>" a manual one, and the target
      // "mproc/manual<=1.5" bounds the main row's time by 1.5x the best manual row's.
      {.name = "pool.map_small",
       .op = "one item of map(identity, range(10^6)): the automatic chunksize, and manual ones",
       .target = "mproc/manual<=1.5"},
      {.name = "pool.map_large",
       .op = "one 40 KB std::string of map(count of one byte value, 900 strings of 40 KB = 36 MB): "
             "the automatic chunksize, manual ones, and the same strings through a plain Queue",
       .target = "mproc/manual<=1.5",
       .rate = Rate::kBytes,
       .bytes_per_op = 40'000},
      // A pool's whole life under each start method (workloads_start.cpp, anchors_start.py): 2
      // workers made, one task's result taken, close() + join(); forkserver's server is started
      // before the clock runs.
      {.name = "pool.lifecycle_fork",
       .op = "Pool(2) with fork made, the result of one task, close() + join()",
       .target = "python/mproc>=10"},
      {.name = "pool.lifecycle_spawn",
       .op = "Pool(2) with spawn made, the result of one task, close() + join()",
       .target = "python/mproc>=10"},
      {.name = "pool.lifecycle_forkserver",
       .op = "Pool(2) with forkserver (server running) made, the result of one task, close() + "
             "join()",
       .target = "python/mproc>=10"},
  };
  return all;
}

}  // namespace mproc_bench
