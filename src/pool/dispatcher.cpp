// The parent's dispatcher: submission, dispatch to the mailboxes, the result thread and delivery
// (see dispatcher.hpp). What each event does is in events.cpp; close/join/terminate in
// shutdown.cpp.
#include "pool/dispatcher.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mproc/interrupt.hpp>
#include <system_error>

#include "posix/error.hpp"
#include "posix/fd_passing.hpp"

namespace mproc::detail {
namespace {

// Tasks dispatched to a worker and not answered yet, at most.
constexpr std::size_t kMailboxDepth = 2;
// Errors of the result queue itself (not of one event) in a row before the pool is broken, and
// the pause between two attempts after the first.
constexpr int kQueueErrorsToBreak = 100;
constexpr auto kQueueErrorPause = std::chrono::milliseconds(10);
// How long the result thread waits for events before it checks that the launcher lives.
constexpr auto kEventWait = std::chrono::milliseconds(200);
// The same while tasks have time limits: how late a limit may be enforced, at most.
constexpr auto kWatchWait = std::chrono::milliseconds(5);
constexpr std::size_t kEventBatch = 64;

}  // namespace

Dispatcher::Dispatcher(int n, int maxtasks, bool has_initializer, PoolChannels& channels,
                       WorkerLauncher& launcher)
    : n_(n),
      maxtasks_(maxtasks),
      has_initializer_(has_initializer),
      ch_(channels),
      launcher_(launcher),
      slots_(static_cast<std::size_t>(n)),
      link_(make_pool_link(this)),
      totals_(static_cast<std::size_t>(n)) {}

void Dispatcher::start_result_thread(void (*on_orphaned_end)(void*) noexcept, void* arg) {
  on_orphaned_end_ = on_orphaned_end;
  orphaned_arg_ = arg;
  collector_ = std::thread([this] {
    InterruptExempt exempt;  // the pool's own thread: an interruption request is not for it
    collect();
    if (orphaned_) on_orphaned_end_(orphaned_arg_);  // deletes this dispatcher: the last step
  });
}

std::size_t Dispatcher::unfinished() const {
  Guard g(mu_);
  return undelivered_;
}

// --- submission and dispatch -------------------------------------------------------------------

std::uint64_t Dispatcher::submit(std::vector<TaskSpec>& specs, const Ref<TaskSink>& sink,
                                 bool continuation, std::size_t max_task_bytes) {
  bool wake = false;  // the dispatcher failed a task that the result thread must deliver
  std::uint64_t first = 0;
  {
    Guard g(mu_);
    if (!broken_.empty()) throw BrokenPool(broken_);
    if (stopping_)
      throw ValueError(continuation ? "mproc::Pool: the pool was joined or terminated before the "
                                      "imap's input was used up"
                                    : "mproc::Pool: Pool not running");
    if (state_ != State::kRunning && !continuation)
      throw ValueError("mproc::Pool: Pool not running");
    first = next_id_;
    add_locked(specs, sink, max_task_bytes);
    undelivered_ += specs.size();
    dispatch_locked();
    wake = !stranded_.empty();
  }
  // Its outcome is delivered (and its callbacks run) on the result thread: wake it.
  if (wake) wake_result_thread();
  return first;
}

// Records the tasks, all or none: on an allocation failure half-way, what was added is taken back.
void Dispatcher::add_locked(std::vector<TaskSpec>& specs, const Ref<TaskSink>& sink,
                            std::size_t max_task_bytes) {
  std::size_t added = 0;
  try {
    for (TaskSpec& s : specs) {
      TaskMsg t;
      t.id = next_id_;
      t.invoker = fresh_ ? pack_code_ref(code_ref_of(reinterpret_cast<const void*>(s.invoker)))
                         : reinterpret_cast<std::uint64_t>(s.invoker);
      t.fds = s.fds.size();
      // A payload too large for a mailbox gets its memfd when it is dispatched (dispatch_locked).
      if (s.payload.size() > max_task_bytes) t.big = s.payload.size();
      t.payload = std::move(s.payload);
      pending_.push_back(std::move(t));
      try {
        Entry e{sink, s.part, nullptr, 0, 0, {}, 0, {}, {}};
        e.fds = std::move(s.fds);
        e.invoker = t.invoker;
        e.limit_ns = s.limit_ns != 0 ? s.limit_ns : task_limit_ns_;
        e.element_clock = e.limit_ns != 0 && s.elements != 0;
        pending_.back().element_clock = e.element_clock;
        if (e.limit_ns != 0) watching_.store(true, std::memory_order_relaxed);
        if (s.elements != 0) {
          e.first = s.first;
          e.elements = s.elements;
          e.todo.push_back(Span{0, s.elements});
        }
        tasks_.emplace(next_id_, std::move(e));
      } catch (...) {
        pending_.pop_back();
        throw;
      }
      ++next_id_;
      ++added;
    }
  } catch (...) {
    for (; added > 0; --added) {
      tasks_.erase(pending_.back().id);
      pending_.pop_back();
    }
    throw;
  }
}

// The slot with the fewest tasks out that can take one more; -1 when none can.
int Dispatcher::least_loaded_locked() const {
  int best = -1;
  for (int s = 0; s < n_; ++s) {
    const Slot& sl = slots_[static_cast<std::size_t>(s)];
    if (sl.outstanding.size() >= kMailboxDepth || sl.killing) continue;
    if (maxtasks_ > 0 && sl.dispatched >= maxtasks_) continue;
    if (best < 0 ||
        sl.outstanding.size() < slots_[static_cast<std::size_t>(best)].outstanding.size())
      best = s;
  }
  return best;
}

// Gives pending tasks to the least-loaded mailboxes. A task whose payload is too large for a
// mailbox gets its memfd here, when it is first dispatched, not when it is submitted: memfds
// then exist only for tasks in the mailboxes or being run (at most kMailboxDepth per slot, plus
// one waiting for room and those drained from a dead worker's mailbox), whatever the number of
// large tasks submitted, so a map over many large elements holds a bounded number of
// descriptors. The rest wait in `pending_` as bytes in the parent's heap.
void Dispatcher::dispatch_locked() {
  if (stopping_ || !broken_.empty()) return;
  while (!pending_.empty()) {
    const int best = least_loaded_locked();
    if (best < 0) return;
    const auto slot = static_cast<std::size_t>(best);
    TaskMsg& t = pending_.front();
    if (tasks_.find(t.id) == tasks_.end()) {  // cancelled while it waited here
      pending_.pop_front();
      continue;
    }
    Region* big = nullptr;
    if (t.big != 0) {
      switch (prepare_big_locked(t, big)) {
        case BigPayload::kReady:
          break;
        case BigPayload::kFailed:
          pending_.pop_front();
          continue;
        case BigPayload::kLater:
          return;
      }
    }
    // Recorded before the put (this may throw std::bad_alloc; nothing after the put does), so
    // a task in a mailbox is always one the bookkeeping knows.
    Slot& sl = slots_[slot];
    if (fresh_) {
      // Records of the images the worker's zygote did not learn when it started.
      if (image_count() > images_known_) t.images = image_records(images_known_);
    }
    sl.outstanding.push_back(t.id);
    bool put = false;
    try {
      put = ch_.mailboxes[slot].try_put(t);
    } catch (...) {
      put = false;
    }
    if (!put) {  // no room in bytes: retried on the next event
      sl.outstanding.pop_back();
      return;
    }
    if (big) {
      // The worker takes the message, then waits for the descriptor: it must follow. The send
      // does not block in practice (a slot has at most two tasks out, and stale descriptors are
      // drained by its next worker); if it fails the slot's worker is gone with its socket.
      (void)send_fd(ch_.fd_parent[slot], t.id, big->fd());
    }
    if (t.fds != 0) {
      // The descriptors of the handles among the arguments follow (after the payload's memfd).
      auto e = tasks_.find(t.id);
      if (e != tasks_.end()) {
        for (int fd : e->second.fds.fds()) (void)send_fd(ch_.fd_parent[slot], t.id, fd);
      }
    }
    ++sl.dispatched;
    if (auto e = tasks_.find(t.id); e != tasks_.end()) {
      e->second.slot = best;
      e->second.seq = ++sl.put_seq;
      e->second.epoch = sl.epoch;
    }
    if (!big) {
      // A task keeps its payload until it is done: a dead worker's unfinished elements of a chunk
      // run again from it, and so does a task that a worker killed for another one had taken but
      // not begun (a large one keeps its memfd).
      auto e = tasks_.find(t.id);
      if (e != tasks_.end()) e->second.payload = std::move(t.payload);
    }
    pending_.pop_front();
  }
}

// Makes the memfd of task `t`'s large payload (once: a task drained from a dead worker's mailbox
// has it already) and frees the heap copy. When the memfd cannot be made the task fails with
// std::system_error naming it and the errno (kFailed); kLater when even that failure cannot be
// recorded now (no memory).
Dispatcher::BigPayload Dispatcher::prepare_big_locked(TaskMsg& t, Region*& big) {
  auto e = tasks_.find(t.id);
  if (e == tasks_.end()) return BigPayload::kFailed;  // not expected: its outcome is known
  if (e->second.big) {
    big = e->second.big.get();
    return BigPayload::kReady;
  }
  std::error_code ec;
  std::shared_ptr<Region> region = Region::create(t.payload.size(), "mproc-pool-task", ec);
  if (region) {
    std::memcpy(region->data(), t.payload.data(), t.payload.size());
    std::vector<std::byte>().swap(t.payload);
    big = region.get();
    e->second.big = std::move(region);
    return BigPayload::kReady;
  }
  try {
    std::exception_ptr error;
    try {
      throw_system_error(ec, "mproc::Pool: cannot create a memfd of " +
                                 std::to_string(t.payload.size()) +
                                 " bytes for a task's arguments");
    } catch (...) {
      error = std::current_exception();
    }
    stranded_.push_back(fail_all(e->second, std::move(error)));
  } catch (...) {
    return BigPayload::kLater;
  }
  tasks_.erase(e);
  return BigPayload::kFailed;
}

// Moves the tasks the dispatcher failed into `out` (for delivery by the caller).
void Dispatcher::take_stranded_locked(std::vector<Delivery>& out) {
  if (stranded_.empty()) return;
  out.reserve(out.size() + stranded_.size());  // may throw; the moves below do not
  for (Delivery& d : stranded_) out.push_back(std::move(d));
  stranded_.clear();
}

// A small kWake event. If the result queue is full, the result thread is busy and finds the
// stranded tasks after its batch: nothing is lost by dropping the event (or its error).
void Dispatcher::wake_result_thread() noexcept {
  EventMsg w;
  w.kind = kWake;
  try {
    (void)ch_.events.try_put(w);
  } catch (...) {
  }
}

// --- failing tasks -----------------------------------------------------------------------------

// The delivery of every outcome `e` still owes: `e`'s elements without an outcome fail with
// `error` (a chunk), or the task does.
Dispatcher::Delivery Dispatcher::fail_all(Entry& e, std::exception_ptr error) {
  Delivery d{e.sink, e.part, {}, std::move(error), false, true, 0, {}};
  if (e.elements != 0) {
    d.chunk = true;
    d.first = e.first;
    d.covered = std::move(e.todo);
  }
  return d;
}

void Dispatcher::fail_locked(std::uint64_t id, std::exception_ptr e, std::vector<Delivery>& out) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  out.push_back(fail_all(it->second, std::move(e)));
  tasks_.erase(it);
}

