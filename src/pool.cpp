// Pool: the dispatcher, the result thread, the worker loop (see pool.hpp and docs/design.md).
//
// One mutex (`Impl::mu`) guards the bookkeeping: the tasks not yet dispatched (`pending`), the
// tasks accepted and not yet answered (`tasks`), and per worker slot the ids dispatched to it in
// order (`Slot::outstanding`). It is held for short bookkeeping and non-blocking queue calls only
// (try_put to a mailbox, try_get from a dead worker's mailbox); decoding results and running
// callbacks happen outside it.
#include <cxxabi.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mproc/pool.hpp>
#include <mproc/queue.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>

#include "pool_launcher.hpp"
#include "posix/error.hpp"
#include "posix/fd_passing.hpp"
#include "posix/pidfd.hpp"
#include "posix/region.hpp"
#include "posix/thread_id.hpp"
#include "thread_annotations.hpp"

namespace mproc::detail {

TaskSink::~TaskSink() = default;
// A sink gets the calls of its kind of task only (see TaskSink); the others are never made.
void TaskSink::on_ok(std::uint64_t, Reader&) {
  throw DecodeError("mproc::Pool: a task's result reached a sink of chunks");
}
void TaskSink::on_error(std::uint64_t, std::exception_ptr) noexcept {}
void TaskSink::on_elements(std::uint64_t, std::uint64_t, const Spans&, std::int32_t, std::uint64_t,
                           Reader&) {
  throw DecodeError("mproc::Pool: a chunk's result reached a sink of single tasks");
}
void TaskSink::on_elements_error(std::uint64_t, std::uint64_t, const Spans&,
                                 std::exception_ptr) noexcept {}

namespace {

// What a worker slot shares with the parent, which reads it once the worker is dead (see
// TaskContext): the task it runs, 1 + the index of the element it began last (0: none yet), and
// the outcomes it staged and has not sent: `staged` packs their count (bits 0-23), the bytes of
// their values (24-47) and of their error records (48-63); `staged_first` is the first one's
// element. The workers inherit it (shared memory made before the zygote).
constexpr std::size_t kStageValueBytes = std::size_t{1} << 20;
constexpr std::size_t kStageErrorBytes = std::size_t{32} << 10;
struct alignas(64) SlotShared {
  std::atomic<std::uint64_t> task{0};
  std::atomic<std::uint64_t> element{0};
  std::atomic<std::uint64_t> staged{0};
  std::atomic<std::uint64_t> staged_first{0};
  alignas(64) std::byte values[kStageValueBytes];
  std::byte errors[kStageErrorBytes];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(kStageValueBytes < (std::uint64_t{1} << 24) && kStageErrorBytes < (1u << 16));

// A chunk that has run this long since its last piece sends the outcomes it has staged. The clock
// is read every `stride` elements, a stride that doubles while elements are quick (under
// kQuickCheckNs between two reads), up to kMaxStride, and halves when they are slow.
constexpr std::int64_t kFlushNs = 2'000'000;
constexpr std::int64_t kQuickCheckNs = 50'000;
constexpr std::int64_t kSlowCheckNs = 500'000;
constexpr std::uint64_t kMaxStride = 4096;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TaskContext::TaskContext(Spans run, void* shared, EmitFn emit_fn, void* owner) noexcept
    : run_(std::move(run)),
      element_(&static_cast<SlotShared*>(shared)->element),
      staged_(&static_cast<SlotShared*>(shared)->staged),
      staged_first_(&static_cast<SlotShared*>(shared)->staged_first),
      values_(static_cast<SlotShared*>(shared)->values),
      errors_(static_cast<SlotShared*>(shared)->errors),
      value_cap_(kStageValueBytes),
      error_cap_(kStageErrorBytes),
      emit_(emit_fn),
      owner_(owner) {
  last_check_ns_ = last_emit_ns_ = now_ns();
}

bool TaskContext::make_room(std::size_t value_bytes) {
  flush();
  return value_bytes <= value_cap_;
}

void TaskContext::stage_error(std::uint64_t index, const std::string& type,
                              const std::string& what) {
  const std::size_t bytes =
      sizeof(std::uint64_t) + mproc::encoded_size(type) + mproc::encoded_size(what);
  auto write = [&](std::byte* at) {
    Writer w(at, at + bytes);
    w.write_value(index);
    mproc::encode(w, type);
    mproc::encode(w, what);
  };
  if (bytes > error_cap_ - error_bytes_ || records_ == kMaxRecords) flush();
  if (bytes > error_cap_) {
    std::vector<std::byte> alone(bytes);
    write(alone.data());
    send_alone(index, alone.data(), bytes, nullptr, 0);
    return;
  }
  write(errors_ + error_bytes_);
  error_bytes_ += bytes;
  commit(index);
}

void TaskContext::send_alone(std::uint64_t index, const std::byte* errors, std::size_t error_bytes,
                             const std::byte* values, std::size_t value_bytes) {
  flush();
  emit_(owner_, Spans{Span{index, index + 1}}, errors, error_bytes, values, value_bytes);
  last_emit_ns_ = now_ns();
}

void TaskContext::flush() {
  if (records_ == 0) return;
  emit_(owner_, covered_, errors_, error_bytes_, values_, value_bytes_);
  staged_->store(0, std::memory_order_relaxed);
  value_bytes_ = error_bytes_ = 0;
  records_ = 0;
  covered_.clear();
  last_emit_ns_ = last_check_ns_ = now_ns();
}

void TaskContext::finish(EmitFn final_emit, void* owner) {
  final_emit(owner, covered_, errors_, error_bytes_, values_, value_bytes_);
}

bool TaskContext::check_clock() noexcept {
  const std::int64_t now = now_ns();
  const std::int64_t since_check = now - last_check_ns_;
  last_check_ns_ = now;
  if (since_check < kQuickCheckNs)
    stride_ = std::min(stride_ * 2, kMaxStride);
  else if (since_check > kSlowCheckNs)
    stride_ = std::max<std::uint64_t>(stride_ / 2, 1);
  countdown_ = stride_;
  return now - last_emit_ns_ >= kFlushNs;
}

namespace {

// A message to a worker's mailbox; invoker 0 tells the worker to leave. A payload larger than
// max_task_bytes() does not travel in the message: it is in a memfd (`big` bytes) whose descriptor
// the parent sends over the slot's fd socket, tagged with the task's id.
// `run`: for a chunk of map/imap, the elements still to run (empty: all of them).
struct TaskMsg {
  std::uint64_t id = 0;
  std::uint64_t invoker = 0;
  std::uint64_t big = 0;
  Spans run;
  std::vector<std::byte> payload;
  template <class A>
  void serialize(A& ar) {
    ar(id, invoker, big, run, payload);
  }
};

enum EventKind : std::uint8_t {
  kOk = 1,           // a task's result (payload)
  kFailed = 2,       // a task threw (type, what)
  kReady = 3,        // a worker finished its initializer
  kInitFailed = 4,   // a worker's initializer threw (type, what); the worker then exits
  kExited = 5,       // (from the zygote) a worker ended and was reaped; status = exit code; for
                     // kSpawnFailed, id = the errno and type = the system call that failed
  kQuit = 6,         // (from the parent) the result thread should end
  kUndecodable = 7,  // (in the parent) a result whose payload could not be decoded (type, what)
  kWake = 8,         // (from the parent) tasks failed outside the result thread wait for it
  kPart = 9,         // outcomes of some elements of a chunk still running (covered, payload)
};

void describe_current(std::string& type, std::string& what) noexcept;

// Everything that reaches the parent: results and worker life events. Encoded by the codec
// below: the header (kind, slot, pid, status, id), then covered, payload, type and what.
struct EventMsg {
  std::uint8_t kind = 0;
  std::int32_t slot = -1;
  std::int32_t pid = 0;
  std::int32_t status = 0;
  std::uint64_t id = 0;
  Spans covered;  // kOk, kPart of a chunk: the elements whose outcomes the payload holds
  std::vector<std::byte> payload;
  std::string type;
  std::string what;
  std::uint64_t ns = 0;  // kOk, kPart of a chunk: how long the piece took in the worker
  // Not sent: kUndecodable: the size of what could not be decoded, and the kind that was sent;
  // when sending, a payload the message refers to instead of `payload` (a worker's staged piece).
  std::uint64_t bytes = 0;
  std::uint8_t sent_kind = 0;
  // A chunk's piece, sent from the staging areas (see TaskContext): its payload is the errors'
  // size, the errors, then the values.
  bool piece = false;
  const std::byte* piece_errors = nullptr;
  std::size_t piece_error_bytes = 0;
  const std::byte* piece_values = nullptr;
  std::size_t piece_value_bytes = 0;
};

}  // namespace
}  // namespace mproc::detail

// A result the parent cannot take (too large for its memory: std::bad_alloc, std::length_error;
// corrupt: DecodeError) must fail its own task, and neither vanish nor stop the result thread: the
// header is decoded first, and when the rest does not decode, the event becomes kUndecodable
// (naming the error) and the rest of the message is skipped, so the queue consumes it whole, a
// streamed one included. Only std::exception is caught: what the queue throws through a
// streamed message's refill when its producer died is no std::exception, and must reach the
// queue, which then resumes at the record that ended the stream.
template <>
struct mproc::codec<mproc::detail::EventMsg> {
  using EventMsg = mproc::detail::EventMsg;
  static constexpr std::size_t kHeader =
      sizeof(std::uint8_t) + 3 * sizeof(std::int32_t) + 2 * sizeof(std::uint64_t);
  static std::size_t payload_size(const EventMsg& m) {
    return m.piece ? 2 * sizeof(std::uint64_t) + m.piece_error_bytes + m.piece_value_bytes
                   : mproc::encoded_size(m.payload);
  }
  static std::size_t size(const EventMsg& m) {
    return kHeader + mproc::encoded_size(m.covered) + payload_size(m) +
           mproc::encoded_size(m.type) + mproc::encoded_size(m.what);
  }
  static void encode(Writer& w, const EventMsg& m) {
    w.write_value(m.kind);
    w.write_value(m.slot);
    w.write_value(m.pid);
    w.write_value(m.status);
    w.write_value(m.id);
    w.write_value(m.ns);
    mproc::encode(w, m.covered);
    if (m.piece) {  // the same bytes as a std::vector<std::byte> of them
      w.write_value(static_cast<std::uint64_t>(sizeof(std::uint64_t) + m.piece_error_bytes +
                                               m.piece_value_bytes));
      w.write_value(static_cast<std::uint64_t>(m.piece_error_bytes));
      w.write(m.piece_errors, m.piece_error_bytes);
      w.write(m.piece_values, m.piece_value_bytes);
    } else {
      mproc::encode(w, m.payload);
    }
    mproc::encode(w, m.type);
    mproc::encode(w, m.what);
  }
  static EventMsg decode(Reader& r) {
    EventMsg m;
    m.kind = r.read_value<std::uint8_t>();
    m.slot = r.read_value<std::int32_t>();
    m.pid = r.read_value<std::int32_t>();
    m.status = r.read_value<std::int32_t>();
    m.id = r.read_value<std::uint64_t>();
    m.ns = r.read_value<std::uint64_t>();
    const std::size_t rest = r.remaining();
    try {
      m.covered = mproc::decode<mproc::detail::Spans>(r);
      m.payload = mproc::decode<std::vector<std::byte>>(r);
      m.type = mproc::decode<std::string>(r);
      m.what = mproc::decode<std::string>(r);
    } catch (const std::exception&) {
      std::vector<std::byte>().swap(m.payload);
      mproc::detail::Spans().swap(m.covered);
      m.type.clear();
      m.what.clear();
      mproc::detail::describe_current(m.type, m.what);
      m.sent_kind = m.kind;
      m.kind = mproc::detail::kUndecodable;
      m.bytes = rest;
      r.skip(r.remaining());
    }
    return m;
  }
};

namespace mproc::detail {
namespace {

// Tasks dispatched to a worker and not answered yet, at most.
constexpr std::size_t kMailboxDepth = 2;
constexpr std::size_t kMailboxBytes = std::size_t{1} << 20;
constexpr std::size_t kEventBytes = std::size_t{4} << 20;
// The encoded size an automatic chunk of map/imap aims at, at most (PoolCore::chunk_bytes()).
constexpr std::size_t kChunkBytes = std::size_t{64} << 10;
// How long join() and terminate() wait for the zygote before killing it.
constexpr auto kZygoteGrace = std::chrono::seconds(30);
// How long a constructor that fails waits for the zygote to kill and reap its workers.
constexpr auto kZygoteAbortGrace = std::chrono::seconds(10);
// Errors of the result queue itself (not of one event) in a row before the pool is broken, and
// the pause between two attempts after the first.
constexpr int kQueueErrorsToBreak = 100;
constexpr auto kQueueErrorPause = std::chrono::milliseconds(10);
// Workers of one slot that may die before "ready" in a row (no initializer) before the pool breaks.
constexpr int kEarlyDeathRetries = 3;

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = (status == 0 && d) ? d : name;
  std::free(d);
  return out;
}

// The type name and what() of the exception being handled.
void describe_current(std::string& type, std::string& what) noexcept {
  try {
    const std::type_info* ti = abi::__cxa_current_exception_type();
    type = ti ? demangle(ti->name()) : "unknown exception";
    try {
      throw;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what.clear();
    }
  } catch (...) {
  }
}

std::string describe_exit(int code) {
  if (code == kSpawnFailed) return "could not be started";
  if (code == kExitUnknown)
    return "ended; its exit status is unknown (SIGCHLD is ignored or another waiter reaped it)";
  if (code < 0) {
    std::string s = "killed by signal " + std::to_string(-code);
    if (const char* abbrev = sigabbrev_np(-code)) s += std::string(" (SIG") + abbrev + ")";
    return s;
  }
  return "exited with code " + std::to_string(code);
}

[[noreturn]] void worker_leave(int code) noexcept {
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace

void describe_current_exception(std::string& type, std::string& what) noexcept {
  describe_current(type, what);
}

namespace {
std::mutex g_remote_mu;
std::unordered_map<std::string, RemoteFactory>& remote_factories() {
  static auto* m = new std::unordered_map<std::string, RemoteFactory>();  // never destroyed
  return *m;
}
}  // namespace

void register_remote_exception(const std::type_info& type, RemoteFactory make) {
  const std::string name = demangle(type.name());
  std::lock_guard<std::mutex> g(g_remote_mu);
  remote_factories()[name] = make;
}

std::exception_ptr remote_error(const std::string& type, const std::string& what, std::int32_t pid,
                                TaskOrigin origin) {
  RemoteFactory make = nullptr;
  {
    std::lock_guard<std::mutex> g(g_remote_mu);
    auto& m = remote_factories();
    if (auto it = m.find(type); it != m.end()) make = it->second;
  }
  RemoteError info(type, what, pid, origin);
  if (make) {
    try {
      return make(what, info);
    } catch (...) {
      // A factory that throws (its constructor did): fall back to the RemoteError.
    }
  }
  return std::make_exception_ptr(std::move(info));
}

std::int32_t current_process_id() noexcept { return static_cast<std::int32_t>(this_process_id()); }

namespace {

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

struct PoolCore::Impl {
  struct Entry {
    std::shared_ptr<TaskSink> sink;
    std::uint64_t part;
    std::shared_ptr<Region> big;  // the payload, when it travels in a memfd
    // Chunks of map/imap (elements > 0): the input's position of element 0, and the elements
    // without an outcome yet; the invoker and, while the chunk is dispatched, its payload, so that
    // what a dead worker did not finish can run again.
    std::uint64_t first = 0;
    std::uint64_t elements = 0;
    Spans todo;
    std::uint64_t invoker = 0;
    std::vector<std::byte> payload;
  };
  struct Slot {
    std::deque<std::uint64_t> outstanding;  // dispatched, unanswered, in dispatch order
    int dispatched = 0;                     // tasks given to the current worker
    bool ready = false;                     // its initializer has finished
    int pid = 0;
    std::string init_error;
    int early_deaths = 0;  // workers of this slot that died before "ready", in a row
  };
  // An outcome to deliver outside the lock: of a whole task, or (chunk) of the elements
  // `covered`. `last`: the task has no outcome left to deliver after this one.
  struct Delivery {
    std::shared_ptr<TaskSink> sink;
    std::uint64_t part;
    std::vector<std::byte> payload;
    std::exception_ptr error;
    bool chunk = false;
    bool last = true;
    std::uint64_t first = 0;
    Spans covered;
    std::int32_t pid = 0;
    std::uint64_t ns = 0;
  };
  // The delivery of every outcome `e` still owes: `e`'s elements without an outcome fail with
  // `error` (a chunk), or the task does.
  static Delivery fail_all(Entry& e, std::exception_ptr error) {
    Delivery d{e.sink, e.part, {}, std::move(error), false, true, 0, {}};
    if (e.elements != 0) {
      d.chunk = true;
      d.first = e.first;
      d.covered = std::move(e.todo);
    }
    return d;
  }
  enum class State { kRunning, kClosed, kTerminated };

  int n = 0;
  std::function<void()> initializer;
  int maxtasks = 0;
  std::vector<Queue<TaskMsg>> mailboxes;
  // Per slot, a SOCK_SEQPACKET pair that carries the memfds of large payloads: the parent sends on
  // fd_parent, the slot's worker receives on fd_worker (inherited through the zygote).
  std::vector<int> fd_parent;
  std::vector<int> fd_worker;
  Queue<EventMsg> events{0, QueueOptions{.capacity = kEventBytes}};
  // Per slot, what its worker runs and has staged (see SlotShared).
  SlotShared* slot_shared = nullptr;
  std::size_t slot_shared_bytes = 0;
  std::unique_ptr<WorkerLauncher> launcher;
  std::thread collector;
  // Set by shut_down() once the workers and the zygote are gone: the result thread ends after its
  // current batch (the kQuit event also wakes it, when the result queue has room for it).
  std::atomic<bool> quit_requested{false};

  mutable Mutex mu;
  std::condition_variable idle_cv;  // with mu: undelivered reached 0, terminated, or finished
  State state MPROC_GUARDED_BY(mu) = State::kRunning;
  bool stopping MPROC_GUARDED_BY(mu) = false;  // join/terminate is shutting the workers down
  bool finished MPROC_GUARDED_BY(mu) = false;  // workers, zygote and result thread are gone
  std::string broken MPROC_GUARDED_BY(mu);     // why the pool is broken (empty: it is not)
  std::uint64_t next_id MPROC_GUARDED_BY(mu) = 1;
  std::deque<TaskMsg> pending MPROC_GUARDED_BY(mu);
  std::unordered_map<std::uint64_t, Entry> tasks MPROC_GUARDED_BY(mu);
  // Accepted tasks whose outcome has not been delivered yet.
  std::size_t undelivered MPROC_GUARDED_BY(mu) = 0;
  std::vector<Slot> slots MPROC_GUARDED_BY(mu);
  // Tasks failed by the dispatcher (their memfd could not be made) on a thread other than the
  // result thread, which delivers them (callbacks run there).
  std::vector<Delivery> stranded MPROC_GUARDED_BY(mu);
  Mutex shutdown_mu;  // serialises join() and terminate()
  // Set (on the result thread) when the Pool was destroyed from one of its callbacks: the result
  // thread then deletes this state when it ends.
  bool orphaned = false;
  pid_t creator_pid = 0;  // the process the Pool belongs to

  ~Impl() {
    for (int fd : fd_parent) close_fd(fd);
    for (int fd : fd_worker) close_fd(fd);
    if (slot_shared) ::munmap(slot_shared, slot_shared_bytes);
  }

  // --- in a worker ---------------------------------------------------------------------------
  static void worker_main(void* ctx, int slot) noexcept {
    auto* self = static_cast<Impl*>(ctx);
    self->run_worker(slot);
  }

  [[noreturn]] void run_worker(int slot) noexcept {
    const int pid = static_cast<int>(getpid());
    Queue<TaskMsg>& mailbox = mailboxes[static_cast<std::size_t>(slot)];
    auto post = [&](EventMsg& ev) {
      try {
        events.put(ev);
      } catch (...) {
        worker_leave(70);
      }
    };
    EventMsg ev;
    ev.slot = slot;
    ev.pid = pid;
    if (initializer) {
      try {
        initializer();
      } catch (...) {
        ev.kind = kInitFailed;
        describe_current(ev.type, ev.what);
        post(ev);
        worker_leave(1);
      }
    }
    ev.kind = kReady;
    post(ev);
    int done = 0;
    SlotShared& shared = slot_shared[slot];
    struct Poster {
      Impl* self;
      int slot;
      int pid;
      std::uint64_t id;
      std::int64_t since;  // when the piece being staged began
    };
    // A piece of a chunk's outcomes, sent while the chunk runs on.
    auto emit_part = [](void* owner, const Spans& covered, const std::byte* errors,
                        std::size_t error_bytes, const std::byte* values, std::size_t value_bytes) {
      auto* p = static_cast<Poster*>(owner);
      EventMsg part;
      part.kind = kPart;
      part.slot = p->slot;
      part.pid = p->pid;
      part.id = p->id;
      const std::int64_t now = now_ns();
      part.ns = static_cast<std::uint64_t>(now - p->since);
      p->since = now;
      part.covered = covered;
      part.piece = true;
      part.piece_errors = errors;
      part.piece_error_bytes = error_bytes;
      part.piece_values = values;
      part.piece_value_bytes = value_bytes;
      try {
        p->self->events.put(part);
      } catch (...) {
        worker_leave(70);
      }
    };
    // A chunk's last piece goes in the task's own result event (`ev`).
    struct Final {
      EventMsg* ev;
      std::int64_t since;
    };
    auto emit_final = [](void* owner, const Spans& covered, const std::byte* errors,
                         std::size_t error_bytes, const std::byte* values,
                         std::size_t value_bytes) {
      auto* f = static_cast<Final*>(owner);
      f->ev->ns = static_cast<std::uint64_t>(now_ns() - f->since);
      f->ev->covered = covered;
      f->ev->piece = true;
      f->ev->piece_errors = errors;
      f->ev->piece_error_bytes = error_bytes;
      f->ev->piece_values = values;
      f->ev->piece_value_bytes = value_bytes;
    };
    for (;;) {
      TaskMsg t;
      try {
        t = mailbox.get();
      } catch (...) {
        worker_leave(71);
      }
      if (t.invoker == 0) worker_leave(0);
      shared.element.store(0, std::memory_order_relaxed);
      shared.staged.store(0, std::memory_order_relaxed);
      shared.task.store(t.id, std::memory_order_relaxed);
      ev = EventMsg{};
      ev.slot = slot;
      ev.pid = pid;
      ev.id = t.id;
      Poster poster{this, slot, pid, t.id, now_ns()};
      TaskContext ctx(std::move(t.run), &shared, emit_part, &poster);
      try {
        std::shared_ptr<Region> big;
        if (t.big != 0) big = receive_payload(slot, t);
        Reader r = big ? Reader(static_cast<const std::byte*>(big->data()), t.big)
                       : Reader(t.payload.data(), t.payload.size());
        reinterpret_cast<Invoker>(t.invoker)(r, ctx);
        ev.kind = kOk;
        if (ctx.chunk()) {  // its last piece
          Final f{&ev, poster.since};
          ctx.finish(emit_final, &f);
        } else {
          ev.payload = std::move(ctx.out());
        }
      } catch (...) {
        ev.kind = kFailed;
        describe_current(ev.type, ev.what);
      }
      post(ev);
      if (maxtasks > 0 && ++done >= maxtasks) worker_leave(0);
    }
  }

  // Maps the memfd that holds task `t`'s payload. Descriptors tagged with another id are left over
  // from a worker of this slot that died before it took them: they are dropped.
  std::shared_ptr<Region> receive_payload(int slot, const TaskMsg& t) {
    for (;;) {
      std::uint64_t tag = 0;
      int fd = -1;
      if (recv_fd(fd_worker[static_cast<std::size_t>(slot)], tag, fd)) worker_leave(72);
      if (tag != t.id) {
        ::close(fd);
        continue;
      }
      std::error_code ec;
      auto region = Region::map_fd(fd, static_cast<std::size_t>(t.big), ec);
      if (!region) throw std::system_error(ec, "mproc::Pool: mapping a task's payload failed");
      return region;
    }
  }

  // --- in the zygote -------------------------------------------------------------------------
  // Never waits: false when the result queue has no room now (the zygote tries again later).
  static bool report_exit(void* ctx, int slot, int pid, int code, int error,
                          const char* call) noexcept {
    auto* self = static_cast<Impl*>(ctx);
    try {
      EventMsg ev;
      ev.kind = kExited;
      ev.slot = slot;
      ev.pid = pid;
      ev.status = code;
      ev.id = static_cast<std::uint64_t>(error);
      if (call) ev.type = call;
      return self->events.try_put(ev);
    } catch (...) {
      return true;  // it would fail the same way every time
    }
  }

  // --- in the parent -------------------------------------------------------------------------
  // Gives pending tasks to the least-loaded mailboxes. A task whose payload is too large for a
  // mailbox gets its memfd here, when it is first dispatched, not when it is submitted: memfds
  // then exist only for tasks in the mailboxes or being run (at most kMailboxDepth per slot, plus
  // one waiting for room and those drained from a dead worker's mailbox), whatever the number of
  // large tasks submitted, so a map over many large elements holds a bounded number of
  // descriptors. The rest wait in `pending` as bytes in the parent's heap.
  void dispatch_locked() MPROC_REQUIRES(mu) {
    if (stopping || !broken.empty()) return;
    while (!pending.empty()) {
      int best = -1;
      for (int s = 0; s < n; ++s) {
        const Slot& sl = slots[static_cast<std::size_t>(s)];
        if (sl.outstanding.size() >= kMailboxDepth) continue;
        if (maxtasks > 0 && sl.dispatched >= maxtasks) continue;
        if (best < 0 ||
            sl.outstanding.size() < slots[static_cast<std::size_t>(best)].outstanding.size())
          best = s;
      }
      if (best < 0) return;
      TaskMsg& t = pending.front();
      Region* big = nullptr;
      if (t.big != 0) {
        switch (prepare_big_locked(t, big)) {
          case BigPayload::kReady:
            break;
          case BigPayload::kFailed:
            pending.pop_front();
            continue;
          case BigPayload::kLater:
            return;
        }
      }
      // Recorded before the put (this may throw std::bad_alloc; nothing after the put does), so
      // a task in a mailbox is always one the bookkeeping knows.
      Slot& sl = slots[static_cast<std::size_t>(best)];
      sl.outstanding.push_back(t.id);
      bool put = false;
      try {
        put = mailboxes[static_cast<std::size_t>(best)].try_put(t);
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
        (void)send_fd(fd_parent[static_cast<std::size_t>(best)], t.id, big->fd());
      }
      ++sl.dispatched;
      if (!big) {
        // A chunk keeps its payload until it is done: a dead worker's unfinished elements run
        // again from it (a large one keeps its memfd).
        auto e = tasks.find(t.id);
        if (e != tasks.end() && e->second.elements != 0) e->second.payload = std::move(t.payload);
      }
      pending.pop_front();
    }
  }

  enum class BigPayload { kReady, kFailed, kLater };

  // Makes the memfd of task `t`'s large payload (once: a task drained from a dead worker's mailbox
  // has it already) and frees the heap copy. When the memfd cannot be made the task fails with
  // std::system_error naming it and the errno (kFailed); kLater when even that failure cannot be
  // recorded now (no memory).
  BigPayload prepare_big_locked(TaskMsg& t, Region*& big) MPROC_REQUIRES(mu) {
    auto e = tasks.find(t.id);
    if (e == tasks.end()) return BigPayload::kFailed;  // not expected: its outcome is known
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
      stranded.push_back(fail_all(e->second, std::move(error)));
    } catch (...) {
      return BigPayload::kLater;
    }
    tasks.erase(e);
    return BigPayload::kFailed;
  }

  // Moves the tasks the dispatcher failed into `out` (for delivery by the caller).
  void take_stranded_locked(std::vector<Delivery>& out) MPROC_REQUIRES(mu) {
    if (stranded.empty()) return;
    out.reserve(out.size() + stranded.size());  // may throw; the moves below do not
    for (Delivery& d : stranded) out.push_back(std::move(d));
    stranded.clear();
  }

  void fail_locked(std::uint64_t id, std::exception_ptr e, std::vector<Delivery>& out)
      MPROC_REQUIRES(mu) {
    auto it = tasks.find(id);
    if (it == tasks.end()) return;
    out.push_back(fail_all(it->second, std::move(e)));
    tasks.erase(it);
  }

  // Fails every unfinished task with BrokenPool(`why`) and stops the workers.
  void break_locked(const std::string& why, std::vector<Delivery>& out) MPROC_REQUIRES(mu) {
    if (broken.empty()) broken = why;
    auto e = std::make_exception_ptr(BrokenPool(broken));
    for (auto& [id, entry] : tasks) out.push_back(fail_all(entry, e));
    tasks.clear();
    pending.clear();
    for (Slot& s : slots) s.outstanding.clear();
    take_stranded_locked(out);
    launcher->kill_all();
  }

  void handle_locked(EventMsg& m, std::vector<Delivery>& out, bool& quit) MPROC_REQUIRES(mu) {
    if (m.kind == kQuit) {
      quit = true;
      return;
    }
    if (m.slot < 0 || m.slot >= n) return;
    Slot& s = slots[static_cast<std::size_t>(m.slot)];
    switch (m.kind) {
      case kOk:
      case kPart:
      case kFailed:
      case kUndecodable: {
        const bool final = m.kind != kPart && !(m.kind == kUndecodable && m.sent_kind == kPart);
        if (final) {
          auto pos = std::find(s.outstanding.begin(), s.outstanding.end(), m.id);
          if (pos != s.outstanding.end()) s.outstanding.erase(pos);
        }
        auto it = tasks.find(m.id);
        if (it == tasks.end()) return;  // cancelled by terminate or a broken pool
        if (it->second.elements != 0) {
          on_chunk_result_locked(it, m, final, out);
          return;
        }
        if (!final) return;  // not expected of a single task
        Delivery d{std::move(it->second.sink), it->second.part, {}, nullptr, false, true, 0, {}};
        const TaskOrigin origin{.task = m.id};
        tasks.erase(it);
        if (m.kind == kOk) {
          d.payload = std::move(m.payload);
        } else if (m.kind == kFailed) {
          d.error = remote_error(m.type, m.what, m.pid, origin);
        } else {
          d.error = undecodable_error(m);
        }
        out.push_back(std::move(d));
        return;
      }
      case kReady:
        s.ready = true;
        s.pid = m.pid;
        s.early_deaths = 0;
        return;
      case kInitFailed:
        s.init_error = m.type + ": " + m.what;
        return;
      case kExited:
        on_exit_locked(m, out);
        return;
      default:
        return;
    }
  }

  static std::exception_ptr undecodable_error(const EventMsg& m) {
    return std::make_exception_ptr(
        DecodeError("mproc::Pool: cannot decode the task's result (" + std::to_string(m.bytes) +
                    " bytes) in this process: " + m.type + ": " + m.what));
  }

  // A piece of a chunk's outcomes (kPart, or the final kOk), or its failure as a whole (kFailed:
  // the invoker threw outside the elements; kUndecodable). Each element gets exactly one outcome:
  // a piece that names elements which are not (or no longer) waiting for one is dropped, and a
  // final event leaves none waiting.
  void on_chunk_result_locked(std::unordered_map<std::uint64_t, Entry>::iterator it, EventMsg& m,
                              bool final, std::vector<Delivery>& out) MPROC_REQUIRES(mu) {
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
        if (d.last) {
          out.push_back(std::move(d));
          tasks.erase(it);
          return;
        }
        out.push_back(std::move(d));
      }
    }
    if (!final) return;
    // The task ended: elements still without an outcome fail (none, normally).
    std::exception_ptr error;
    if (m.kind == kFailed) {
      const TaskOrigin origin{.position = static_cast<std::size_t>(
                                  e.first + (e.todo.empty() ? 0 : e.todo.front().begin))};
      error = remote_error(m.type, m.what, m.pid, origin);
    } else if (m.kind == kUndecodable) {
      error = undecodable_error(m);
    } else {
      error = std::make_exception_ptr(
          DecodeError("mproc::Pool: a worker ended a chunk without the outcomes of " +
                      std::to_string(span_count(e.todo)) + " of its elements"));
    }
    out.push_back(fail_all(e, std::move(error)));
    tasks.erase(it);
  }

