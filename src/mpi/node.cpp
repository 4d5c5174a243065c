// One rank's share of an MPI pool (see node.hpp), and how errors cross between ranks.
#include "mpi/node.hpp"

#include <link.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <mproc/errors.hpp>
#include <mproc/pool.hpp>
#include <string>
#include <utility>

namespace mproc::mpi::detail {

using mproc::detail::ProcessTarget;
using mproc::detail::TaskSpec;

// ---- errors ----

WireError describe_error(const std::exception_ptr& e) noexcept {
  WireError w;
  auto position = [&w](std::optional<std::size_t> p) {
    w.has_position = p.has_value();
    w.position = p.value_or(0);
  };
  auto remote = [&](const RemoteError& x) {
    w.cls = kRemote;
    w.type = x.type_name();
    w.what = x.remote_what();
    w.trace = x.traceback();
    w.pid = x.pid();
    position(x.position());
  };
  try {
    try {
      std::rethrow_exception(e);
    } catch (const CancelledError& x) {
      w.cls = kCancelled;
      w.what = x.what();
    } catch (const TaskTimeout& x) {
      w.cls = kTimeout;
      w.what = x.what();
      w.limit = x.limit();
      position(x.position());
    } catch (const WorkerLost& x) {
      w.cls = kLost;
      w.what = x.what();
      w.pid = x.pid();
      w.exitcode = x.exitcode();
      position(x.position());
    } catch (const RemoteError& x) {
      remote(x);
    } catch (const BrokenPool& x) {
      w.cls = kBroken;
      w.what = x.what();
    } catch (const DecodeError& x) {
      w.cls = kDecode;
      w.what = x.what();
    } catch (const std::nested_exception& n) {
      // A type registered with register_remote_exception: the RemoteError is nested in it.
      try {
        n.rethrow_nested();
      } catch (const RemoteError& x) {
        remote(x);
      } catch (...) {
        w.cls = kOther;
        mproc::detail::describe_current_exception(w.type, w.what);
      }
    } catch (...) {
      w.cls = kOther;
      mproc::detail::describe_current_exception(w.type, w.what);
      w.pid = mproc::detail::current_process_id();
    }
  } catch (...) {  // std::bad_alloc while describing
    w.cls = kOther;
  }
  return w;
}

std::exception_ptr rebuild_error(const WireError& e, int rank, const std::string& host,
                                 std::uint64_t task, bool whole_task) {
  TaskOrigin origin;
  origin.rank = rank;
  origin.host = host;
  if (e.has_position)
    origin.position = static_cast<std::size_t>(e.position);
  else if (whole_task)
    origin.task = task;
  const std::string where = " (on rank " + std::to_string(rank) + ", host " + host + ")";
  switch (e.cls) {
    case kCancelled:
      return mproc::detail::cancelled_error();
    case kTimeout:
      return std::make_exception_ptr(TaskTimeout(e.what + where, e.limit, origin));
    case kLost:
      return std::make_exception_ptr(WorkerLost(e.what + where, e.pid, e.exitcode, origin));
    case kBroken:
      return std::make_exception_ptr(BrokenPool(e.what + where));
    case kDecode:
      return std::make_exception_ptr(DecodeError(e.what + where));
    case kRemote:
    default:
      return mproc::detail::remote_error(e.type.empty() ? std::string("unknown") : e.type, e.what,
                                         e.trace, e.pid, origin);
  }
}

int default_workers(int ranks_on_node) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  int mine = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) mine = CPU_COUNT(&set);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (mine < 1) mine = 1;
  // Bound to a subset of the node's cores: the launcher gave this rank its own (one worker per
  // core of it). Unbound: the node's cores are shared by its ranks.
  if (online > 0 && mine < online) return mine;
  return std::max(1, mine / std::max(1, ranks_on_node));
}

// ---- the sink of the local pool ----

namespace {

// "task <local>" (not followed by a digit) becomes "task <id>" in `what`.
void renumber(std::string& what, std::uint64_t local, std::uint64_t id) {
  if (local == 0) return;
  const std::string from = "task " + std::to_string(local);
  for (std::size_t at = what.find(from); at != std::string::npos; at = what.find(from, at + 1)) {
    const std::size_t end = at + from.size();
    if (end < what.size() && what[end] >= '0' && what[end] <= '9') continue;
    what.replace(at, from.size(), "task " + std::to_string(id));
    return;
  }
}

}  // namespace