// Fails every unfinished task with BrokenPool(`why`) and stops the workers.
void Dispatcher::break_locked(const std::string& why, std::vector<Delivery>& out) {
  if (broken_.empty()) broken_ = why;
  auto e = std::make_exception_ptr(BrokenPool(broken_));
  for (auto& [id, entry] : tasks_) out.push_back(fail_all(entry, e));
  tasks_.clear();
  pending_.clear();
  for (Slot& s : slots_) s.outstanding.clear();
  take_stranded_locked(out);
  launcher_.kill_all();
}

// --- the result thread -------------------------------------------------------------------------

// Reads events, does the bookkeeping under the lock, and delivers outcomes outside it. It never
// ends before shut_down() asks, whatever it reads: an event that does not decode fails its task
// (see the codec of EventMsg); an error of the queue itself is retried after a pause (so a queue
// that keeps failing does not cost a CPU), and after kQueueErrorsToBreak of them in a row breaks
// the pool; running out of memory in the bookkeeping fails the event's task, or is retried.
void Dispatcher::collect() {
  std::vector<Delivery> out;
  int queue_errors = 0;  // in a row
  for (;;) {
    bool quit = false;
    try {
      read_batch(out, quit, queue_errors);
      deliver(out);
    } catch (...) {
      // No memory even for that: what `out` holds is delivered on a later round.
    }
    if (quit || quit_requested_.load(std::memory_order_acquire)) return;
    if (queue_errors > 1) std::this_thread::sleep_for(kQueueErrorPause);
  }
}