  // The worker that ran chunk `id` died: the element it was running (the last one it began; the
  // first one waiting if it had begun none) fails with WorkerLost, and the chunk's other elements
  // without an outcome run again in another worker. Each death settles one element at least, so
  // a chunk whose elements all kill their worker ends too.
  void on_chunk_lost_locked(std::uint64_t id, const EventMsg& m, std::vector<Delivery>& out)
      MPROC_REQUIRES(mu) {
    auto it = tasks.find(id);
    if (it == tasks.end()) return;
    Entry& e = it->second;
    if (e.todo.empty()) {  // not expected: it would have ended
      tasks.erase(it);
      return;
    }
    // Delivers `d`, whose elements now have their outcome; true when none of `e` waits any more
    // (`e` is then gone).
    auto settle = [&](Delivery d) MPROC_REQUIRES(mu) {
      (void)spans_remove(e.todo, d.covered);
      d.last = e.todo.empty();
      const bool ended = d.last;
      out.push_back(std::move(d));
      if (ended) tasks.erase(it);
      return ended;
    };
    const SlotShared& sh = slot_shared[m.slot];
    const bool ours = sh.task.load(std::memory_order_relaxed) == id;
    // Outcomes the worker staged and had not sent: the next elements waiting, in order (unless
    // they were sent after all, just before the death: then the piece came first, and they wait
    // no more).
    const std::uint64_t staged = sh.staged.load(std::memory_order_relaxed);
    const std::uint64_t records = staged & 0xffffff;
    const std::uint64_t value_bytes = (staged >> 24) & 0xffffff, error_bytes = staged >> 48;
    if (ours && records != 0 && value_bytes <= kStageValueBytes &&
        error_bytes <= kStageErrorBytes &&
        sh.staged_first.load(std::memory_order_relaxed) == e.todo.front().begin &&
        records <= span_count(e.todo)) {
      Delivery d{e.sink, e.part, {}, nullptr, true, false, e.first, {}};
      d.pid = m.pid;
      std::uint64_t want = records;
      for (const Span& s : e.todo) {
        const std::uint64_t take = std::min(want, s.end - s.begin);
        d.covered.push_back(Span{s.begin, s.begin + take});
        want -= take;
        if (want == 0) break;
      }
      // The payload of a piece (see TaskContext): the errors' size, the errors, the values.
      d.payload.resize(sizeof(std::uint64_t) + error_bytes + value_bytes);
      Writer w(d.payload.data(), d.payload.data() + d.payload.size());
      w.write_value(error_bytes);
      w.write(sh.errors, error_bytes);
      w.write(sh.values, value_bytes);
      if (settle(std::move(d))) return;
    }
    const std::uint64_t began = sh.element.load(std::memory_order_relaxed);
    std::uint64_t lost = e.todo.front().begin;
    if (ours && began != 0 && spans_contain(e.todo, began - 1)) lost = began - 1;
    const std::size_t position = static_cast<std::size_t>(e.first + lost);
    std::string msg = "mproc::Pool: worker " + std::to_string(m.pid) + " died (" +
                      describe_exit(m.status) + ") while running input element " +
                      std::to_string(position);
    Delivery d{e.sink, e.part, {}, nullptr, true, false, e.first, Spans{Span{lost, lost + 1}}};
    d.error =
        std::make_exception_ptr(WorkerLost(msg, m.pid, m.status, TaskOrigin{.position = position}));
    if (settle(std::move(d))) return;
    TaskMsg again;
    again.id = id;
    again.invoker = e.invoker;
    again.run = e.todo;
    if (e.big) {
      again.big = e.big->size();
    } else {
      again.payload = e.payload;
    }
    pending.push_front(std::move(again));
  }

