// pool/channels.hpp — what a Pool's parent and its workers share: the mailboxes, the result queue,
// the descriptor channels and the slots' staging records.
//
// Made by the parent before the launcher starts, so that every worker (and every replacement)
// inherits them; a launcher that re-executes the program would pass their descriptors instead
// (mproc::Queue keeps its memfd for that). The parent keeps its ends; the worker loop is given the
// ends of one slot (WorkerInputs, worker.hpp).
#pragma once

#include <cstddef>
#include <mproc/queue.hpp>
#include <vector>

#include "pool/protocol.hpp"

namespace mproc::detail {

struct PoolChannels {
  // Makes the channels of `n` worker slots. Throws std::system_error naming what could not be
  // made ("mproc::Pool: cannot create the mailbox of worker 2 of 2 (1 MiB of shared memory)"); what
  // was made goes with the object.
  // `fresh`: the workers are fresh images of the program (spawn, forkserver), which must map the
  // staging areas from a descriptor (`slot_shared_fd`) rather than inherit them.
  PoolChannels(int n, bool fresh);
  ~PoolChannels();
  PoolChannels(const PoolChannels&) = delete;
  PoolChannels& operator=(const PoolChannels&) = delete;

  // Once the launcher holds the workers' ends (its workers inherit them), the parent closes its
  // copies.
  void close_worker_ends() noexcept;

  Queue<EventMsg> events;                 // results and life events, read by the result thread
  std::vector<Queue<TaskMsg>> mailboxes;  // per slot: the tasks dispatched to it
  // Per slot, a SOCK_SEQPACKET pair that carries the memfds of large payloads: the parent sends on
  // fd_parent, the slot's worker receives on fd_worker.
  std::vector<int> fd_parent;
  std::vector<int> fd_worker;
  // Per slot, what its worker runs and has staged (anonymous shared memory, MAP_NORESERVE: the
  // staging bytes are touched only as far as results fill them).
  SlotShared* slot_shared = nullptr;
  std::size_t slot_shared_bytes = 0;
  int slot_shared_fd = -1;  // fresh: the memfd of the staging areas; -1 otherwise

 private:
  void make_fd_channels_and_staging(int n, bool fresh);
  void release() noexcept;
};

}  // namespace mproc::detail
