// What each event that reaches the parent's result thread does to the dispatcher's bookkeeping
// (see dispatcher.hpp): results and pieces of results, worker life events, and a worker's death —
// which tasks it held, which element of a chunk it was running, what it had staged and not sent.
// Everything here runs on the result thread, under the dispatcher's mutex.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <unordered_set>

#include "pool/dispatcher.hpp"
#include "posix/error.hpp"
#include "posix/exit_status.hpp"

namespace mproc::detail {
namespace {

// Workers of one slot that may die before "ready" in a row (no initializer) before the pool breaks.
constexpr int kEarlyDeathRetries = 3;

std::string describe_exit(int code) {
  if (code == kSpawnFailed) return "could not be started";
  if (code == kExitUnknown)
    return "ended; its exit status is unknown (SIGCHLD is ignored or another waiter reaped it)";
  return describe_exitcode(code);
}

// "0.5 s", "2 s", "1.25 s": a limit as the errors name it.
std::string describe_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// Elements of a chunk as sorted, disjoint, non-empty spans.
bool spans_contain(const Spans& spans, std::uint64_t i) noexcept {
  for (const Span& s : spans)
    if (i >= s.begin && i < s.end) return true;
  return false;
}

// Takes `part` out of `from`; false (and `from` unchanged) unless `part` lies wholly inside it.
bool spans_remove(Spans& from, const Spans& part) {
  // The common case: a piece that starts where the elements waiting start.
  if (part.size() == 1 && !from.empty() && part[0].begin == from[0].begin &&
      part[0].begin < part[0].end && part[0].end <= from[0].end) {
    if (part[0].end == from[0].end)
      from.erase(from.begin());
    else
      from[0].begin = part[0].end;
    return true;
  }
  Spans out = from;
  for (const Span& p : part) {
    if (p.begin >= p.end) return false;
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const Span& s) { return p.begin >= s.begin && p.end <= s.end; });
    if (it == out.end()) return false;
    const Span s = *it;
    it = out.erase(it);
    if (p.end < s.end) it = out.insert(it, Span{p.end, s.end});
    if (s.begin < p.begin) out.insert(it, Span{s.begin, p.begin});
  }
  from = std::move(out);
  return true;
}

}  // namespace

void Dispatcher::handle_locked(EventMsg& m, std::vector<Delivery>& out, bool& quit) {
  if (m.kind == kQuit) {
    quit = true;
    return;
  }
  if (m.slot < 0 || m.slot >= n_) return;
  Slot& s = slots_[static_cast<std::size_t>(m.slot)];
  switch (m.kind) {
    case kOk:
    case kPart:
    case kFailed:
    case kUndecodable:
    case kSkipped:  // a withdrawn task: its outcome (CancelledError) is delivered already
      on_result_locked(m, out);
      return;
    case kReady:
      s.ready = true;
      s.pid = m.pid;
      s.early_deaths = 0;
      return;
    case kInitFailed:
      // The BrokenPool names the exception and where the initializer threw it.
      s.init_error = m.type + ": " + m.what;
      if (!m.trace.empty()) {
        s.init_error += '\n';
        s.init_error += m.trace;
        while (!s.init_error.empty() && s.init_error.back() == '\n') s.init_error.pop_back();
      }
      return;
    case kExited:
      on_exit_locked(m, out);
      return;
    case kExitValue:
    case kExitFailed:
      on_exit_hook_locked(m);
      return;
    default:
      return;
  }
}

// A task's outcome (kOk, kFailed, kUndecodable) or a piece of a chunk's (kPart).
void Dispatcher::on_result_locked(EventMsg& m, std::vector<Delivery>& out) {
  Slot& s = slots_[static_cast<std::size_t>(m.slot)];
  const bool final = m.kind != kPart && !(m.kind == kUndecodable && m.sent_kind == kPart);
  if (final) {
    auto pos = std::find(s.outstanding.begin(), s.outstanding.end(), m.id);
    if (pos != s.outstanding.end()) s.outstanding.erase(pos);
  }
  auto it = tasks_.find(m.id);
  if (it == tasks_.end()) return;  // cancelled by terminate or a broken pool
  if (it->second.elements != 0) {
    on_chunk_result_locked(it, m, final, out);
    return;
  }
  if (!final) return;  // not expected of a single task
  Delivery d{std::move(it->second.sink), it->second.part, {}, nullptr, false, true, 0, {}};
  const TaskOrigin origin{.task = m.id};
  tasks_.erase(it);
  if (m.kind == kOk) {
    d.payload = std::move(m.payload);
  } else if (m.kind == kFailed) {
    d.error = remote_error(m.type, m.what, m.trace, m.pid, origin);
  } else {
    d.error = undecodable_error(m);
  }
  out.push_back(std::move(d));
}

