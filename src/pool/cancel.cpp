// Cancelling a Pool's tasks, and the tie that results keep to their pool (see dispatcher.hpp and
// "Futures" in docs/design.md).
//
// A task is in one of three places when it is cancelled:
//   * in `pending_` (not given to any worker, or drained back from a dead worker's mailbox): its
//     entry is removed, and dispatch_locked drops the message when it reaches it. It never runs.
//   * in a worker's mailbox, not taken yet: it is withdrawn through the slot's record
//     (SlotShared::skip, taken): the worker that reaches it does not run it and says so
//     (kSkipped). Whether the worker reached it first is decided by one compare-and-swap on the
//     id, which the worker and the parent both attempt (protocol.hpp). It never runs.
//   * taken by its worker (running, or finished with its result on the way): cancel() says no,
//     unless the caller asked to kill running tasks. Then the slot is "doomed" (a worker that
//     begins its next task first parks instead) and, if the worker is still on that task, the
//     launcher kills it; its other mailbox tasks go back to `pending_` when its exit is reported,
//     as after any death, and a replacement starts. If the worker had already moved on, the doom
//     is lifted and the parked worker goes on.
// Outcomes of withdrawn and killed tasks are CancelledError, delivered by the result thread like
// every other failure (callbacks run there); AsyncResult::cancel also sets its own result at once,
// so that cancel() returning true means done() and cancelled().
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "pool/core.hpp"
#include "pool/dispatcher.hpp"
#include "pool/engine.hpp"
#include "posix/futex.hpp"

namespace mproc::detail {

// What a result holds of its pool: the dispatcher (or another engine), as long as it can take
// requests.
class PoolLink {
 public:
  explicit PoolLink(TaskControl* d) noexcept : d_(d) {}
  // Runs `fn(control)` unless the pool has stopped; `otherwise` then.
  template <class Fn>
  bool with(Fn&& fn, bool otherwise) {
    std::lock_guard<std::mutex> g(mu_);
    if (d_ == nullptr) return otherwise;
    return fn(*d_);
  }
  void detach() noexcept {
    std::lock_guard<std::mutex> g(mu_);
    d_ = nullptr;
  }

 private:
  std::mutex mu_;
  TaskControl* d_;
};

Ref<PoolLink> make_pool_link(TaskControl* d) { return make_ref<PoolLink>(d); }
void detach_pool_link(PoolLink& link) noexcept { link.detach(); }

bool cancel_tasks(PoolLink& link, std::uint64_t first, std::uint64_t count, bool kill_running) {
  return link.with([&](TaskControl& d) { return d.cancel(first, count, kill_running); }, false);
}

bool tasks_running(PoolLink& link, std::uint64_t first, std::uint64_t count) {
  return link.with([&](TaskControl& d) { return d.running(first, count); }, false);
}

// One CancelledError for every cancelled result (it says nothing that differs from one to the
// other), so that telling a cancelled result from another is a comparison, not a rethrow.
const std::exception_ptr& the_cancelled_error() noexcept {
  static const std::exception_ptr e =
      std::make_exception_ptr(CancelledError("mproc::Pool: the task was cancelled"));
  return e;
}

bool is_cancelled_error(const std::exception_ptr& e) noexcept {
  return e && e == the_cancelled_error();
}

std::exception_ptr cancelled_error() noexcept { return the_cancelled_error(); }

std::int64_t monotonic_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Dispatcher::~Dispatcher() { detach_pool_link(*link_); }

// Where task `id` is, and, if it was not taken by a worker yet, takes it out: kWithdrawn (it will
// never run; its entry is still in tasks_), kTaken (a worker has it: running, or done with the
// result on the way), kGone (its outcome is known).
Dispatcher::Withdraw Dispatcher::withdraw_locked(std::uint64_t id) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return Withdraw::kGone;
  const Entry& e = it->second;
  // Not in the mailbox of the slot's current worker (never dispatched, or drained back from a
  // dead worker's mailbox): it waits in `pending_`, where dispatch_locked drops a task whose
  // entry is gone. No search: a cancel costs the same however many tasks wait.
  if (e.slot < 0 || slots_[static_cast<std::size_t>(e.slot)].epoch != e.epoch)
    return Withdraw::kWithdrawn;
  SlotShared& sh = ch_.slot_shared[static_cast<std::size_t>(e.slot)];
  for (auto& word : sh.skip) {
    std::uint64_t free = 0;
    if (!word.compare_exchange_strong(free, id, order::seq_cst, order::seq_cst)) continue;
    // The worker has not counted it as taken: it will find the id and skip the task.
    if (sh.taken.load(order::seq_cst) < e.seq) return Withdraw::kWithdrawn;
    // It has: take the id back, unless the worker claimed it first (then it skips the task).
    std::uint64_t mine = id;
    if (word.compare_exchange_strong(mine, 0, order::seq_cst, order::seq_cst))
      return Withdraw::kTaken;
    return Withdraw::kWithdrawn;
  }
  return Withdraw::kTaken;  // both words in use: not expected (a mailbox holds two tasks)
}