  void on_exit_locked(const EventMsg& m, std::vector<Delivery>& out) MPROC_REQUIRES(mu) {
    if (stopping || !broken.empty()) return;
    Slot& s = slots[static_cast<std::size_t>(m.slot)];
    // What the dead worker never took is still in its mailbox; the parent is now its only reader.
    std::vector<TaskMsg> unstarted;
    for (;;) {
      std::optional<TaskMsg> t;
      try {
        t = mailboxes[static_cast<std::size_t>(m.slot)].try_get();
      } catch (...) {
        continue;  // a message that does not decode is dropped; its task fails below
      }
      if (!t) break;
      if (t->invoker != 0) unstarted.push_back(std::move(*t));
    }
    std::unordered_set<std::uint64_t> back;
    for (const TaskMsg& t : unstarted) back.insert(t.id);
    std::vector<std::uint64_t> lost;
    for (std::uint64_t id : s.outstanding)
      if (!back.count(id)) lost.push_back(id);
    s.outstanding.clear();
    s.dispatched = 0;
    for (auto it = unstarted.rbegin(); it != unstarted.rend(); ++it)
      pending.push_front(std::move(*it));
    // Without an initializer a worker reports "ready" before it takes anything, so one that dies
    // earlier was killed from outside (or by the OOM killer) and is simply replaced — a few times
    // in a row at most, so that a slot whose workers cannot live does not respawn forever.
    const bool retry = !s.ready && !initializer && m.status != kSpawnFailed &&
                       ++s.early_deaths <= kEarlyDeathRetries;
    if (!s.ready && !retry) {
      std::string why = "mproc::Pool: a worker";
      if (m.pid > 0) why += " (pid " + std::to_string(m.pid) + ")";
      if (m.status == kSpawnFailed) {
        const int err = static_cast<int>(m.id);
        why = "mproc::Pool: cannot start a new worker " + std::to_string(m.slot + 1) + " of " +
              std::to_string(n) +
              " (replacing one that ended): " + (m.type.empty() ? std::string("fork") : m.type) +
              ": " + std::generic_category().message(err) + " (" + errno_name(err) + ")";
      } else if (!s.init_error.empty()) {
        why += " failed in the initializer: " + s.init_error;
      } else if (initializer) {
        why += " died before its initializer finished (" + describe_exit(m.status) + ")";
      } else {
        why += " died before it could take a task, " + std::to_string(s.early_deaths) +
               " times in a row (" + describe_exit(m.status) + ")";
      }
      break_locked(why, out);
      return;
    }
    for (std::uint64_t id : lost) {
      auto it = tasks.find(id);
      if (it == tasks.end()) continue;
      if (it->second.elements != 0) {
        on_chunk_lost_locked(id, m, out);
        continue;
      }
      std::string msg = "mproc::Pool: worker " + std::to_string(m.pid) + " died (" +
                        describe_exit(m.status) + ") while running task " + std::to_string(id);
      fail_locked(id,
                  std::make_exception_ptr(WorkerLost(msg, m.pid, m.status, TaskOrigin{.task = id})),
                  out);
    }
    s.ready = false;
    s.pid = 0;
    s.init_error.clear();
    launcher->spawn(m.slot);
  }