std::exception_ptr Dispatcher::undecodable_error(const EventMsg& m) {
  return std::make_exception_ptr(DecodeError("mproc::Pool: cannot decode the task's result (" +
                                             std::to_string(m.bytes) +
                                             " bytes) in this process: " + m.type + ": " + m.what));
}

// A piece of a chunk's outcomes (kPart, or the final kOk), or its failure as a whole (kFailed:
// the invoker threw outside the elements; kUndecodable). Each element gets exactly one outcome:
// a piece that names elements which are not (or no longer) waiting for one is dropped, and a
// final event leaves none waiting.
void Dispatcher::on_chunk_result_locked(Tasks::iterator it, EventMsg& m, bool final,
                                        std::vector<Delivery>& out) {
  Entry& e = it->second;
  Delivery d{e.sink, e.part, {}, nullptr, true, false, e.first, {}};
  if (m.kind == kOk || m.kind == kPart || m.kind == kUndecodable) {
    if (!m.covered.empty() && spans_remove(e.todo, m.covered)) {
      d.covered = std::move(m.covered);
      d.pid = m.pid;
      d.ns = m.ns;
      if (m.kind == kUndecodable)
        d.error = undecodable_error(m);
      else
        d.payload = std::move(m.payload);
      d.last = e.todo.empty();
      const bool last = d.last;
      out.push_back(std::move(d));
      if (last) {
        tasks_.erase(it);
        return;
      }
    }
  }
  if (!final) return;
  // The task ended: elements still without an outcome fail (none, normally).
  std::exception_ptr error;
  if (m.kind == kFailed) {
    const TaskOrigin origin{.position = static_cast<std::size_t>(
                                e.first + (e.todo.empty() ? 0 : e.todo.front().begin))};
    error = remote_error(m.type, m.what, m.trace, m.pid, origin);
  } else if (m.kind == kUndecodable) {
    error = undecodable_error(m);
  } else {
    error = std::make_exception_ptr(
        DecodeError("mproc::Pool: a worker ended a chunk without the outcomes of " +
                    std::to_string(span_count(e.todo)) + " of its elements"));
  }
  out.push_back(fail_all(e, std::move(error)));
  tasks_.erase(it);
}

// Delivers `d`, whose elements now have their outcome; true when none of the chunk waits any more
// (it is then gone).
bool Dispatcher::settle_locked(Tasks::iterator it, Delivery d, std::vector<Delivery>& out) {
  Entry& e = it->second;
  (void)spans_remove(e.todo, d.covered);
  d.last = e.todo.empty();
  const bool ended = d.last;
  out.push_back(std::move(d));
  if (ended) tasks_.erase(it);
  return ended;
}

// The outcomes the dead worker of `m.slot` staged for the chunk `it` and had not sent: they are
// the next elements waiting, in order (unless they were sent after all, just before the death:
// then the piece came first, and they wait no more). Delivers them as the piece the worker would
// have sent; true when that ends the chunk.
bool Dispatcher::settle_staged_locked(Tasks::iterator it, const EventMsg& m,
                                      std::vector<Delivery>& out) {
  Entry& e = it->second;
  const SlotShared& sh = ch_.slot_shared[m.slot];
  const TaskContext::Staged st = TaskContext::unpack_staged(sh.staged.load(order::relaxed));
  if (st.records == 0 || st.value_bytes > kStageValueBytes || st.error_bytes > kStageErrorBytes ||
      sh.staged_first.load(order::relaxed) != e.todo.front().begin ||
      st.records > span_count(e.todo))
    return false;
  Delivery d{e.sink, e.part, {}, nullptr, true, false, e.first, {}};
  d.pid = m.pid;
  std::uint64_t want = st.records;
  for (const Span& s : e.todo) {
    const std::uint64_t take = std::min(want, s.end - s.begin);
    d.covered.push_back(Span{s.begin, s.begin + take});
    want -= take;
    if (want == 0) break;
  }
  d.payload.resize(TaskContext::piece_bytes(st.error_bytes, st.value_bytes));
  Writer w(d.payload.data(), d.payload.data() + d.payload.size());
  TaskContext::write_piece(w, sh.errors, st.error_bytes, sh.values, st.value_bytes);
  return settle_locked(it, std::move(d), out);
}

