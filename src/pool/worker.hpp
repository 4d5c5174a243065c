// pool/worker.hpp — the worker loop: runs in a worker process, whatever started it.
//
// The loop needs only its inputs: where tasks come from, where results go, the channel that
// carries the descriptors of large payloads, its slot's staging record, and the initializer. It
// reads nothing of the parent's bookkeeping and no global of the Pool, so the same loop runs in a
// worker forked by the zygote (today), in a re-executed program (spawn) or in an MPI rank, once
// that start method has rebuilt these inputs.
#pragma once

#include <functional>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>

#include "pool/protocol.hpp"

namespace mproc::detail {

struct WorkerInputs {
  int slot = -1;                       // the worker slot, named in every event it sends
  Queue<TaskMsg>* tasks = nullptr;     // task source: the slot's mailbox
  Queue<EventMsg>* results = nullptr;  // result sink: the Pool's result queue
  int descriptors = -1;                // descriptor channel: the worker end of the slot's pair
  SlotShared* shared = nullptr;        // the slot's record and staging areas
  const std::function<void()>* initializer =
      nullptr;       // runs once before the first task; may be empty
  int maxtasks = 0;  // leave after this many tasks (0: never)
  // Runs when the worker leaves normally (stop message, maxtasks); null: none. Its value
  // (detail::exit_hook_value) or its error goes to the parent (kExitValue, kExitFailed).
  ProcessTarget* exit_hook = nullptr;
  // false: the worker may start processes of its own (PoolOptions::daemon).
  bool daemon = true;
  // Measure the worker's figures (SlotShared::figures durations); tasks are counted always.
  bool insights = false;
  // The worker is a fresh image of the program (spawn, forkserver): invokers are code references
  // to relocate (TaskMsg), not addresses.
  bool fresh = false;
};

// Runs the initializer, reports kReady (or kInitFailed and leaves), then runs tasks from `in.tasks`
// one at a time until the stop message, a broken channel, or `maxtasks`. Never returns: the
// process ends with _exit after stdio is flushed (0: stopped or maxtasks; 1: the initializer
// threw; 70-72: a channel failed).
[[noreturn]] void run_worker(const WorkerInputs& in) noexcept;

// Sets whether the calling process is daemonic (may not start children): a worker of a pool
// whose PoolOptions::daemon is false clears the flag it inherited from the zygote. Defined in
// src/process.cpp.
void set_daemonic(bool daemon) noexcept;

}  // namespace mproc::detail
