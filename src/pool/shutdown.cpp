// The Pool's shutdown policy, in one place: close, join, terminate, and what the destructors do.
//
//   close()      refuses new tasks (an imap started before goes on submitting its input, as
//                `continuation`, until join() stops the workers). Nothing to fail.
//   join()       waits until every accepted task has been delivered, then stops the pool
//                gracefully: a stop message in each mailbox, the launcher told to quit (its
//                workers leave; after 10 s it kills the rest). ValueError while running, or from
//                a callback (it would wait for the callback's own task).
//   terminate()  fails every unfinished task with BrokenPool, then stops the pool at once: the
//                launcher kills and reaps every worker. Returns promptly whatever the tasks do,
//                and works from a callback (the result thread is then not joined: it ends by
//                itself after its batch). It also wakes a join() waiting on another thread,
//                which then waits for terminate() to finish instead of holding it up.
//   Both stop the pool through shut_down(), serialised by shutdown_mu_; the second does nothing.
//
// Errors swallowed, and why:
//   * The stop message (join): put with a 1 s limit, errors dropped. A mailbox that stays full or
//     fails belongs to a worker that is stuck or dead; the launcher's quit grace (10 s, then kill)
//     ends it anyway, and nothing else could be done with the error.
//   * The kQuit event to the result thread: try_put, errors dropped. The result queue can be full
//     while the result thread is busy (in a callback, or this is the result thread) and a worker
//     streaming a large result holds its producer side: waiting for room could deadlock. The
//     thread also reads quit_requested_ after every batch, so the event only wakes it earlier.
//   * The launcher's wait/force_end are noexcept: a launcher that does not end within
//     kLauncherGrace is killed; a kill cannot fail in a way worth reporting.
//   * Destructors (~Pool, Pool's move assignment, ~PoolCore) are close() + join() with every
//     exception dropped, since a destructor must not throw. The exceptions possible there:
//     ProcessError in a plain fork() of the creator (~PoolCore then leaves the creator's pool
//     alone: it must not stop the creator's workers), ValueError from join() in a callback
//     (~PoolCore then terminates instead and lets the result thread delete the state), and
//     std::system_error/std::bad_alloc from a pool already failing, whose tasks fail through
//     their own results.
// The destructor finishes submitted work (close + join), unlike Python's context manager, which
// terminates: a C++ scope that ends should not silently discard the work it started.
#include <chrono>
#include <mproc/interrupt.hpp>
#include <mproc/pool.hpp>
#include <mutex>

#include "pool/core.hpp"
#include "pool/engine.hpp"
#include "posix/thread_id.hpp"