// One round of the result thread: a batch of events and what it does to the bookkeeping; the
// outcomes to deliver go to `out`.
void Dispatcher::read_batch(std::vector<Delivery>& out, bool& quit, int& queue_errors) {
  std::vector<EventMsg> batch;
  std::string queue_error;
  try {
    batch = ch_.events.get_many(
        kEventBatch, watching_.load(std::memory_order_relaxed) ? kWatchWait : kEventWait);
    queue_errors = 0;
  } catch (...) {
    batch.clear();
    std::string type, what;
    describe_current(type, what);
    queue_error = type + ": " + what;
    ++queue_errors;
  }
  Guard g(mu_);
  for (EventMsg& m : batch) {
    try {
      handle_locked(m, out, quit);
    } catch (...) {
      // Out of memory while bookkeeping: the event's task, if any, fails with that error.
      if (m.kind == kOk || m.kind == kPart || m.kind == kFailed || m.kind == kUndecodable) {
        try {
          fail_locked(m.id, std::current_exception(), out);
        } catch (...) {
        }
      }
    }
  }
  if (queue_errors >= kQueueErrorsToBreak && broken_.empty() && !stopping_)
    break_locked("mproc::Pool: the result queue cannot be read (" + queue_error + ")", out);
  if (batch.empty() && !stopping_ && broken_.empty() && !launcher_.alive())
    break_locked("mproc::Pool: the pool's zygote process died", out);
  if (watching_.load(std::memory_order_relaxed) && !stopping_ && broken_.empty())
    watch_limits_locked(out);
  dispatch_locked();
  take_stranded_locked(out);
}