// The worker that ran chunk `id` died: the element it was running (the last one it began; the
// first one waiting if it had begun none) fails with WorkerLost, and the chunk's other elements
// without an outcome run again in another worker. Each death settles one element at least, so
// a chunk whose elements all kill their worker ends too.
void Dispatcher::on_chunk_lost_locked(std::uint64_t id, const EventMsg& m,
                                      std::vector<Delivery>& out, double limit) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  Entry& e = it->second;
  if (e.todo.empty()) {  // not expected: it would have ended
    tasks_.erase(it);
    return;
  }
  const SlotShared& sh = ch_.slot_shared[m.slot];
  const bool ours = sh.task.load(order::relaxed) == id;
  if (ours && settle_staged_locked(it, m, out)) return;
  const std::uint64_t began = sh.element.load(order::relaxed);
  std::uint64_t lost = e.todo.front().begin;
  if (ours && began != 0 && spans_contain(e.todo, began - 1)) lost = began - 1;
  const std::size_t position = static_cast<std::size_t>(e.first + lost);
  Delivery d{e.sink, e.part, {}, nullptr, true, false, e.first, Spans{Span{lost, lost + 1}}};
  if (limit > 0) {
    d.error = std::make_exception_ptr(TaskTimeout(
        "mproc::Pool: input element " + std::to_string(position) + " ran past its limit of " +
            describe_seconds(limit) + "; its worker " + std::to_string(m.pid) + " was killed",
        limit, TaskOrigin{.position = position}));
  } else {
    std::string msg = "mproc::Pool: worker " + std::to_string(m.pid) + " died (" +
                      describe_exit(m.status) + ") while running input element " +
                      std::to_string(position);
    d.error =
        std::make_exception_ptr(WorkerLost(msg, m.pid, m.status, TaskOrigin{.position = position}));
  }
  if (settle_locked(it, std::move(d), out)) return;
  repend_locked(id);
}

// What the dead worker of `slot` never took is still in its mailbox (the parent is now its only
// reader): those tasks go back to the front of `pending_`, in order. Returns the ids dispatched
// to the slot that were neither answered nor drained: the task the worker was running, at most.
std::vector<std::uint64_t> Dispatcher::drain_mailbox_locked(int slot) {
  Slot& s = slots_[static_cast<std::size_t>(slot)];
  std::vector<TaskMsg> unstarted;
  for (;;) {
    std::optional<TaskMsg> t;
    try {
      t = ch_.mailboxes[static_cast<std::size_t>(slot)].try_get();
    } catch (...) {
      continue;  // a message that does not decode is dropped; its task fails as lost
    }
    if (!t) break;
    // A task cancelled while it waited there has its outcome already: it is dropped.
    if (t->invoker != 0 && tasks_.count(t->id) != 0) unstarted.push_back(std::move(*t));
  }
  std::unordered_set<std::uint64_t> back;
  for (const TaskMsg& t : unstarted) back.insert(t.id);
  std::vector<std::uint64_t> lost;
  for (std::uint64_t id : s.outstanding)
    if (!back.count(id) && tasks_.count(id) != 0) lost.push_back(id);
  s.outstanding.clear();
  s.dispatched = 0;
  for (auto it = unstarted.rbegin(); it != unstarted.rend(); ++it)
    pending_.push_front(std::move(*it));
  return lost;
}

// Why the pool breaks when the worker of `m.slot` ended before it reported "ready".
std::string Dispatcher::broken_by_exit_locked(const EventMsg& m) {
  const Slot& s = slots_[static_cast<std::size_t>(m.slot)];
  std::string why = "mproc::Pool: a worker";
  if (m.pid > 0) why += " (pid " + std::to_string(m.pid) + ")";
  if (m.status == kSpawnFailed) {
    const int err = static_cast<int>(m.id);
    return "mproc::Pool: cannot start a new worker " + std::to_string(m.slot + 1) + " of " +
           std::to_string(n_) +
           " (replacing one that ended): " + (m.type.empty() ? std::string("fork") : m.type) +
           ": " + std::generic_category().message(err) + " (" + errno_name(err) + ")";
  }
  if (!s.init_error.empty()) return why + " failed in the initializer: " + s.init_error;
  if (has_initializer_)
    return why + " died before its initializer finished (" + describe_exit(m.status) + ")";
  return why + " died before it could take a task, " + std::to_string(s.early_deaths) +
         " times in a row (" + describe_exit(m.status) + ")";
}