// Kills the worker running task `id` for it: true when it was still running it (the kill is on
// its way). `limit`: the time limit the task ran past (its outcome is TaskTimeout when the death
// is reported), or 0 for a cancel (the caller fails the task).
bool Dispatcher::kill_for_locked(std::uint64_t id, double limit) {
  auto it = tasks_.find(id);
  if (it == tasks_.end() || it->second.slot < 0) return false;
  const int slot = it->second.slot;
  Slot& sl = slots_[static_cast<std::size_t>(slot)];
  if (sl.killing) return sl.kill_task == id;
  SlotShared& sh = ch_.slot_shared[static_cast<std::size_t>(slot)];
  sh.doomed.store(1, std::memory_order_seq_cst);
  const std::int32_t pid = sh.worker_pid.load(order::relaxed);
  if (sh.task.load(order::seq_cst) != id || sh.parked.load(order::seq_cst) == id || pid <= 0) {
    // It finished the task (and may have parked on the next): lift the doom.
    sh.doomed.store(0, std::memory_order_seq_cst);
    futex_wake_all(&sh.doomed);
    return false;
  }
  sl.killing = true;
  sl.kill_task = id;
  sl.kill_limit = limit;
  launcher_.kill_worker(slot, pid);
  return true;
}

// The dead worker of `slot` is gone: its record starts afresh for the next one.
void Dispatcher::reset_slot_shared_locked(int slot) {
  SlotShared& sh = ch_.slot_shared[static_cast<std::size_t>(slot)];
  sh.taken.store(0, order::seq_cst);
  for (auto& word : sh.skip) word.store(0, order::seq_cst);
  sh.parked.store(0, order::seq_cst);
  sh.task.store(0, order::seq_cst);
  sh.started_ns.store(0, order::relaxed);
  sh.doomed.store(0, std::memory_order_seq_cst);
  Slot& sl = slots_[static_cast<std::size_t>(slot)];
  ++sl.epoch;
  sl.put_seq = 0;
  sl.killing = false;
  sl.kill_task = 0;
  sl.kill_limit = 0;
}

// Task `id`, which a killed worker had taken but not begun (it parked), goes back to the front of
// `pending_`, rebuilt from its entry.
void Dispatcher::repend_locked(std::uint64_t id) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  const Entry& e = it->second;
  TaskMsg again;
  again.id = id;
  again.invoker = e.invoker;
  again.fds = e.fds.size();
  again.element_clock = e.element_clock;
  if (e.elements != 0) again.run = e.todo;
  if (e.big)
    again.big = e.big->size();
  else
    again.payload = e.payload;
  pending_.push_front(std::move(again));
}

bool Dispatcher::cancel(std::uint64_t first, std::uint64_t count, bool kill_running) {
  bool any = false;
  bool wake = false;
  {
    Guard g(mu_);
    if (stopping_ || !broken_.empty()) return false;
    for (std::uint64_t id = first; id < first + count; ++id) {
      const Withdraw w = withdraw_locked(id);
      if (w == Withdraw::kGone) continue;
      if (w == Withdraw::kTaken && !(kill_running && kill_for_locked(id, 0))) continue;
      // One wake-up for what waits in stranded_: the result thread takes it all at once.
      if (stranded_.empty()) wake = true;
      fail_locked(id, cancelled_error(), stranded_);
      any = true;
    }
    if (any) dispatch_locked();
  }
  if (wake) wake_result_thread();
  return any;
}

