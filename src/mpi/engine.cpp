// Rank 0's side of an MPI pool: the engine under mproc::mpi::Pool (see mproc/mpi.hpp and "MPI" in
// docs/design.md).
//
// The engine keeps the tasks not yet sent (`pending_`) and those sent and unanswered (`tasks_`,
// each with the rank it went to), and one communication thread that does everything else: it
// sends tasks to the ranks that have room in their window, in batches; receives outcomes and
// replies; takes the outcomes of rank 0's own share (a Node in this process); and delivers
// outcomes to the tasks' sinks, so callbacks run on it, as on a local pool's result thread. It is
// the only thread that calls MPI while the pool runs (the constructor's handshake happens before
// it starts, the stop after it is told to end).
//
// One mutex (`mu_`) guards the bookkeeping; it is never held while MPI or a Node is called, nor
// while a sink runs. cancel() and running() of tasks that a rank holds ask that rank (a Query,
// answered by a Reply) and wait for every answer; from a callback (on the communication thread)
// they cannot wait, and only withdraw what has not been sent.
#include "pool/engine.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mproc/errors.hpp>
#include <mproc/mpi.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "mpi/link.hpp"
#include "mpi/node.hpp"
#include "mpi/runtime.hpp"
#include "mpi/wire.hpp"

namespace mproc::mpi::detail {

using mproc::detail::DeliveryPlace;
using mproc::detail::PoolEngine;
using mproc::detail::PoolLink;
using mproc::detail::TaskSpec;

namespace {

// Every image loaded now enters this process's image table (code_ref_of), so that the ranks learn
// them all when the pool starts and fork their workers after: a task's code may be in any of
// them. Returns one address of each (an executable segment's start) as a probe.
std::vector<CodeRef> record_loaded_images() {
  const std::vector<const void*> starts = executable_starts();
  std::vector<CodeRef> probes;
  for (const void* at : starts) {
    try {
      probes.push_back(mproc::detail::code_ref_of(at));
    } catch (const ValueError&) {
      // the vdso, or an image without a file: no task's code can be there
    }
  }
  return probes;
}

std::int64_t now_ns() noexcept { return mproc::detail::monotonic_ns(); }

// The elements of [0, n) not in `done` (disjoint spans, in any order).
Spans remaining(std::uint64_t n, Spans done) {
  std::sort(
      done.begin(), done.end(),
      [](const mproc::detail::Span& a, const mproc::detail::Span& b) { return a.begin < b.begin; });
  Spans out;
  std::uint64_t at = 0;
  for (const auto& sp : done) {
    if (sp.begin > at) out.push_back({at, std::min(sp.begin, n)});
    at = std::max(at, sp.end);
  }
  if (at < n) out.push_back({at, n});
  return out;
}

}  // namespace

class Engine final : public PoolEngine {
 public:
  Engine(const PoolOptions& options, const MpiOptions& mpi, std::vector<int>& per_rank);
  ~Engine() override;

  std::uint64_t submit(std::vector<TaskSpec>& specs, const Ref<TaskSink>& sink,
                       bool continuation) override;
  [[nodiscard]] std::size_t unfinished() const override {
    std::lock_guard<std::mutex> g(mu_);
    return undelivered_;
  }
  bool cancel(std::uint64_t first, std::uint64_t count, bool kill_running) override {
    return ask(first, count, true, kill_running);
  }
  bool running(std::uint64_t first, std::uint64_t count) override {
    return ask(first, count, false, false);
  }
  void cancel_pending() override;
  void close() override;
  void terminate() override;
  void join() override;
  [[nodiscard]] const Ref<PoolLink>& link() const noexcept override { return link_; }
  [[nodiscard]] Insights insights() override { return local_ ? local_->insights() : Insights{}; }
  std::vector<std::vector<std::byte>> exit_results() override { return {}; }
  [[nodiscard]] bool insights_on() const noexcept override { return false; }
  void note_encoding(std::uint64_t, std::int64_t) noexcept override {}
  void release() noexcept override;

