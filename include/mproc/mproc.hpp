// mproc/mproc.hpp — the umbrella header: everything mproc offers.
// clang-format off
//
//   Process and friends     <mproc/process.hpp>        multiprocessing.Process
//   Locks and friends       <mproc/sync.hpp>           multiprocessing.synchronize
//   Shared memory           <mproc/shared_memory.hpp>  multiprocessing.shared_memory, sharedctypes
//   Queues                  <mproc/queue.hpp>          multiprocessing.Queue, SimpleQueue, JoinableQueue
//   Pipe, Connection, wait  <mproc/pipe.hpp>           multiprocessing.Pipe, connection.wait
//   Pool                    <mproc/pool.hpp>           multiprocessing.Pool, ProcessPoolExecutor
//   Values as bytes         <mproc/codec.hpp>          (pickle's role)
//     more std types        <mproc/codec/map.hpp>, set, unordered_map, unordered_set, deque,
//                           list, variant: opt-in, each with its standard header (codec.hpp)
//   Start methods           <mproc/start_method.hpp>   set_start_method, get_context, init
//   Exceptions              <mproc/errors.hpp>
// clang-format on
#pragma once

#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <mproc/futures.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/partial.hpp>
#include <mproc/pipe.hpp>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/start_method.hpp>
#include <mproc/sync.hpp>
#include <mproc/worker.hpp>