bool Dispatcher::running(std::uint64_t first, std::uint64_t count) {
  Guard g(mu_);
  for (std::uint64_t id = first; id < first + count; ++id) {
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.slot < 0) continue;
    const Entry& e = it->second;
    if (slots_[static_cast<std::size_t>(e.slot)].epoch != e.epoch) continue;  // back in pending_
    const SlotShared& sh = ch_.slot_shared[static_cast<std::size_t>(e.slot)];
    if (sh.taken.load(order::seq_cst) >= e.seq && sh.task.load(order::seq_cst) == id &&
        sh.parked.load(order::seq_cst) != id)
      return true;
  }
  return false;
}

void Dispatcher::cancel_pending() {
  bool wake = false;
  {
    Guard g(mu_);
    if (stopping_ || !broken_.empty()) return;
    std::vector<std::uint64_t> ids;
    ids.reserve(tasks_.size());
    for (const auto& [id, e] : tasks_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (std::uint64_t id : ids) {
      if (withdraw_locked(id) != Withdraw::kWithdrawn) continue;
      if (stranded_.empty()) wake = true;
      fail_locked(id, cancelled_error(), stranded_);
    }
  }
  if (wake) wake_result_thread();
}

// --- time limits -------------------------------------------------------------------------------

std::int64_t limit_ns_of(double seconds) {
  if (!(seconds > 0))
    throw ValueError("mproc::Pool: a time limit must be a positive duration (got " +
                     std::to_string(seconds) + " s)");
  const double ns = seconds * 1e9;
  if (ns >= 9.2e18) return INT64_MAX;
  return ns < 1 ? 1 : static_cast<std::int64_t>(ns);
}

namespace {
std::string seconds_text(std::int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ns) / 1e9);
  return buf;
}
}  // namespace

// Run by the result thread every few milliseconds while some task has a time limit: a worker that
// began its task (or element) longer ago than the task's limit is killed for it (its outcome,
// TaskTimeout, comes with the death's report); a worker whose initializer has run longer than the
// pool's limit for it breaks the pool.
void Dispatcher::watch_limits_locked(std::vector<Delivery>& out) {
  const std::int64_t now = monotonic_ns();
  for (int s = 0; s < n_; ++s) {
    Slot& sl = slots_[static_cast<std::size_t>(s)];
    if (sl.killing) continue;
    const SlotShared& sh = ch_.slot_shared[static_cast<std::size_t>(s)];
    const std::int64_t started = sh.started_ns.load(order::relaxed);
    if (!sl.ready) {
      if (init_limit_ns_ != 0 && started != 0 && sh.task.load(order::relaxed) == 0 &&
          now - started > init_limit_ns_) {
        break_locked("mproc::Pool: a worker's initializer did not finish within its limit of " +
                         seconds_text(init_limit_ns_),
                     out);
        return;
      }
      continue;
    }
    const std::uint64_t id = sh.task.load(order::seq_cst);
    if (id == 0) continue;
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.limit_ns == 0 || it->second.slot != s) continue;
    if (now - sh.started_ns.load(order::relaxed) <= it->second.limit_ns) continue;
    (void)kill_for_locked(id, static_cast<double>(it->second.limit_ns) / 1e9);
  }
}

// --- PoolCore ------------------------------------------------------------------------------------

const Ref<PoolLink>& PoolCore::link() const noexcept {
  return engine_ ? engine_->link() : impl_->dispatcher.link();
}

void PoolCore::shutdown(bool wait, bool cancel_futures) {
  if (engine_) {
    engine_->close();
    if (cancel_futures) engine_->cancel_pending();
    if (wait) engine_->join();
    return;
  }
  impl_->check_owner();
  impl_->dispatcher.close();
  if (cancel_futures) impl_->dispatcher.cancel_pending();
  if (wait) impl_->dispatcher.join();
}

}  // namespace mproc::detail