 private:
  struct Share {  // one rank's share of the pool
    int rank = 0;
    int workers = 0;
    DeliveryPlace place;
    int in_flight = 0;
    int window = 0;
    std::int64_t last_ns = 0;  // when its last task ended
    double gap_ns = 0;         // the time between its tasks' ends (moving average)
    std::vector<WireTask> batch;
    std::vector<TaskSpec> specs;  // rank 0's own share
    std::vector<std::uint64_t> ids;
  };
  struct Entry {
    Ref<TaskSink> sink;
    std::uint64_t part = 0;
    std::uint64_t first = 0;
    std::uint64_t elements = 0;
    Invoker invoker = nullptr;
    std::vector<std::byte> payload;
    std::int64_t limit_ns = 0;
    int share = -1;  // -1: not sent
    Spans done;      // a chunk: the elements whose outcomes were delivered (or are being)
  };
  struct Delivery {
    Ref<TaskSink> sink;
    std::uint64_t part = 0;
    std::uint64_t first = 0;
    bool chunk = false;
    Spans covered;
    std::int32_t pid = 0;
    std::uint64_t ns = 0;
    std::vector<std::byte> data;
    std::exception_ptr error;
    bool last = true;
    const DeliveryPlace* place = nullptr;
  };
  struct Query {
    QueryMsg msg;
    std::vector<int> shares;
    int waiting = 0;
    bool value = false;
    bool done = false;
  };
  enum class Stop { kNone, kJoin, kKill };

  void run() noexcept;
  void loop();
  bool ask(std::uint64_t first, std::uint64_t count, bool cancel, bool kill);
  void withdraw_locked(std::uint64_t id, std::vector<Delivery>& out);
  void dispatch_locked();
  int window_of(const Share& s) const noexcept;
  void handle_outcomes_locked(int share, std::vector<Outcome>& outs, std::vector<Delivery>& out);
  void deliver(std::vector<Delivery>& ds);
  void receive_all(std::vector<Delivery>& ds, bool& did);
  void stop_ranks(bool kill);
  void notify_locked() {
    wake_ = true;
    cv_.notify_all();
  }
  [[nodiscard]] bool on_thread() const noexcept {
    return std::this_thread::get_id() == thread_.get_id();
  }
  void publish_unfinished_locked() {
    runtime().unfinished.store(undelivered_, std::memory_order_relaxed);
  }