namespace mproc::detail {
namespace {

// How long join() and terminate() wait for the launcher before killing it.
constexpr auto kLauncherGrace = std::chrono::seconds(30);
// How long a stop message may wait for room in a mailbox.
constexpr auto kStopPutLimit = std::chrono::seconds(1);

// The destructors' close() + join(), every exception dropped (see above).
void close_and_join_quietly(PoolCore& core) noexcept {
  try {
    core.close();
    core.join();
  } catch (...) {
  }
}

}  // namespace

void Dispatcher::close() {
  Guard g(mu_);
  if (state_ == State::kRunning) state_ = State::kClosed;
}

void Dispatcher::terminate() {
  {
    // Wakes a join() waiting for the tasks, so that it does not hold up this terminate().
    Guard g(mu_);
    if (finished_) return;
    state_ = State::kTerminated;
  }
  idle_cv_.notify_all();
  Guard serial(shutdown_mu_);
  std::vector<Delivery> out;
  {
    Guard g(mu_);
    if (finished_) return;
    stopping_ = true;
    auto e = std::make_exception_ptr(
        BrokenPool("mproc::Pool: the pool was terminated before the task finished"));
    for (auto& [id, entry] : tasks_) out.push_back(fail_all(entry, e));
    tasks_.clear();
    pending_.clear();
    take_stranded_locked(out);
  }
  shut_down(true);
  deliver(out);
}

// The waits use std::condition_variable on mu_'s native mutex, which the analysis cannot follow.
void Dispatcher::join() MPROC_NO_THREAD_SAFETY_ANALYSIS {
  if (on_result_thread())
    throw ValueError(
        "mproc::Pool: join() cannot be called from a callback (it would wait for "
        "the callback's own task)");
  {
    std::unique_lock<std::mutex> lk(mu_.native());
    if (finished_) return;
    if (state_ == State::kRunning) throw ValueError("mproc::Pool: Pool is still running");
    // Interruptible (<mproc/interrupt.hpp>): the pool stays closed and can be joined again.
    wait_interruptibly(
        idle_cv_, lk,
        [&]() MPROC_NO_THREAD_SAFETY_ANALYSIS {
          return undelivered_ == 0 || state_ == State::kTerminated;
        },
        "mproc::Pool::join");
    if (state_ == State::kTerminated) {
      // terminate() shuts the pool down: wait until it has.
      wait_interruptibly(
          idle_cv_, lk, [&]() MPROC_NO_THREAD_SAFETY_ANALYSIS { return finished_; },
          "mproc::Pool::join");
      return;
    }
  }
  Guard serial(shutdown_mu_);
  {
    Guard g(mu_);
    if (finished_) return;
  }
  shut_down(false);
}

// Stops the workers (gracefully unless `kill`), the launcher and the result thread.
void Dispatcher::shut_down(bool kill) {
  InterruptExempt exempt;  // once begun, a shutdown finishes (stop messages, launcher wait)
  {
    Guard g(mu_);
    stopping_ = true;
  }
  if (kill) {
    launcher_.kill_all();
  } else {
    for (auto& mb : ch_.mailboxes) {
      try {
        mb.put(TaskMsg{}, kStopPutLimit);
      } catch (...) {
      }
    }
    launcher_.quit();
  }
  if (!launcher_.wait(Expiry(deadline_after(kLauncherGrace)))) launcher_.force_end();
  launcher_.force_end();  // joins (reaps) it
  // The result thread ends after its current batch; kQuit wakes it if it waits for events.
  quit_requested_.store(true, std::memory_order_release);
  EventMsg q;
  q.kind = kQuit;
  try {
    (void)ch_.events.try_put(q);
  } catch (...) {
  }
  // From a callback (on the result thread) the thread cannot be joined: it ends on its own
  // after this batch and the destructor detaches it.
  if (collector_.joinable() && !on_result_thread()) collector_.join();
  detach_pool_link(*link_);  // results no longer reach this pool (their tasks are all done)
  {
    Guard g(mu_);
    finished_ = true;
  }
  idle_cv_.notify_all();
}

void Dispatcher::abandon() noexcept {
  try {
    terminate();
  } catch (...) {
  }
  orphaned_ = true;
  collector_.detach();
}

void Dispatcher::join_result_thread() noexcept {
  if (collector_.joinable()) collector_.join();
}

// --- PoolCore and Pool ---------------------------------------------------------------------------

void PoolCore::close() {
  if (engine_) return engine_->close();
  impl_->check_owner();
  impl_->dispatcher.close();
}

void PoolCore::terminate() {
  if (engine_) return engine_->terminate();
  impl_->check_owner();
  impl_->dispatcher.terminate();
}

void PoolCore::join() {
  if (engine_) return engine_->join();
  impl_->check_owner();
  impl_->dispatcher.join();
}

PoolCore::~PoolCore() {
  if (engine_) {
    engine_.release()->release();  // it stops, then frees itself
    return;
  }
  if (this_process_id() != impl_->creator_pid) {
    // A fork of the creator (not one of ours: ours never return) must not shut down the creator's
    // workers, nor touch a result thread it does not have. Its copy is left alone.
    (void)impl_.release();
    return;
  }
  if (impl_->dispatcher.on_result_thread()) {
    // The last owner let go inside one of the pool's callbacks: join() would wait for that very
    // callback, so the pool is terminated instead, and the result thread, which is still running
    // the callback, deletes the pool's state when it ends.
    impl_->dispatcher.abandon();
    (void)impl_.release();
    return;
  }
  close_and_join_quietly(*this);
  impl_->dispatcher.join_result_thread();
}

}  // namespace mproc::detail

namespace mproc {

Pool& Pool::operator=(Pool&& other) noexcept {
  if (this != &other) {
    if (core_) detail::close_and_join_quietly(*core_);
    core_ = std::move(other.core_);
  }
  return *this;
}

Pool::~Pool() {
  if (core_) detail::close_and_join_quietly(*core_);
}

}  // namespace mproc
