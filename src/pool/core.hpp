// pool/core.hpp — PoolCore's state: the parts of a Pool, put together (see core.cpp).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <mproc/detail/pool_core.hpp>
#include <mproc/pool.hpp>

#include "pool/channels.hpp"
#include "pool/dispatcher.hpp"
#include "pool/launcher.hpp"

namespace mproc::detail {

// Members in the order of their making; destroyed in reverse: the dispatcher (whose result thread
// has ended or been detached by then), the launcher (its process is gone by then, or killed), the
// channels.
struct PoolCore::Impl {
  Impl(int processes, PoolInitializer init, int max_tasks, StartMethod method,
       const PoolOptions& options);
  ~Impl();

  // ProcessError unless called in the process that created the Pool.
  void check_owner() const;

  // The launcher's WorkerMain (`ctx`: this): runs in a new worker process of `slot`, which
  // inherited the Pool's state, and hands the worker loop its inputs and nothing else.
  [[noreturn]] static void worker_main(void* ctx, int slot) noexcept;
  // The launcher of the pool's workers (fresh: the zygote in a fresh image of the method).
  static std::unique_ptr<WorkerLauncher> make_launcher(Impl& im, StartMethod method);
  // The launcher's ExitReport (`ctx`: the result queue): runs in the zygote and touches only the
  // result queue. Never waits: false when the queue has no room now (the launcher tries again).
  static bool report_exit(void* ctx, int slot, int pid, int code, int error,
                          const char* call) noexcept;
  // The result thread's last act when the pool was abandoned in a callback (`ctx`: this).
  static void destroy(void* ctx) noexcept;

  const int n;
  const Ref<ProcessTarget> init_target;
  const std::function<void()> initializer;  // runs init_target (fork: in each worker, once)
  const bool fresh;                         // workers are fresh images (spawn, forkserver)
  const StartMethod start_method;
  const int maxtasks;
  const Ref<ProcessTarget> exit_hook;  // PoolOptions::worker_exit (null: none)
  const bool daemon;                   // PoolOptions::daemon
  const bool insights;                 // PoolOptions::insights
  const pid_t creator_pid;
  PoolChannels channels;
  std::unique_ptr<WorkerLauncher> launcher;
  Dispatcher dispatcher;
};

// The dispatcher of a Pool's core (Pool::insights, Pool::exit_results). Throws ProcessError in
// another process than the Pool's creator.
Dispatcher& dispatcher_of(const PoolCore& core);

}  // namespace mproc::detail