  Runtime& rt_;
  const int fixed_window_;
  std::vector<Share> shares_;  // [0]: rank 0 (if it works); then the other ranks in order
  std::unordered_map<int, int> share_of_rank_;
  std::uint32_t images_known_ = 0;
  Ref<PoolLink> link_;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wake_ = false;
  bool closed_ = false;
  bool terminated_ = false;
  Stop stop_ = Stop::kNone;
  bool finished_ = false;  // the communication thread has ended
  bool orphaned_ = false;  // released on its own thread: it deletes the engine when it ends
  std::uint64_t next_id_ = 1;
  std::deque<std::uint64_t> pending_;
  std::unordered_map<std::uint64_t, Entry> tasks_;
  std::size_t undelivered_ = 0;
  int remote_in_flight_ = 0;
  std::vector<Delivery> stranded_;  // failures made outside the thread, delivered by it
  std::uint64_t next_req_ = 1;
  std::map<std::uint64_t, Query*> queries_;  // asked and not yet answered by every rank
  std::vector<Query*> unsent_;               // of those, the ones not sent yet
  // Rank 0's share. Last: destroyed first, while the members its wake callback uses live.
  std::unique_ptr<Node> local_;
};

// ---- construction: the handshake ----

// The options' checks, before anything is made (ValueError).
void check_options(const PoolOptions& options, const MpiOptions& mpi, const Runtime& rt_) {
  if (mpi.window < 0) throw ValueError("mproc::mpi::Pool: MpiOptions::window must not be negative");
  if (options.processes && *options.processes <= 0)
    throw ValueError("mproc::mpi::Pool: processes must be at least 1");
  if (options.maxtasksperchild && *options.maxtasksperchild <= 0)
    throw ValueError("mproc::Pool: maxtasksperchild must be a positive number or empty");
  if (options.start_method && *options.start_method != StartMethod::fork)
    throw ValueError(
        "mproc::mpi::Pool: each rank's workers are forked from the rank (start_method must be "
        "empty or fork)");
  if (options.worker_exit)
    throw ValueError("mproc::mpi::Pool: PoolOptions::worker_exit is not supported over MPI");
  if (!rt_.launched && !mpi.rank0_works)
    throw ValueError(
        "mproc::mpi::Pool: MpiOptions::rank0_works is false, and the program was not started by "
        "an MPI launcher: no rank would run workers");
}

Engine::Engine(const PoolOptions& options, const MpiOptions& mpi, std::vector<int>& per_rank)
    : rt_(runtime()), fixed_window_(mpi.window) {
  StartMsg start;
  start.processes = options.processes.value_or(0);
  start.maxtasks = options.maxtasksperchild.value_or(0);
  start.task_limit_ns = mproc::detail::limit_ns(options.task_timeout);
  start.init_limit_ns = mproc::detail::limit_ns(options.initializer_timeout);
  start.daemon = options.daemon;
  start.insights = options.insights;
  if (const auto& init = options.initializer.target()) {
    const std::type_info* culprit = nullptr;
    if (init->cannot_travel(culprit) != 0)
      throw ValueError(
          "mproc::mpi::Pool: the initializer cannot travel to other ranks: a lambda with "
          "captures, a std::function or a function object without serialize(). Use a function, "
          "a lambda without captures, or bind data with mproc::partial(f, args...)");
    mproc::detail::Descriptors fds;
    {
      mproc::detail::TravelOut scope(fds);
      start.init_bytes = init->encode();
    }
    if (fds.size() != 0)
      throw ValueError(
          "mproc::mpi::Pool: the initializer's arguments hold mproc handles (Queue, Lock, "
          "SharedMemory, ...), which cannot travel to another machine");
    start.has_init = true;
    start.init_decoder = mproc::detail::code_ref_of(init->decoder());
  }
  start.probes = record_loaded_images();
  images_known_ = mproc::detail::image_count();
  start.images = mproc::detail::image_records(0);

  if (rt_.launched) {
    rt_.link->set_piece(mpi.piece_bytes);
    const std::vector<std::byte> msg = frame(kStart, start);
    for (int r = 1; r < rt_.size; ++r) rt_.link->send(r, kDown, msg);
  }
  // Rank 0's own share starts while the others start theirs.
  std::string local_error;
  if (mpi.rank0_works) {
    const int n = options.processes.value_or(default_workers(rt_.node_ranks));
    try {
      local_ = std::make_unique<Node>(start, n, true, [this] {
        std::lock_guard<std::mutex> g(mu_);
        notify_locked();
      });
      Share s;
      s.rank = 0;
      s.workers = n;
      shares_.push_back(std::move(s));
    } catch (const std::exception& e) {
      local_error = e.what();
    }
  }
  per_rank.assign(static_cast<std::size_t>(rt_.size), 0);
  if (local_) per_rank[0] = local_->workers();
  std::string error;
  if (!local_error.empty()) error = "rank 0 (host " + rt_.host + "): " + local_error;
  std::vector<int> started;
  for (int k = 1; k < rt_.size; ++k) {
    int from = 0;
    std::vector<std::byte> buf;
    std::size_t off = 0;
    rt_.link->receive(MPI_ANY_SOURCE, kUp, from, buf, off);
    Reader r(buf.data() + off, buf.size() - off);
    if (r.read_value<std::uint8_t>() != kStarted)
      throw ProcessError("mproc::mpi::Pool: rank " + std::to_string(from) +
                         " answered the start with another message");
    const auto st = mproc::decode<StartedMsg>(r);
    if (!st.error.empty()) {
      if (error.empty())
        error = "rank " + std::to_string(from) + " (host " + st.host + "): " + st.error;
      continue;
    }
    started.push_back(from);
    per_rank[static_cast<std::size_t>(from)] = st.workers;
    Share s;
    s.rank = from;
    s.workers = st.workers;
    s.place = DeliveryPlace{from, st.host};
    shares_.push_back(std::move(s));
  }
  if (rt_.launched) rt_.link->progress();
  if (local_) shares_[0].place = DeliveryPlace{0, rt_.host};
  if (!error.empty()) {
    // The ranks that started stop again; the pool is not made.
    for (int r : started) rt_.link->send(r, kDown, frame(kStop, true));
    for (std::size_t k = 0; k < started.size(); ++k) {
      int from = 0;
      std::vector<std::byte> buf;
      std::size_t off = 0;
      rt_.link->receive(MPI_ANY_SOURCE, kUp, from, buf, off);  // outcomes cannot come: no task
      if (buf.size() > off && buf[off] != static_cast<std::byte>(kStopped)) --k;
    }
    if (rt_.launched) rt_.link->flush();
    local_.reset();
    throw ProcessError("mproc::mpi::Pool: cannot start the workers of " + error);
  }
  std::sort(shares_.begin(), shares_.end(),
            [](const Share& a, const Share& b) { return a.rank < b.rank; });
  for (std::size_t i = 0; i < shares_.size(); ++i) {
    share_of_rank_[shares_[i].rank] = static_cast<int>(i);
    shares_[i].window = window_of(shares_[i]);
  }
  link_ = mproc::detail::make_pool_link(this);
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  if (thread_.joinable()) thread_.join();
  local_.reset();
  if (link_) mproc::detail::detach_pool_link(*link_);
}

// ---- calls from the Pool ----

std::uint64_t Engine::submit(std::vector<TaskSpec>& specs, const Ref<TaskSink>& sink,
                             bool continuation) {
  for (const TaskSpec& s : specs)
    if (s.fds.size() != 0)
      throw ValueError(
          "mproc::mpi::Pool: a task's arguments hold mproc handles (Queue, Lock, SharedMemory, "
          "...), which are views of this machine and cannot travel to another rank");
  if (const std::uint32_t n = mproc::detail::image_count(); n > images_known_) {
    const auto late = mproc::detail::image_records(images_known_);
    throw ValueError("mproc::mpi::Pool: a task's code is in " +
                     (late.empty() ? std::string("a library") : late.front().path) +
                     ", loaded after the pool started: the ranks' workers cannot run it. Make the "
                     "pool after loading it");
  }
  std::lock_guard<std::mutex> g(mu_);
  if (terminated_ || stop_ != Stop::kNone)
    throw ValueError(continuation ? "mproc::Pool: the pool was joined or terminated before the "
                                    "imap's input was used up"
                                  : "mproc::Pool: Pool not running");
  if (closed_ && !continuation) throw ValueError("mproc::Pool: Pool not running");
  const std::uint64_t first = next_id_;
  for (TaskSpec& s : specs) {
    const std::uint64_t id = next_id_++;
    Entry e;
    e.sink = sink;
    e.part = s.part;
    e.first = s.first;
    e.elements = s.elements;
    e.invoker = s.invoker;
    e.payload = std::move(s.payload);
    e.limit_ns = s.limit_ns;
    tasks_.emplace(id, std::move(e));
    pending_.push_back(id);
  }
  undelivered_ += specs.size();
  publish_unfinished_locked();
  notify_locked();
  return first;
}

void Engine::withdraw_locked(std::uint64_t id, std::vector<Delivery>& out) {
  auto it = tasks_.find(id);
  if (it == tasks_.end() || it->second.share >= 0) return;
  Delivery d;
  d.sink = std::move(it->second.sink);
  d.part = it->second.part;
  d.first = it->second.first;
  d.chunk = it->second.elements != 0;
  if (d.chunk) d.covered = Spans{mproc::detail::Span{0, it->second.elements}};
  d.error = mproc::detail::cancelled_error();
  tasks_.erase(it);  // its id stays in pending_, where dispatch skips it
  out.push_back(std::move(d));
}

bool Engine::ask(std::uint64_t first, std::uint64_t count, bool cancel, bool kill) {
  Query q;
  bool withdrew = false;
  {
    std::unique_lock<std::mutex> g(mu_);
    std::vector<bool> asked(shares_.size(), false);
    auto consider = [&](std::uint64_t id, Entry& e) {
      if (e.share < 0) {
        if (cancel) {
          const std::size_t before = stranded_.size();
          withdraw_locked(id, stranded_);
          withdrew |= stranded_.size() != before;
        }
        return;
      }
      q.msg.ids.push_back(id);
      if (!asked[static_cast<std::size_t>(e.share)]) {
        asked[static_cast<std::size_t>(e.share)] = true;
        q.shares.push_back(e.share);
      }
    };
    if (count <= tasks_.size()) {
      for (std::uint64_t id = first; id < first + count; ++id)
        if (auto it = tasks_.find(id); it != tasks_.end()) consider(id, it->second);
    } else {
      std::vector<std::uint64_t> ids;
      for (auto& [id, e] : tasks_)
        if (id >= first && id - first < count) ids.push_back(id);
      std::sort(ids.begin(), ids.end());
      for (std::uint64_t id : ids) consider(id, tasks_.at(id));
    }
    if (withdrew) notify_locked();
    // From a callback (this thread) nothing can wait for a rank's answer.
    if (q.shares.empty() || on_thread() || finished_ || stop_ != Stop::kNone) return withdrew;
    q.msg.req = next_req_++;
    q.msg.cancel = cancel;
    q.msg.kill = kill;
    q.waiting = static_cast<int>(q.shares.size());
    queries_[q.msg.req] = &q;
    unsent_.push_back(&q);
    notify_locked();
    cv_.wait(g, [&] { return q.done || finished_; });
    queries_.erase(q.msg.req);
    std::erase(unsent_, &q);
  }
  return withdrew || q.value;
}

void Engine::cancel_pending() {
  std::lock_guard<std::mutex> g(mu_);
  for (std::uint64_t id : pending_) withdraw_locked(id, stranded_);
  notify_locked();
}

void Engine::close() {
  std::lock_guard<std::mutex> g(mu_);
  closed_ = true;
}

void Engine::terminate() {
  std::vector<Delivery> failed;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (terminated_ || finished_) return;
    terminated_ = true;
    closed_ = true;
    const auto broken = std::make_exception_ptr(
        BrokenPool("mproc::Pool: the pool was terminated before the task finished"));
    for (auto& [id, e] : tasks_) {
      Delivery d;
      d.sink = std::move(e.sink);
      d.part = e.part;
      d.first = e.first;
      d.chunk = e.elements != 0;
      if (d.chunk) {
        // Only the elements without an outcome: a piece of the chunk may be on its way to the
        // sink on the communication thread now.
        d.covered = remaining(e.elements, std::move(e.done));
        if (d.covered.empty()) {  // cannot be (its last piece would have ended it); counted
          --undelivered_;
          continue;
        }
      }
      d.error = broken;
      failed.push_back(std::move(d));
    }
    tasks_.clear();
    pending_.clear();
    for (Share& s : shares_) s.in_flight = 0;
    remote_in_flight_ = 0;
  }
  deliver(failed);  // on this thread, as a local pool's terminate()
  std::unique_lock<std::mutex> g(mu_);
  stop_ = Stop::kKill;
  notify_locked();
  if (!on_thread()) cv_.wait(g, [&] { return finished_; });
}