class Node::Sink final : public TaskSink {
 public:
  explicit Sink(Node* node) noexcept : node_(node) {}
  void on_ok(std::uint64_t part, Reader& r) override {
    Outcome o;
    o.id = part;
    o.kind = kOk;
    o.data.resize(r.remaining());
    r.read(o.data.data(), o.data.size());
    node_->forget(part, 0, true);
    node_->put(std::move(o));
  }
  void on_error(std::uint64_t part, std::exception_ptr error) noexcept override {
    try {
      Outcome o;
      o.id = part;
      o.kind = kError;
      o.error = describe_error(error);
      // The local pool names the task by its own number: rank 0's is the one the user knows.
      if (o.error.cls == kLost || o.error.cls == kTimeout)
        renumber(o.error.what, node_->local_id(part), part);
      node_->forget(part, 0, true);
      node_->put(std::move(o));
    } catch (...) {
    }
  }
  void on_elements(std::uint64_t part, std::uint64_t, const Spans& covered, std::int32_t pid,
                   std::uint64_t ns, Reader& r) override {
    Outcome o;
    o.id = part;
    o.kind = kElements;
    o.covered = covered;
    o.pid = pid;
    o.ns = ns;
    o.data.resize(r.remaining());
    r.read(o.data.data(), o.data.size());
    o.last = node_->forget_elements(part, mproc::detail::span_count(covered));
    node_->put(std::move(o));
  }
  void on_elements_error(std::uint64_t part, std::uint64_t, const Spans& covered,
                         std::exception_ptr error) noexcept override {
    try {
      Outcome o;
      o.id = part;
      o.kind = kElementsError;
      o.covered = covered;
      o.error = describe_error(error);
      o.last = node_->forget_elements(part, mproc::detail::span_count(covered));
      node_->put(std::move(o));
    } catch (...) {
    }
  }

 private:
  Node* node_;
};

// ---- Node ----

std::vector<const void*> executable_starts() {
  std::vector<const void*> starts;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto& out = *static_cast<std::vector<const void*>*>(arg);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && ph.p_memsz > 0) {
            out.push_back(reinterpret_cast<const void*>(info->dlpi_addr + ph.p_vaddr));
            break;
          }
        }
        return 0;
      },
      &starts);
  return starts;
}

namespace {

// This process's main executable as an image record (its path and build-id).
ImageRecord own_program() {
  const std::vector<const void*> starts = executable_starts();
  if (starts.empty()) return {};
  const CodeRef ref = mproc::detail::code_ref_of(starts.front());  // the program comes first
  for (ImageRecord& r : mproc::detail::image_records(ref.image))
    if (r.index == ref.image) return r;
  return {};
}

std::string hex(const std::string& id) {
  if (id.rfind("code-hash:", 0) == 0) return id;
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : id) {
    s += kHex[c >> 4];
    s += kHex[c & 0xF];
  }
  return s;
}

}  // namespace

void check_same_program(const StartMsg& start) {
  if (start.probes.empty()) return;
  const std::uint32_t image = start.probes.front().image;  // rank 0's program: listed first
  const ImageRecord* theirs = nullptr;
  for (const ImageRecord& r : start.images)
    if (r.index == image) theirs = &r;
  const ImageRecord mine = own_program();
  if (theirs == nullptr || mine.build_id.empty() || mine.build_id == theirs->build_id) return;
  throw ProcessError("this rank runs " + mine.path + " (build-id " + hex(mine.build_id) +
                     "), rank 0 runs " + theirs->path + " (build-id " + hex(theirs->build_id) +
                     "): every rank of the job must run the same program");
}

namespace {

std::optional<std::chrono::duration<double>> seconds_of(std::int64_t ns) {
  if (ns <= 0) return std::nullopt;
  return std::chrono::duration<double>(static_cast<double>(ns) / 1e9);
}

}  // namespace

Node::Node(const StartMsg& start, int workers, bool learn, std::function<void()> wake)
    : workers_(workers), wake_(std::move(wake)) {
  if (learn) {
    mproc::detail::learn_images(start.images);
    check_same_program(start);
  }
  for (const CodeRef& probe : start.probes) (void)mproc::detail::resolve_code(probe);
  PoolOptions o;
  o.processes = workers;
  if (start.has_init) {
    auto decoder = reinterpret_cast<ProcessTarget::Decoder>(
        const_cast<void*>(mproc::detail::resolve_code(start.init_decoder)));
    Reader in(start.init_bytes.data(), start.init_bytes.size());
    Ref<ProcessTarget> target(decoder(in));
    o.initializer = [target] { (void)target->run(); };
  }
  if (start.maxtasks > 0) o.maxtasksperchild = start.maxtasks;
  o.start_method = StartMethod::fork;
  o.task_timeout = seconds_of(start.task_limit_ns);
  o.initializer_timeout = seconds_of(start.init_limit_ns);
  o.daemon = start.daemon;
  o.insights = start.insights;
  sink_ = mproc::detail::make_ref<Sink>(this);
  core_ = mproc::detail::make_ref<PoolCore>(std::move(o));
}

