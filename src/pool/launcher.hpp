// pool/launcher.hpp — how a Pool obtains its worker processes (private to the library).
//
// The Pool core never creates a worker itself: it asks a `WorkerLauncher` to start one for a slot
// and hears of each worker's exit through a callback that runs on the launcher's side. Only the
// launcher knows how a worker comes to exist, so another start method (spawn, forkserver, an MPI
// back end) replaces `ZygoteLauncher` without touching the Pool.
//
// What a worker needs from the Pool is WorkerInputs (worker.hpp), which the fork launcher passes
// by inheritance and a launcher that re-executes the program would have to rebuild: the
// descriptors of its mailbox's and of the result queue's memfds (mproc::Queue keeps them for
// that), the worker end of its slot's descriptor channel (large payloads), its slot's staging
// record, the initializer, and a way to turn invoker addresses into the new image's (ASLR: an
// offset from a known symbol).
#pragma once

#include <memory>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/process.hpp>

namespace mproc::detail {

// Runs in a new worker process for `slot`; must end the process itself (it never returns).
using WorkerMain = void (*)(void* ctx, int slot) noexcept;
// Runs on the launcher's side when the worker of `slot` has ended and been reaped. `exitcode`
// uses Process::exitcode()'s encoding (-N: killed by signal N); kExitUnknown when it could not be
// read; kSpawnFailed when no replacement worker could be created for the slot (pid 0 then, and
// `error` is the errno of the system call `call` that failed; otherwise 0 and nullptr).
// Returns false when the report cannot be delivered now (the result queue is full): the launcher
// then keeps it and tries again a few milliseconds later, reports of one launcher in order, while
// it goes on obeying its commands. A report never waits for room, so a launcher told to kill its
// workers does so promptly whatever the Pool's result thread is doing.
using ExitReport = bool (*)(void* ctx, int slot, int pid, int exitcode, int error,
                            const char* call) noexcept;

inline constexpr int kSpawnFailed = -100000;
// The worker ended but its exit status could not be read (SIGCHLD ignored, or reaped by another
// waiter).
inline constexpr int kExitUnknown = -100001;

class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;
  // Starts the launcher and one worker per slot, and returns once every one of them exists.
  // Called once, by the Pool's constructor, before the Pool starts any thread. Throws
  // std::system_error naming what could not be created, the system call and the errno
  // ("mproc::Pool: cannot start worker 3 of 4: fork: Resource temporarily unavailable (EAGAIN)"),
  // or ProcessError (in a daemonic process); it then leaves nothing behind (no process, no
  // descriptor).
  virtual void start() = 0;
  // Asks for a (replacement) worker in `slot`. Does not block on the worker's start.
  virtual void spawn(int slot) noexcept = 0;
  // No more spawns: the launcher waits for its workers to leave on their own (a bounded time,
  // after which it kills them), then ends.
  virtual void quit() noexcept = 0;
  // Kills every worker now, reaps them, then ends.
  virtual void kill_all() noexcept = 0;
  // Kills the worker of `slot` if it is still the process `pid` (a task's cancel or timeout); its
  // exit is reported as any other, and a replacement is asked for as usual.
  virtual void kill_worker(int slot, int pid) noexcept = 0;
  // Waits until the launcher has ended (true), or until `deadline` (false).
  virtual bool wait(const Expiry& deadline) noexcept = 0;
  // Ends the launcher at once (SIGKILL), and waits for it.
  virtual void force_end() noexcept = 0;
  // False once the launcher has ended (for whatever reason).
  virtual bool alive() noexcept = 0;
};

// The fork start method: a single-threaded "zygote" process, forked when the Pool is created and
// before the Pool starts its threads, forks the workers and their replacements on request over a
// socket, watches them with pidfds, reaps them and reports their exits. Workers are killed when the
// zygote dies (PR_SET_PDEATHSIG), and the zygote when the Pool's process dies (it watches it
// through a pidfd; start() returns once it does, so the thread that created the Pool may end) or
// when the Pool's end of the socket closes.
//
// With `fresh` (start method spawn or forkserver) the zygote is itself a fresh image of the
// program: it is started as a Process of that method whose arguments are the Pool's channels (the
// queues travel as handles, the descriptor channels' worker ends and the staging memfd as
// descriptors) and the initializer, and its workers run the worker loop on what it decoded (`main`
// and `main_ctx` are not used then: they point into this process). Its workers are forks of that
// fresh image, so no worker ever inherits the Pool's process's threads, locks or memory.
struct PoolChannels;
struct FreshZygoteInputs {
  StartMethod method = StartMethod::spawn;
  PoolChannels* channels = nullptr;
  Ref<ProcessTarget> initializer;  // null: none
  int maxtasks = 0;
  Ref<ProcessTarget> exit_hook;  // PoolOptions::worker_exit; null: none
  bool daemon = true;            // PoolOptions::daemon
  bool insights = false;         // PoolOptions::insights
};
std::unique_ptr<WorkerLauncher> make_zygote_launcher(int slots, WorkerMain main, void* main_ctx,
                                                     ExitReport report, void* report_ctx,
                                                     const FreshZygoteInputs* fresh = nullptr);

}  // namespace mproc::detail