void Engine::join() {
  if (on_thread())
    throw ValueError(
        "mproc::Pool: join() cannot be called from a callback (it would wait for the callback's "
        "own task)");
  std::unique_lock<std::mutex> g(mu_);
  if (finished_) return;
  if (!closed_) throw ValueError("mproc::Pool: Pool is still running");
  cv_.wait(g, [&] { return undelivered_ == 0 || terminated_; });
  if (stop_ == Stop::kNone) stop_ = terminated_ ? Stop::kKill : Stop::kJoin;
  notify_locked();
  cv_.wait(g, [&] { return finished_; });
}

void Engine::release() noexcept {
  if (on_thread()) {
    terminate();
    std::lock_guard<std::mutex> g(mu_);
    orphaned_ = true;
    thread_.detach();
    return;
  }
  try {
    close();
    join();
  } catch (...) {
    terminate();
  }
  delete this;
}

// ---- the communication thread ----

int Engine::window_of(const Share& s) const noexcept {
  if (fixed_window_ > 0) return s.workers * fixed_window_;
  // The time between the share's task ends, times its workers: about one task's duration.
  const double task = s.gap_ns * s.workers;
  int depth = 4;
  if (s.gap_ns > 0) depth = task < 100e3 ? 32 : task < 1e6 ? 8 : 2;
  return std::max(1, s.workers * depth);
}