// A worker ended (reported by the launcher after it reaped it, so after every result the worker
// sent): its unstarted tasks are dispatched again, the one it was running fails with WorkerLost
// (a chunk: one element), and a replacement is requested — or the pool breaks when the worker
// never became ready.
void Dispatcher::on_exit_locked(const EventMsg& m, std::vector<Delivery>& out) {
  fold_figures_locked(m.slot);
  if (stopping_ || !broken_.empty()) return;
  Slot& s = slots_[static_cast<std::size_t>(m.slot)];
  SlotTotals& totals = totals_[static_cast<std::size_t>(m.slot)];
  const std::vector<std::uint64_t> lost = drain_mailbox_locked(m.slot);
  // Killed by the parent for one task (cancelled or past its limit): a task it had taken and
  // parked on never began, and goes back to be run; the task it was killed for fails as its
  // kill says.
  const bool killed = s.killing;
  const std::uint64_t kill_task = s.kill_task;
  const double kill_limit = s.kill_limit;
  const std::uint64_t parked =
      ch_.slot_shared[static_cast<std::size_t>(m.slot)].parked.load(order::seq_cst);
  // Without an initializer a worker reports "ready" before it takes anything, so one that dies
  // earlier was killed from outside (or by the OOM killer) and is simply replaced — a few times
  // in a row at most, so that a slot whose workers cannot live does not respawn forever.
  const bool retry = !s.ready && !has_initializer_ && m.status != kSpawnFailed &&
                     ++s.early_deaths <= kEarlyDeathRetries;
  if (!s.ready && !retry) {
    break_locked(broken_by_exit_locked(m), out);
    return;
  }
  for (std::uint64_t id : lost) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) {
      if (killed && id == kill_task) ++totals.lost;  // a running task cancelled by a kill
      continue;
    }
    if (killed && id == parked && id != kill_task) {
      repend_locked(id);
      continue;
    }
    ++totals.lost;
    const double limit = killed && id == kill_task ? kill_limit : 0;
    if (it->second.elements != 0) {
      on_chunk_lost_locked(id, m, out, limit);
      continue;
    }
    if (limit > 0) {
      fail_locked(
          id,
          std::make_exception_ptr(TaskTimeout(
              "mproc::Pool: task " + std::to_string(id) + " ran past its limit of " +
                  describe_seconds(limit) + "; its worker " + std::to_string(m.pid) + " was killed",
              limit, TaskOrigin{.task = id})),
          out);
      continue;
    }
    std::string msg = "mproc::Pool: worker " + std::to_string(m.pid) + " died (" +
                      describe_exit(m.status) + ") while running task " + std::to_string(id);
    fail_locked(
        id, std::make_exception_ptr(WorkerLost(msg, m.pid, m.status, TaskOrigin{.task = id})), out);
  }
  s.ready = false;
  s.pid = 0;
  s.init_error.clear();
  reset_slot_shared_locked(m.slot);
  launcher_.spawn(m.slot);
}

// A worker leaving normally ran the exit hook (PoolOptions::worker_exit): its value is kept for
// Pool::exit_results(), or its error (the first one) thrown from there.
void Dispatcher::on_exit_hook_locked(EventMsg& m) {
  if (m.kind == kExitValue) {
    if (m.status == 1) exit_values_.push_back(std::move(m.payload));
    return;
  }
  if (!exit_error_) exit_error_ = remote_error(m.type, m.what, m.trace, m.pid, TaskOrigin{});
}

// The figures of the worker of `slot`, which has ended (its exit was reported), join the slot's
// totals; its record is zeroed for the replacement (asked for after this). A slot whose worker
// could not be started has none.
void Dispatcher::fold_figures_locked(int slot) {
  WorkerFigures& f = ch_.slot_shared[static_cast<std::size_t>(slot)].figures;
  const std::int64_t start = f.start_ns.load(order::relaxed);
  if (start == 0) return;
  SlotTotals& t = totals_[static_cast<std::size_t>(slot)];
  const std::int64_t ready = f.ready_ns.load(order::relaxed);
  ++t.workers;
  t.tasks += f.tasks.load(order::relaxed);
  t.work += f.work_ns.load(order::relaxed);
  t.wait += f.wait_ns.load(order::relaxed);
  t.send += f.send_ns.load(order::relaxed);
  t.code += f.code_ns.load(order::relaxed);
  const std::int64_t now = monotonic_ns();
  t.wall += now - start;
  t.start_up += (ready != 0 ? ready : now) - start;
  for (auto* word : {&f.start_ns, &f.ready_ns, &f.work_ns, &f.wait_ns, &f.send_ns, &f.code_ns})
    word->store(0, order::relaxed);
  f.tasks.store(0, order::relaxed);
}

