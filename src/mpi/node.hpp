// mpi/node.hpp — one rank's share of an MPI pool: a local mproc pool that runs the tasks rank 0
// sends, and the outcomes it gives back (private to mproc::mpi).
//
// The same class serves on the ranks other than 0 (runtime.cpp's serve loop sends its outcomes
// over MPI) and in rank 0 itself when rank 0 works too (the engine takes its outcomes directly).
// Its pool is an ordinary PoolCore with the fork start method, made after the rank has learnt rank
// 0's image table, so its workers (forks of the rank) resolve the code references that tasks
// carry; a task's outcomes reach the Node through a TaskSink on the local pool's result thread,
// which turns each into an Outcome (wire.hpp) in the outbox.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mproc/detail/pool_core.hpp>
#include <mproc/worker.hpp>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "mpi/wire.hpp"

namespace mproc::mpi::detail {

using mproc::detail::Invoker;
using mproc::detail::PoolCore;
using mproc::detail::Ref;
using mproc::detail::TaskSink;

// What an exception becomes on the wire, and back (in rank 0, naming the rank and host; `task`:
// the task's id in rank 0, for an error of a whole task).
WireError describe_error(const std::exception_ptr& e) noexcept;
std::exception_ptr rebuild_error(const WireError& e, int rank, const std::string& host,
                                 std::uint64_t task, bool whole_task);

// One address in each loaded object that has code (its first executable segment's start), in the
// loader's order: the program first.
std::vector<const void*> executable_starts();

// ProcessError when this process's program is not rank 0's (another build-id), naming both.
void check_same_program(const StartMsg& start);

// The workers a rank runs when PoolOptions::processes is not set (see mproc/mpi.hpp).
int default_workers(int ranks_on_node) noexcept;

class Node {
 public:
  // Learns `start.images` and resolves every probe (ProcessError when an image differs: another
  // binary), then starts a local pool of `workers` workers. `wake` runs (on the local pool's
  // result thread) when the outbox gets outcomes after being empty. Throws what the local pool's
  // constructor throws.
  Node(const StartMsg& start, int workers, bool learn, std::function<void()> wake);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  [[nodiscard]] int workers() const noexcept { return workers_; }
  // Submits the tasks to the local pool. A task whose invoker cannot be resolved fails alone.
  void submit(std::vector<WireTask>& tasks);
  // The same, for tasks of this process (rank 0): invokers are addresses here.
  void submit_local(std::vector<mproc::detail::TaskSpec>& specs, std::vector<std::uint64_t>& ids);
  // Cancel or running (Dispatcher::cancel / running) of the tasks `ids` this rank holds.
  bool query(const QueryMsg& q);
  // Stops the local pool: join (`kill` false: every task submitted has had its outcome), or
  // terminate. Its outcomes are in the outbox afterwards.
  void stop(bool kill) noexcept;
  // Moves the outcomes gathered so far to `out` (appended).
  void take(std::vector<Outcome>& out);
  // Waits until the outbox has outcomes or `ns` have passed (ns < 0: forever).
  void wait(std::int64_t ns);

  // Insights of the local pool (rank 0's, for Pool::insights).
  [[nodiscard]] Insights insights() const;

 private:
  class Sink;
  void put(Outcome&& o);
  // The task `id` has its outcome (a whole task), or `done` more of its elements have theirs
  // (true when none is left).
  void forget(std::uint64_t id, std::uint64_t, bool);
  bool forget_elements(std::uint64_t id, std::uint64_t done);
  // The local pool's id of rank 0's task `id` (0: not held).
  std::uint64_t local_id(std::uint64_t id);

  int workers_ = 0;
  Ref<PoolCore> core_;
  Ref<TaskSink> sink_;
  std::function<void()> wake_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Outcome> outbox_;
  // Rank 0's id -> the local pool's id and the elements still without an outcome (1 for a task).
  struct Held {
    std::uint64_t local = 0;
    std::uint64_t left = 0;
  };
  std::unordered_map<std::uint64_t, Held> held_;
};

}  // namespace mproc::mpi::detail