void Engine::dispatch_locked() {
  while (!pending_.empty()) {
    const std::uint64_t id = pending_.front();
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.share >= 0) {  // withdrawn
      pending_.pop_front();
      continue;
    }
    // The share with the most room for its size.
    int best = -1;
    double room = 0;
    for (std::size_t i = 0; i < shares_.size(); ++i) {
      const Share& s = shares_[i];
      const int free = s.window - s.in_flight;
      if (free <= 0) continue;
      const double r = static_cast<double>(free) / s.window;
      if (best < 0 || r > room) {
        best = static_cast<int>(i);
        room = r;
      }
    }
    if (best < 0) return;
    pending_.pop_front();
    Share& s = shares_[static_cast<std::size_t>(best)];
    Entry& e = it->second;
    e.share = best;
    ++s.in_flight;
    if (s.rank == 0 && local_) {
      s.specs.push_back(
          TaskSpec{e.invoker, std::move(e.payload), id, e.first, e.elements, {}, e.limit_ns});
      s.ids.push_back(id);
    } else {
      ++remote_in_flight_;
      WireTask t;
      t.id = id;
      t.invoker = mproc::detail::code_ref_of(reinterpret_cast<const void*>(e.invoker));
      t.first = e.first;
      t.elements = e.elements;
      t.limit_ns = e.limit_ns;
      t.payload = std::move(e.payload);
      s.batch.push_back(std::move(t));
    }
  }
}