  // Delivers the outcomes in `out` (outside the lock), then clears it. A result that does not
  // decode fails its task with DecodeError (an allocation failure too: the result is too large
  // for this process).
  void deliver(std::vector<Delivery>& out) {
    std::size_t ended = 0;
    for (Delivery& d : out) {
      auto fail = [&](std::exception_ptr e) {
        if (d.chunk)
          d.sink->on_elements_error(d.part, d.first, d.covered, std::move(e));
        else
          d.sink->on_error(d.part, std::move(e));
      };
      if (!d.error) {
        try {
          Reader r(d.payload.data(), d.payload.size());
          if (d.chunk)
            d.sink->on_elements(d.part, d.first, d.covered, d.pid, d.ns, r);
          else
            d.sink->on_ok(d.part, r);
        } catch (const DecodeError&) {
          fail(std::current_exception());
        } catch (...) {
          fail(undecodable(d.payload.size()));
        }
      } else {
        fail(d.error);
      }
      d.sink.reset();
      std::vector<std::byte>().swap(d.payload);
      if (d.last) ++ended;
    }
    if (out.empty()) return;
    if (ended != 0) {
      {
        Guard g(mu);
        undelivered -= ended;
      }
      idle_cv.notify_all();
    }
    out.clear();
  }

  // The DecodeError for a result of `bytes` bytes whose decoding threw the current exception.
  static std::exception_ptr undecodable(std::size_t bytes) noexcept {
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

  // The result thread: reads events, does the bookkeeping under the lock, and delivers outcomes
  // outside it. It never ends before shut_down() asks, whatever it reads: an event that does not
  // decode fails its task (see the codec of EventMsg); an error of the queue itself is retried
  // after a pause (so a queue that keeps failing does not cost a CPU), and after
  // kQueueErrorsToBreak of them in a row breaks the pool; running out of memory in the bookkeeping
  // fails the event's task, or is retried.
  void collect() {
    std::vector<Delivery> out;
    int queue_errors = 0;  // in a row
    for (;;) {
      bool quit = false;
      try {
        std::vector<EventMsg> batch;
        std::string queue_error;
        try {
          batch = events.get_many(64, std::chrono::milliseconds(200));
          queue_errors = 0;
        } catch (...) {
          batch.clear();
          std::string type, what;
          describe_current(type, what);
          queue_error = type + ": " + what;
          ++queue_errors;
        }
        {
          Guard g(mu);
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
          if (queue_errors >= kQueueErrorsToBreak && broken.empty() && !stopping)
            break_locked("mproc::Pool: the result queue cannot be read (" + queue_error + ")", out);
          if (batch.empty() && !stopping && broken.empty() && !launcher->alive())
            break_locked("mproc::Pool: the pool's zygote process died", out);
          dispatch_locked();
          take_stranded_locked(out);
        }
        deliver(out);
      } catch (...) {
        // No memory even for that: what `out` holds is delivered on a later round.
      }
      if (quit || quit_requested.load(std::memory_order_acquire)) return;
      if (queue_errors > 1) std::this_thread::sleep_for(kQueueErrorPause);
    }
  }

  // Stops the workers (gracefully unless `kill`), the zygote and the result thread.
  void shut_down(bool kill) {
    {
      Guard g(mu);
      stopping = true;
    }
    if (kill) {
      launcher->kill_all();
    } else {
      for (auto& mb : mailboxes) {
        try {
          mb.put(TaskMsg{}, std::chrono::seconds(1));
        } catch (...) {
        }
      }
      launcher->quit();
    }
    if (!launcher->wait(Expiry(deadline_after(kZygoteGrace)))) launcher->force_end();
    launcher->force_end();  // joins (reaps) it
    // The result thread ends after its current batch. kQuit wakes it if it waits for events; it
    // is never waited for, since the result queue may be full (the result thread busy in a
    // callback, or this is the result thread).
    quit_requested.store(true, std::memory_order_release);
    EventMsg q;
    q.kind = kQuit;
    try {
      (void)events.try_put(q);
    } catch (...) {
    }
    // From a callback (on the result thread) the thread cannot be joined: it ends on its own
    // after this batch and the destructor detaches it.
    if (collector.joinable() && !on_result_thread()) collector.join();
    {
      Guard g(mu);
      finished = true;
    }
    idle_cv.notify_all();
  }

  bool on_result_thread() const noexcept {
    return std::this_thread::get_id() == collector.get_id();
  }

  void check_owner() const {
    if (this_process_id() != creator_pid)
      throw ProcessError("mproc::Pool: a Pool belongs to the process that created it");
  }
};

namespace {
// The Pool's state, with its result queue.
std::unique_ptr<PoolCore::Impl> make_impl() {
  try {
    return std::make_unique<PoolCore::Impl>();
  } catch (const std::system_error& e) {
    throw_system_error(e.code(), "mproc::Pool: cannot create the result queue (" +
                                     std::to_string(kEventBytes >> 20) + " MiB of shared memory)");
  }
}
}  // namespace

// Every failure leaves nothing behind: the queues and descriptors made so far go with `impl_`,
// and a zygote that started is stopped (with its workers) before the exception leaves.
PoolCore::PoolCore(PoolOptions options) {
  int n = options.processes ? *options.processes : process_cpu_count();
  if (n <= 0) throw ValueError("mproc::Pool: processes must be at least 1");
  if (options.maxtasksperchild && *options.maxtasksperchild <= 0)
    throw ValueError("mproc::Pool: maxtasksperchild must be a positive number or empty");
  impl_ = make_impl();
  Impl& im = *impl_;
  im.n = n;
  im.initializer = std::move(options.initializer);
  im.maxtasks = options.maxtasksperchild ? *options.maxtasksperchild : 0;
  im.creator_pid = this_process_id();
  im.slots.resize(static_cast<std::size_t>(n));
  im.mailboxes.reserve(static_cast<std::size_t>(n));
  const std::string of = " of " + std::to_string(n);
  for (int i = 0; i < n; ++i) {
    try {
      im.mailboxes.emplace_back(0, QueueOptions{.capacity = kMailboxBytes});
    } catch (const std::system_error& e) {
      throw_system_error(
          e.code(), "mproc::Pool: cannot create the mailbox of worker " + std::to_string(i + 1) +
                        of + " (" + std::to_string(kMailboxBytes >> 20) + " MiB of shared memory)");
    }
  }
  im.fd_parent.reserve(static_cast<std::size_t>(n));
  im.fd_worker.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
      throw_errno(errno, "mproc::Pool: cannot create the descriptor channel of worker " +
                             std::to_string(i + 1) + of + ": socketpair");
    im.fd_parent.push_back(fds[0]);
    im.fd_worker.push_back(fds[1]);
  }
  im.slot_shared_bytes = sizeof(SlotShared) * static_cast<std::size_t>(n);
  void* shared = ::mmap(nullptr, im.slot_shared_bytes, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (shared == MAP_FAILED)
    throw_errno(errno, "mproc::Pool: cannot map the workers' staging areas (" +
                           std::to_string(im.slot_shared_bytes) + " bytes of shared memory): mmap");
  im.slot_shared = static_cast<SlotShared*>(shared);
  for (int i = 0; i < n; ++i)
    new (&im.slot_shared[i]) SlotShared;  // the staging bytes stay untouched
  im.launcher = make_zygote_launcher(n, &Impl::worker_main, &im, &Impl::report_exit, &im);
  im.launcher->start();  // forks the zygote and the workers: before the result thread exists
  // The zygote holds the workers' ends (its workers inherit them); the parent needs only its own.
  for (int& fd : im.fd_worker) close_fd(std::exchange(fd, -1));
  try {
    im.collector = std::thread([&im] {
      im.collect();
      if (im.orphaned) delete &im;  // see ~PoolCore
    });
  } catch (...) {
    im.launcher->kill_all();
    if (!im.launcher->wait(Expiry(deadline_after(kZygoteAbortGrace)))) im.launcher->force_end();
    im.launcher->force_end();  // reaps it
    try {
      throw;
    } catch (const std::system_error& e) {
      throw_system_error(e.code(), "mproc::Pool: cannot start the result thread: pthread_create");
    }
  }
}

PoolCore::~PoolCore() {
  if (this_process_id() != impl_->creator_pid) {
    // A fork of the creator (not one of ours: ours never return) must not shut down the creator's
    // workers, nor touch a result thread it does not have. Its copy is left alone.
    (void)impl_.release();
    return;
  }
  if (impl_->on_result_thread()) {
    // The last owner let go inside one of the pool's callbacks: join() would wait for that very
    // callback, so the pool is terminated instead, and the result thread, which is still running
    // the callback, deletes the pool's state when it ends.
    try {
      terminate();
    } catch (...) {
    }
    impl_->orphaned = true;
    impl_->collector.detach();
    (void)impl_.release();
    return;
  }
  try {
    close();
    join();
  } catch (...) {
  }
  if (impl_->collector.joinable()) impl_->collector.join();
}

std::size_t PoolCore::max_task_bytes() const noexcept { return kMailboxBytes / 4 - 256; }
std::size_t PoolCore::chunk_bytes() noexcept { return kChunkBytes; }
int PoolCore::processes() const noexcept { return impl_->n; }

void PoolCore::submit(std::vector<TaskSpec> specs, const std::shared_ptr<TaskSink>& sink,
                      bool continuation) {
  Impl& im = *impl_;
  im.check_owner();
  const std::size_t limit = max_task_bytes();
  bool wake = false;  // the dispatcher failed a task that the result thread must deliver
  {
    Guard g(im.mu);
    if (!im.broken.empty()) throw BrokenPool(im.broken);
    if (im.stopping)
      throw ValueError(continuation ? "mproc::Pool: the pool was joined or terminated before the "
                                      "imap's input was used up"
                                    : "mproc::Pool: Pool not running");
    if (im.state != Impl::State::kRunning && !continuation)
      throw ValueError("mproc::Pool: Pool not running");
    // All or none: on an allocation failure half-way, what was added is taken back.
    std::size_t added = 0;
    try {
      for (std::size_t i = 0; i < specs.size(); ++i) {
        TaskSpec& s = specs[i];
        TaskMsg t;
        t.id = im.next_id;
        t.invoker = reinterpret_cast<std::uint64_t>(s.invoker);
        // A payload too large for a mailbox gets its memfd when it is dispatched (dispatch_locked).
        if (s.payload.size() > limit) t.big = s.payload.size();
        t.payload = std::move(s.payload);
        im.pending.push_back(std::move(t));
        try {
          Impl::Entry e{sink, s.part, nullptr, 0, 0, {}, 0, {}};
          if (s.elements != 0) {
            e.first = s.first;
            e.elements = s.elements;
            e.todo.push_back(Span{0, s.elements});
            e.invoker = t.invoker;
          }
          im.tasks.emplace(im.next_id, std::move(e));
        } catch (...) {
          im.pending.pop_back();
          throw;
        }
        ++im.next_id;
        ++added;
      }
    } catch (...) {
      for (; added > 0; --added) {
        im.tasks.erase(im.pending.back().id);
        im.pending.pop_back();
      }
      throw;
    }
    im.undelivered += specs.size();
    im.dispatch_locked();
    wake = !im.stranded.empty();
  }
  if (wake) {
    // Its outcome is delivered (and its callbacks run) on the result thread: wake it. If the
    // result queue is full, the result thread is busy and finds the task after its batch.
    EventMsg w;
    w.kind = kWake;
    try {
      (void)im.events.try_put(w);
    } catch (...) {
    }
  }
}

void PoolCore::close() {
  impl_->check_owner();
  Guard g(impl_->mu);
  if (impl_->state == Impl::State::kRunning) impl_->state = Impl::State::kClosed;
}

void PoolCore::terminate() {
  Impl& im = *impl_;
  im.check_owner();
  {
    // Wakes a join() waiting for the tasks, so that it does not hold up this terminate().
    Guard g(im.mu);
    if (im.finished) return;
    im.state = Impl::State::kTerminated;
  }
  im.idle_cv.notify_all();
  Guard serial(im.shutdown_mu);
  std::vector<Impl::Delivery> out;
  {
    Guard g(im.mu);
    if (im.finished) return;
    im.stopping = true;
    auto e = std::make_exception_ptr(
        BrokenPool("mproc::Pool: the pool was terminated before the task finished"));
    for (auto& [id, entry] : im.tasks) out.push_back(Impl::fail_all(entry, e));
    im.tasks.clear();
    im.pending.clear();
    im.take_stranded_locked(out);
  }
  im.shut_down(true);
  im.deliver(out);
}

// The waits use std::condition_variable on mu's native mutex, which the analysis cannot follow.
void PoolCore::join() MPROC_NO_THREAD_SAFETY_ANALYSIS {
  Impl& im = *impl_;
  im.check_owner();
  if (im.on_result_thread())
    throw ValueError(
        "mproc::Pool: join() cannot be called from a callback (it would wait for "
        "the callback's own task)");
  {
    std::unique_lock<std::mutex> lk(im.mu.native());
    if (im.finished) return;
    if (im.state == Impl::State::kRunning) throw ValueError("mproc::Pool: Pool is still running");
    im.idle_cv.wait(lk, [&]() MPROC_NO_THREAD_SAFETY_ANALYSIS {
      return im.undelivered == 0 || im.state == Impl::State::kTerminated;
    });
    if (im.state == Impl::State::kTerminated) {
      // terminate() shuts the pool down: wait until it has.
      im.idle_cv.wait(lk, [&]() MPROC_NO_THREAD_SAFETY_ANALYSIS { return im.finished; });
      return;
    }
  }
  Guard serial(im.shutdown_mu);
  {
    Guard g(im.mu);
    if (im.finished) return;
  }
  im.shut_down(false);
}

std::size_t PoolCore::unfinished() const {
  Guard g(impl_->mu);
  return impl_->undelivered;
}
}  // namespace mproc::detail

namespace mproc {

Pool::Pool(PoolOptions options) : core_(std::make_shared<detail::PoolCore>(std::move(options))) {}

Pool& Pool::operator=(Pool&& other) noexcept {
  if (this != &other) {
    if (core_) {
      try {
        core_->close();
        core_->join();
      } catch (...) {
      }
    }
    core_ = std::move(other.core_);
  }
  return *this;
}

Pool::~Pool() {
  if (!core_) return;
  try {
    core_->close();
    core_->join();
  } catch (...) {
  }
}

detail::PoolCore& Pool::core() const {
  if (!core_) throw ValueError("mproc::Pool: moved-from pool");
  return *core_;
}

int Pool::processes() const { return core().processes(); }
void Pool::close() { core().close(); }
void Pool::terminate() { core().terminate(); }
void Pool::join() { core().join(); }
std::size_t Pool::unfinished() const { return core().unfinished(); }

}  // namespace mproc
