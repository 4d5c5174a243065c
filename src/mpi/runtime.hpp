// mpi/runtime.hpp — the MPI job as mproc::mpi sees it: set up by mproc::init (runtime.cpp), used by
// rank 0's pools (engine.cpp). Private to mproc::mpi.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "mpi/link.hpp"

namespace mproc::mpi::detail {

struct Runtime {
  bool launched = false;
  int rank = 0;
  int size = 1;
  int node_ranks = 1;  // ranks on this node (MPI_COMM_TYPE_SHARED)
  std::string host;
  MPI_Comm comm = MPI_COMM_NULL;  // the pools' duplicate of MPI_COMM_WORLD
  Link* link = nullptr;           // on comm; used by one thread at a time
  // Rank 0: a pool is open (one at a time), and its unfinished tasks (for the report when the
  // launcher ends the job).
  std::atomic<bool> pool_open{false};
  std::atomic<std::uint64_t> unfinished{0};
};

Runtime& runtime() noexcept;

// How rank 0's communication thread and the serving ranks wait for MPI, which they poll (Open
// MPI's blocking calls spin): they yield for kSpinNs after the last message, then sleep between
// polls for an eighth of the time they have been idle, from 10 µs to 1 ms.
inline constexpr std::int64_t kSpinNs = 50'000;
inline std::int64_t idle_sleep_ns(std::int64_t idle_ns) noexcept {
  return std::clamp<std::int64_t>(idle_ns / 8, 10'000, 1'000'000);
}

// This machine's name (gethostname), for the report of a local pool.
std::string local_host();

}  // namespace mproc::mpi::detail