// A snapshot. Once the pool has stopped, the workers that were killed (terminate: the launcher
// reports no exit then) are folded in, so their wall time ends there.
Insights Dispatcher::insights() {
  Insights r;
  auto add = [](WorkerInsights& to, std::uint64_t workers, std::uint64_t tasks, std::uint64_t lost,
                std::int64_t wall, std::int64_t start_up, std::int64_t work, std::int64_t wait,
                std::int64_t send, std::int64_t code) {
    to.workers += workers;
    to.tasks += tasks;
    to.lost += lost;
    to.wall += std::chrono::nanoseconds(wall);
    to.start_up += std::chrono::nanoseconds(start_up);
    to.working += std::chrono::nanoseconds(work);
    to.waiting += std::chrono::nanoseconds(wait);
    to.sending += std::chrono::nanoseconds(send);
    to.coding += std::chrono::nanoseconds(code);
  };
  Guard g(mu_);
  if (finished_)
    for (int s = 0; s < n_; ++s) fold_figures_locked(s);
  r.workers.resize(static_cast<std::size_t>(n_));
  for (int s = 0; s < n_; ++s) {
    WorkerInsights& w = r.workers[static_cast<std::size_t>(s)];
    w.slot = s;
    const SlotTotals& t = totals_[static_cast<std::size_t>(s)];
    add(w, t.workers, t.tasks, t.lost, t.wall, t.start_up, t.work, t.wait, t.send, t.code);
    // The worker alive now: its figures so far, its wall time until now (read after them).
    const WorkerFigures& f = ch_.slot_shared[static_cast<std::size_t>(s)].figures;
    const std::int64_t start = f.start_ns.load(order::relaxed);
    if (start != 0) {
      const std::int64_t ready = f.ready_ns.load(order::relaxed);
      const std::uint64_t tasks = f.tasks.load(order::relaxed);
      const std::int64_t work = f.work_ns.load(order::relaxed);
      const std::int64_t wait = f.wait_ns.load(order::relaxed);
      const std::int64_t send = f.send_ns.load(order::relaxed);
      const std::int64_t code = f.code_ns.load(order::relaxed);
      const std::int64_t now = monotonic_ns();
      add(w, 1, tasks, 0, now - start, (ready != 0 ? ready : now) - start, work, wait, send, code);
    }
    add(r.total, w.workers, w.tasks, w.lost, w.wall.count(), w.start_up.count(), w.working.count(),
        w.waiting.count(), w.sending.count(), w.coding.count());
  }
  if (!insights_) {  // only counts: the durations were not measured
    for (WorkerInsights& w : r.workers) w.wall = w.start_up = {};
    r.total.wall = r.total.start_up = {};
  }
  r.encoded = encoded_.load(std::memory_order_relaxed);
  r.encoding = std::chrono::nanoseconds(encoding_ns_.load(std::memory_order_relaxed));
  r.delivered = delivered_.load(std::memory_order_relaxed);
  r.delivering = std::chrono::nanoseconds(delivering_ns_.load(std::memory_order_relaxed));
  return r;
}

// The exit hooks' values so far. Once the pool has stopped (join, terminate), the result thread
// has ended, possibly before it read the last events (it stops after the batch in which it learns
// the pool stopped): those still in the result queue are read here.
std::vector<std::vector<std::byte>> Dispatcher::exit_results() {
  Guard g(mu_);
  if (finished_ && !collector_.joinable()) {
    for (;;) {
      std::optional<EventMsg> m;
      try {
        m = ch_.events.try_get();
      } catch (...) {
        break;  // the queue failed: what it still holds is lost with it
      }
      if (!m) break;
      if (m->kind == kExitValue || m->kind == kExitFailed) on_exit_hook_locked(*m);
    }
  }
  if (exit_error_) std::rethrow_exception(exit_error_);
  return exit_values_;
}

}  // namespace mproc::detail