void Engine::handle_outcomes_locked(int share, std::vector<Outcome>& outs,
                                    std::vector<Delivery>& out) {
  Share& s = shares_[static_cast<std::size_t>(share)];
  for (Outcome& o : outs) {
    auto it = tasks_.find(o.id);
    if (it == tasks_.end()) continue;  // terminated meanwhile
    Entry& e = it->second;
    Delivery d;
    d.part = e.part;
    d.first = e.first;
    d.chunk = o.kind == kElements || o.kind == kElementsError;
    d.covered = std::move(o.covered);
    d.pid = o.pid;
    d.ns = o.ns;
    d.data = std::move(o.data);
    d.place = s.rank == 0 ? nullptr : &s.place;
    if (o.kind == kError || o.kind == kElementsError)
      d.error = rebuild_error(o.error, s.rank, s.place.host, o.id, e.elements == 0);
    d.last = o.last;
    if (o.last) {
      d.sink = std::move(e.sink);
      tasks_.erase(it);
      --s.in_flight;
      if (s.rank != 0 || !local_) --remote_in_flight_;
      const std::int64_t t = now_ns();
      if (s.last_ns != 0) {
        const double gap = static_cast<double>(t - s.last_ns);
        s.gap_ns = s.gap_ns == 0 ? gap : 0.9 * s.gap_ns + 0.1 * gap;
        s.window = window_of(s);
      }
      s.last_ns = t;
    } else {
      d.sink = e.sink;
      e.done.insert(e.done.end(), d.covered.begin(), d.covered.end());
    }
    out.push_back(std::move(d));
  }
  outs.clear();
}