Node::~Node() {
  stop(true);
  core_ = Ref<PoolCore>();  // its result thread ends here, while this Node's members live
}

void Node::put(Outcome&& o) {
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    was_empty = outbox_.empty();
    outbox_.push_back(std::move(o));
  }
  if (was_empty) {
    cv_.notify_one();
    if (wake_) wake_();
  }
}

std::uint64_t Node::local_id(std::uint64_t id) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = held_.find(id);
  return it == held_.end() ? 0 : it->second.local;
}

void Node::forget(std::uint64_t id, std::uint64_t, bool) {
  std::lock_guard<std::mutex> g(mu_);
  held_.erase(id);
}

bool Node::forget_elements(std::uint64_t id, std::uint64_t done) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = held_.find(id);
  if (it == held_.end()) return true;
  if (done >= it->second.left) {
    held_.erase(it);
    return true;
  }
  it->second.left -= done;
  return false;
}

void Node::submit(std::vector<WireTask>& tasks) {
  std::vector<TaskSpec> specs;
  std::vector<std::uint64_t> ids;
  specs.reserve(tasks.size());
  ids.reserve(tasks.size());
  for (WireTask& t : tasks) {
    Invoker invoker = nullptr;
    try {
      invoker =
          reinterpret_cast<Invoker>(const_cast<void*>(mproc::detail::resolve_code(t.invoker)));
    } catch (...) {
      Outcome o;
      o.id = t.id;
      o.kind = t.elements == 0 ? kError : kElementsError;
      if (t.elements != 0) o.covered = Spans{mproc::detail::Span{0, t.elements}};
      o.error = describe_error(std::current_exception());
      put(std::move(o));
      continue;
    }
    TaskSpec s{invoker, std::move(t.payload), t.id, t.first, t.elements, {}, t.limit_ns};
    specs.push_back(std::move(s));
    ids.push_back(t.id);
  }
  submit_local(specs, ids);
}

void Node::submit_local(std::vector<TaskSpec>& specs, std::vector<std::uint64_t>& ids) {
  if (specs.empty()) return;
  std::vector<std::uint64_t> elements(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) elements[i] = specs[i].elements;
  std::unique_lock<std::mutex> g(mu_);
  std::uint64_t first = 0;
  try {
    first = core_->submit(std::move(specs), sink_);
  } catch (...) {
    g.unlock();
    const WireError e = describe_error(std::current_exception());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      Outcome o;
      o.id = ids[i];
      o.kind = elements[i] == 0 ? kError : kElementsError;
      if (elements[i] != 0) o.covered = Spans{mproc::detail::Span{0, elements[i]}};
      o.error = e;
      put(std::move(o));
    }
    return;
  }
  for (std::size_t i = 0; i < ids.size(); ++i)
    held_[ids[i]] = Held{first + i, elements[i] == 0 ? 1 : elements[i]};
}

bool Node::query(const QueryMsg& q) {
  std::vector<std::uint64_t> locals;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (std::uint64_t id : q.ids)
      if (auto it = held_.find(id); it != held_.end()) locals.push_back(it->second.local);
  }
  bool any = false;
  const Ref<mproc::detail::PoolLink>& link = core_->link();
  for (std::uint64_t local : locals) {
    any |= q.cancel ? mproc::detail::cancel_tasks(*link, local, 1, q.kill)
                    : mproc::detail::tasks_running(*link, local, 1);
    if (any && !q.cancel) break;
  }
  return any;
}

void Node::stop(bool kill) noexcept {
  if (!core_) return;
  try {
    core_->close();
    if (kill)
      core_->terminate();
    else
      core_->join();
  } catch (...) {
  }
}

void Node::take(std::vector<Outcome>& out) {
  std::lock_guard<std::mutex> g(mu_);
  if (out.empty()) {
    out.swap(outbox_);
  } else {
    for (Outcome& o : outbox_) out.push_back(std::move(o));
    outbox_.clear();
  }
}

void Node::wait(std::int64_t ns) {
  std::unique_lock<std::mutex> g(mu_);
  if (!outbox_.empty()) return;
  if (ns < 0)
    cv_.wait(g, [&] { return !outbox_.empty(); });
  else
    cv_.wait_for(g, std::chrono::nanoseconds(ns), [&] { return !outbox_.empty(); });
}

Insights Node::insights() const { return core_->insights(); }

}  // namespace mproc::mpi::detail
