// pool/engine.hpp — what a PoolCore runs on: the local dispatcher, or another engine (mproc::mpi).
//
// PoolCore is the one facade the Pool's templates call (submit, cancel, close, join, ...). A Pool
// made by PoolCore(PoolOptions) runs on the local Dispatcher (dispatcher.hpp) and its worker
// processes; a Pool made by PoolCore(Box<PoolEngine>, ...) hands every call to that engine, so a
// Pool whose workers are elsewhere (the ranks of an MPI job: src/mpi/) keeps every call of the
// Pool's templates, its results, callbacks, progress bars, cancel and as_completed, unchanged.
//
// The engine's contract is the Dispatcher's (see dispatcher.hpp and PoolCore in
// mproc/detail/pool_core.hpp): outcomes go to each task's TaskSink, on one thread of the engine
// (callbacks run there); ids are consecutive from 1 in the order of submission; join() waits for
// every outcome to be delivered; terminate() fails what is unfinished with BrokenPool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/detail/pool_core.hpp>
#include <mproc/worker.hpp>
#include <vector>

namespace mproc::detail {

// What a result's PoolLink asks of the pool that runs its task (src/pool/cancel.cpp).
class TaskControl {
 public:
  virtual ~TaskControl() = default;
  // Tasks [first, first + count): see Dispatcher::cancel and Dispatcher::running.
  virtual bool cancel(std::uint64_t first, std::uint64_t count, bool kill_running) = 0;
  virtual bool running(std::uint64_t first, std::uint64_t count) = 0;
};

// A PoolLink bound to `control` (detach it when the engine stops taking requests).
MPROC_API Ref<PoolLink> make_pool_link(TaskControl* control);
MPROC_API void detach_pool_link(PoolLink& link) noexcept;

class PoolEngine : public TaskControl {
 public:
  // PoolCore::submit (ids: the first is returned, the others follow it).
  virtual std::uint64_t submit(std::vector<TaskSpec>& specs, const Ref<TaskSink>& sink,
                               bool continuation) = 0;
  [[nodiscard]] virtual std::size_t unfinished() const = 0;
  // Executor.shutdown(cancel_futures=True): withdraws every task not started.
  virtual void cancel_pending() = 0;
  virtual void close() = 0;
  virtual void terminate() = 0;
  virtual void join() = 0;
  [[nodiscard]] virtual const Ref<PoolLink>& link() const noexcept = 0;
  [[nodiscard]] virtual Insights insights() = 0;
  virtual std::vector<std::vector<std::byte>> exit_results() = 0;
  [[nodiscard]] virtual bool insights_on() const noexcept = 0;
  virtual void note_encoding(std::uint64_t tasks, std::int64_t ns) noexcept = 0;
  // Called by ~PoolCore: the last owner let go (perhaps on the engine's own delivery thread, in a
  // callback). The engine stops (terminate, as Pool's destructor does) and frees itself, at once
  // or, when called on its own thread, when that thread ends.
  virtual void release() noexcept = 0;
};

}  // namespace mproc::detail