// Delivers the outcomes in `out` (outside the lock), then clears it. A result that does not
// decode fails its task with DecodeError (an allocation failure too: the result is too large
// for this process).
void Dispatcher::deliver(std::vector<Delivery>& out) {
  std::size_t ended = 0;
  const std::int64_t since = insights_ && !out.empty() ? monotonic_ns() : 0;
  for (Delivery& d : out) {
    deliver_outcome(*d.sink, d.part, d.chunk, d.first, d.covered, d.pid, d.ns, d.payload, d.error);
    d.sink.reset();
    std::vector<std::byte>().swap(d.payload);
    if (d.last) ++ended;
  }
  if (out.empty()) return;
  if (insights_) {
    delivered_.fetch_add(out.size(), std::memory_order_relaxed);
    delivering_ns_.fetch_add(monotonic_ns() - since, std::memory_order_relaxed);
  }
  if (ended != 0) {
    {
      Guard g(mu_);
      undelivered_ -= ended;
    }
    idle_cv_.notify_all();
  }
  out.clear();
}

namespace {

// The DecodeError for a result of `bytes` bytes whose decoding threw the current exception.
std::exception_ptr undecodable(std::size_t bytes) noexcept {
  try {
    std::string type, what;
    describe_current(type, what);
    return std::make_exception_ptr(DecodeError("mproc::Pool: cannot decode the task's result (" +
                                               std::to_string(bytes) +
                                               " bytes) in this process: " + type + ": " + what));
  } catch (...) {
    return std::current_exception();  // std::bad_alloc
  }
}

}  // namespace

void deliver_outcome(TaskSink& sink, std::uint64_t part, bool chunk, std::uint64_t first,
                     const Spans& covered, std::int32_t pid, std::uint64_t ns,
                     const std::vector<std::byte>& payload,
                     const std::exception_ptr& error) noexcept {
  auto fail = [&](std::exception_ptr e) {
    if (chunk)
      sink.on_elements_error(part, first, covered, std::move(e));
    else
      sink.on_error(part, std::move(e));
  };
  if (error) return fail(error);
  try {
    Reader r(payload.data(), payload.size());
    if (chunk)
      sink.on_elements(part, first, covered, pid, ns, r);
    else
      sink.on_ok(part, r);
  } catch (const DecodeError&) {
    fail(std::current_exception());
  } catch (...) {
    fail(undecodable(payload.size()));
  }
}

}  // namespace mproc::detail