void Engine::deliver(std::vector<Delivery>& ds) {
  std::size_t ended = 0;
  for (Delivery& d : ds) {
    mproc::detail::set_delivery_place(d.place);
    mproc::detail::deliver_outcome(*d.sink, d.part, d.chunk, d.first, d.covered, d.pid, d.ns,
                                   d.data, d.error);
    mproc::detail::set_delivery_place(nullptr);
    d.sink = Ref<TaskSink>();
    if (d.last) ++ended;
  }
  ds.clear();
  if (ended != 0) {
    std::lock_guard<std::mutex> g(mu_);
    undelivered_ -= std::min(undelivered_, ended);
    publish_unfinished_locked();
    cv_.notify_all();
  }
}

void Engine::receive_all(std::vector<Delivery>& ds, bool& did) {
  if (!rt_.launched) return;
  int from = 0;
  std::vector<std::byte> buf;
  std::size_t off = 0;
  std::vector<Outcome> outs;
  while (rt_.link->try_receive(MPI_ANY_SOURCE, kUp, from, buf, off)) {
    did = true;
    Reader r(buf.data() + off, buf.size() - off);
    const auto kind = r.read_value<std::uint8_t>();
    if (kind == kOutcomes) {
      outs = mproc::decode<std::vector<Outcome>>(r);
      std::lock_guard<std::mutex> g(mu_);
      if (auto it = share_of_rank_.find(from); it != share_of_rank_.end())
        handle_outcomes_locked(it->second, outs, ds);
    } else if (kind == kReply) {
      const auto rep = mproc::decode<ReplyMsg>(r);
      std::lock_guard<std::mutex> g(mu_);
      if (auto it = queries_.find(rep.req); it != queries_.end()) {
        Query& q = *it->second;
        q.value |= rep.value;
        if (--q.waiting == 0) {
          q.done = true;
          cv_.notify_all();
        }
      }
    }
  }
}

void Engine::stop_ranks(bool kill) {
  if (local_) local_->stop(kill);
  if (!rt_.launched) return;
  int waiting = 0;
  for (const Share& s : shares_)
    if (s.rank != 0) {
      rt_.link->send(s.rank, kDown, frame(kStop, kill));
      ++waiting;
    }
  int from = 0;
  std::vector<std::byte> buf;
  std::size_t off = 0;
  while (waiting > 0) {
    rt_.link->receive(MPI_ANY_SOURCE, kUp, from, buf, off);
    if (buf.size() > off && buf[off] == static_cast<std::byte>(kStopped)) --waiting;
    rt_.link->progress();
  }
  rt_.link->flush();
}

void Engine::run() noexcept {
  try {
    loop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc::mpi::Pool: the communication thread failed: %s\n", e.what());
    std::fflush(stderr);
    MPI_Abort(rt_.comm, 70);
  }
  bool orphaned = false;
  rt_.pool_open.store(false);  // the ranks may serve another pool now
  {
    std::lock_guard<std::mutex> g(mu_);
    finished_ = true;
    orphaned = orphaned_;
    cv_.notify_all();
  }
  if (orphaned) delete this;
}

