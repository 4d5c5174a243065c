// mproc/mpi.hpp — the Pool over the ranks of an MPI job (target mproc::mpi; Open MPI).
//
// The same Pool, on many machines: `mproc::mpi::Pool` is an mproc::Pool (apply, apply_async,
// submit, map, map_async, starmap, imap, imap_unordered, callbacks, progress bars, adaptive
// chunks, cancel, as_completed/wait, time limits) whose workers are spread over the ranks of an
// MPI job. Each rank drives a local mproc Pool over its share of its node's cores, so a task
// travels over MPI between nodes and through shared memory within one (the hybrid layout).
//
//     int main(int argc, char** argv) {
//       mproc::init(argc, argv);          // ranks other than 0 serve here, and never return
//       mproc::mpi::Pool pool;            // rank 0: workers on every rank
//       auto squares = pool.map(square, std::views::iota(0, 1000));
//     }
//
//     mpirun -np 4 --map-by node --bind-to none ./app     one rank per node: hybrid
//     mpirun -np 16 ./app                                  one rank per core: one worker each
//
// SPMD launch, no MPI_Comm_spawn. Including this header makes mproc::init MPI-aware: under mpirun
// (or mpiexec, srun: any launcher that sets OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK) init
// calls MPI_Init_thread (MPI_THREAD_MULTIPLE asked, MPI_THREAD_SERIALIZED at least, or init
// throws ProcessError). On ranks other than 0 init never returns: the rank serves the pools that
// rank 0 makes, one after another, and exits (status 0) when rank 0's program ends (its exit()
// or return from main; MPI_Finalize on every rank). Rank 0 returns from init and runs the
// program. A program may use MPI itself after init (it must not call MPI_Init again), on
// MPI_COMM_WORLD; the pools talk on a duplicate of it.
//
// Without a launcher (`./app`), init does not touch MPI and mpi::Pool is a local pool of this
// machine's cores: the same program runs on a laptop and on a cluster. Decided: local workers,
// not an error, because the program's results are the same and only its speed differs.
//
// Workers per rank: PoolOptions::processes if set (each rank runs that many); otherwise the cores
// this rank may run on (its affinity mask), divided among the ranks of its node that share them:
// a rank bound to one core (mpirun's default for -np <= 2, or --bind-to core) runs one worker; an
// unbound rank (--bind-to none) alone on its node runs one per core. MpiOptions::rank0_works
// false leaves rank 0 to dispatch only.
//
// What travels (as under the spawn start method): the callable of a task as relocatable code
// references, checked by build-id, so every rank must run the same binary and libraries — a
// mismatch is a ProcessError from the constructor naming the rank, its host and the image; the
// arguments and results through mproc::codec, of any size (a message larger than
// MpiOptions::piece_bytes, 1 GiB by default, travels in pieces: MPI counts are int). What cannot
// travel: mproc handles (Queue, Lock, SharedMemory, ...) among a task's arguments or the
// initializer (they are views of this machine's memory): ValueError at submit; a lambda with
// captures (ValueError, as under spawn; use mproc::partial). The initializer and worker_exit hook
// run in every worker of every rank.
//
// Failures. A task that throws fails only itself: RemoteError, whose what() and rank()/host()
// name the rank and host ("... (in worker pid 4711 on rank 2, host node7, task 12)"). A worker
// killed inside a rank's pool fails only its task (WorkerLost, naming the rank), and is replaced;
// time limits and cancel(kill_running) kill and replace workers on any rank. A rank that dies:
// Open MPI without ULFM ends the whole job (mpirun kills every rank). Rank 0 reports it: a rank of
// its own host at once ("mproc::mpi: rank 2 (pid 4711, this host) died; Open MPI ends the whole
// job (no ULFM); 12 task(s) of the pool unfinished", rank 0 watches them through pidfds), and any
// rank when the launcher's SIGTERM comes ("mproc::mpi: the MPI job is being ended by its launcher
// (a rank died, or mpirun was interrupted); ..."); the other ranks die of that SIGTERM 300 ms
// late, so that mpirun's SIGKILL cannot come before rank 0 has written it. Every rank exits, each
// local pool's workers with it (they die with their rank). Ctrl-C to mpirun ends every rank the
// same way. These handlers are installed only where SIGTERM was left at its default, and forks of
// rank 0 (its workers) do not report.
//
// Threads and calls. Rank 0 runs one communication thread per pool: it sends tasks, receives
// outcomes and runs the callbacks (as a Pool's result thread does: keep them short). When
// nothing is in flight it sleeps; while tasks are out it polls MPI, sleeping between polls once
// no message has come for a while (up to 1 ms), so an idle rank costs no core. Each rank keeps at
// most a window of tasks (MpiOptions::window per worker; by default 2 for tasks that take over a
// millisecond, up to 32 for short ones, measured as they run), so a slow rank cannot hoard work.
//
// Python counterpart: mpi4py.futures.MPIPoolExecutor, with multiprocessing.Pool's calls.
#pragma once

#include <cstddef>
#include <mproc/export.hpp>
#include <mproc/pool.hpp>
#include <mproc/start_method.hpp>
#include <string>
#include <vector>

namespace mproc::mpi {

// How a pool uses the ranks (beside the PoolOptions of each rank's local pool).
struct MpiOptions {
  // Rank 0 runs workers too (false: it only dispatches, as mpi4py.futures' master).
  bool rank0_works = true;
  // Tasks (a chunk of map/imap is one) in flight per worker of a rank; 0: adaptive (2 for tasks
  // over 1 ms, 8 under, 32 under 0.1 ms). Negative throws ValueError.
  int window = 0;
  // The largest piece of one message over MPI; a larger message is sent in pieces of this size.
  // 0: 1 GiB. Tests lower it to exercise the pieces.
  std::size_t piece_bytes = 0;
};

// True when this program was started by an MPI launcher and init made it an MPI job.
MPROC_API bool launched() noexcept;
// This process's rank in MPI_COMM_WORLD (0 when not launched) and the number of ranks (1).
MPROC_API int rank() noexcept;
MPROC_API int size() noexcept;
// This machine's host name (MPI_Get_processor_name, or gethostname when not launched).
MPROC_API std::string host();

// A Pool over every rank of the job (see the header comment). Constructed on rank 0 only (on
// another rank it throws ProcessError: those serve in init). Blocks until every rank's local pool
// has started its workers. Throws ValueError for bad options (PoolOptions as Pool's, and
// start_method other than empty or fork: each rank's pool is forked from the rank); ProcessError
// when a rank runs another binary, or cannot start its workers (naming the rank, its host and
// why); ProcessError when another mpi::Pool of this program is still open (one at a time: the
// ranks serve one pool).
class MPROC_API Pool : public mproc::Pool {
 public:
  explicit Pool(PoolOptions options = {}, MpiOptions mpi = {});
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept = default;

  // The workers of each rank (index: rank; 0 for rank 0 when MpiOptions::rank0_works is false).
  // processes() is their sum.
  [[nodiscard]] const std::vector<int>& workers_per_rank() const noexcept { return per_rank_; }

 private:
  std::vector<int> per_rank_;
};

namespace detail {
// Makes mproc::init MPI-aware (see the header comment); run once by the inline variable below, in
// every program that includes this header.
MPROC_API bool install_init_hook() noexcept;
inline const bool init_hook_installed = install_init_hook();
}  // namespace detail

}  // namespace mproc::mpi