void Engine::loop() {
  std::vector<Delivery> ds;
  std::vector<Outcome> outs;
  std::vector<std::pair<int, std::vector<WireTask>>> batches;
  std::vector<TaskSpec> local_specs;
  std::vector<std::uint64_t> local_ids;
  std::vector<std::pair<Query*, std::vector<int>>> asks;
  std::int64_t idle_since = now_ns();
  for (;;) {
    bool did = false;
    Stop stop = Stop::kNone;
    {
      std::lock_guard<std::mutex> g(mu_);
      wake_ = false;
      if (stop_ == Stop::kNone) dispatch_locked();
      for (Share& s : shares_) {
        if (!s.batch.empty()) batches.emplace_back(s.rank, std::move(s.batch));
        s.batch.clear();
        if (!s.specs.empty()) {
          local_specs.swap(s.specs);
          local_ids.swap(s.ids);
        }
      }
      for (Query* q : unsent_) asks.emplace_back(q, q->shares);
      unsent_.clear();
      if (!stranded_.empty()) {
        for (Delivery& d : stranded_) ds.push_back(std::move(d));
        stranded_.clear();
      }
      stop = stop_;
    }
    if (stop != Stop::kNone) {
      deliver(ds);
      stop_ranks(stop == Stop::kKill);
      return;
    }
    for (auto& [rank, tasks] : batches) {
      rt_.link->send(rank, kDown, frame(kTasks, tasks));
      did = true;
    }
    batches.clear();
    if (!local_specs.empty()) {
      local_->submit_local(local_specs, local_ids);
      local_specs.clear();
      local_ids.clear();
      did = true;
    }
    for (auto& [q, shares] : asks) {
      bool local_value = false;
      int answered = 0;
      for (int sh : shares) {
        const Share& s = shares_[static_cast<std::size_t>(sh)];
        if (s.rank == 0 && local_) {
          local_value |= local_->query(q->msg);
          ++answered;
        } else {
          rt_.link->send(s.rank, kDown, frame(kQuery, q->msg));
        }
      }
      std::lock_guard<std::mutex> g(mu_);
      q->value |= local_value;
      q->waiting -= answered;
      if (q->waiting == 0) {
        q->done = true;
        cv_.notify_all();
      }
      did = true;
    }
    asks.clear();
    receive_all(ds, did);
    if (local_) {
      local_->take(outs);
      if (!outs.empty()) {
        did = true;
        std::lock_guard<std::mutex> g(mu_);
        handle_outcomes_locked(share_of_rank_[0], outs, ds);
      }
    }
    if (!ds.empty()) deliver(ds);
    bool sending = rt_.launched && rt_.link->progress();
    const std::int64_t t = now_ns();
    if (did) {
      idle_since = t;
      continue;
    }
    std::unique_lock<std::mutex> g(mu_);
    if (wake_) continue;
    // Rank 0's own outcomes wake this thread; the other ranks' must be polled for. Either way,
    // right after a message the next one is likely soon: yield a while before sleeping.
    const bool remote_busy = remote_in_flight_ > 0 || sending || !queries_.empty();
    const bool busy = remote_busy || undelivered_ != 0;
    if (busy && t - idle_since < kSpinNs) {
      g.unlock();
      std::this_thread::yield();
    } else if (!remote_busy) {
      cv_.wait(g, [&] { return wake_; });
    } else {
      cv_.wait_for(g, std::chrono::nanoseconds(idle_sleep_ns(t - idle_since)),
                   [&] { return wake_; });
    }
  }
}

namespace {
thread_local std::vector<int> t_per_rank;

Ref<mproc::detail::PoolCore> make_core(const PoolOptions& options, const MpiOptions& mpi) {
  Runtime& rt = runtime();
  if (rt.launched && rt.rank != 0)
    throw ProcessError(
        "mproc::mpi::Pool: made on rank " + std::to_string(rt.rank) +
        "; only rank 0 makes pools (the other ranks serve in mproc::init, which never returns "
        "there: was <mproc/mpi.hpp> included in the program that calls init?)");
  check_options(options, mpi, rt);
  if (rt.pool_open.exchange(true))
    throw ProcessError(
        "mproc::mpi::Pool: another mpi::Pool of this program is still open (the ranks serve one "
        "pool at a time: join or destroy it first)");
  try {
    std::vector<int> per_rank;
    auto* engine = new Engine(options, mpi, per_rank);
    int total = 0;
    for (int n : per_rank) total += n;
    t_per_rank = std::move(per_rank);
    return mproc::detail::make_ref<mproc::detail::PoolCore>(mproc::detail::Box<PoolEngine>(engine),
                                                            std::max(1, total));
  } catch (...) {
    rt.pool_open.store(false);
    throw;
  }
}
}  // namespace

}  // namespace mproc::mpi::detail

namespace mproc::mpi {

Pool::Pool(PoolOptions options, MpiOptions mpi)
    : mproc::Pool(detail::make_core(options, mpi)), per_rank_(std::move(detail::t_per_rank)) {}

}  // namespace mproc::mpi
