// The worker loop (see worker.hpp). Runs in a worker process only.
//
// Per task: take a TaskMsg from the mailbox, reset the slot's record (task id, no element begun,
// nothing staged), map the payload (from the message, or from the memfd received over the
// descriptor channel), call the invoker, and put one EventMsg with the outcome on the result
// queue. A chunk of map/imap also sends pieces (kPart) while it runs, straight from the staging
// areas (TaskContext); its last piece is the task's own kOk event.
#include "pool/worker.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mproc/detail/travel.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/worker.hpp>
#include <system_error>

#include "posix/fd_passing.hpp"
#include "posix/futex.hpp"
#include "posix/pidfd.hpp"
#include "posix/region.hpp"
#include "posix/thread_id.hpp"
#include "stacktrace.hpp"

namespace mproc::detail {
namespace {

// Exit codes of a worker whose channel failed (the parent reports the code with the death).
constexpr int kExitResultQueue = 70;
constexpr int kExitMailbox = 71;
constexpr int kExitDescriptors = 72;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void leave(int code) noexcept {
  std::fflush(nullptr);
  std::_Exit(code);
}

// worker_id(): the slot of the worker loop running in process `g_worker_pid` (a child that a
// task forks inherits these and is no worker: the pid tells).
std::int32_t g_worker_pid = 0;
int g_worker_slot = -1;

// Adds `ns` to a figure that only this worker writes.
void add(Atomic<std::int64_t>& figure, std::int64_t ns) noexcept {
  figure.store(figure.load(order::relaxed) + ns, order::relaxed);
}

class Worker {
 public:
  explicit Worker(const WorkerInputs& in) noexcept
      : in_(in), pid_(static_cast<std::int32_t>(this_process_id())) {}

  // The figures (SlotShared::figures): with insights, the loop reads the clock when it gets a
  // task (begin() does, for started_ns), when the task returns and when its result is on the
  // queue; the intervals between are waiting, working and sending, and they tile the worker's
  // life after start-up. A piece of a chunk sent while it runs counts as sending, not working.
  [[noreturn]] void run() noexcept {
    WorkerFigures& fig = in_.shared->figures;
    const std::int64_t start = now_ns();
    fig.start_ns.store(start, order::relaxed);
    g_worker_pid = pid_;
    g_worker_slot = in_.slot;
    if (!in_.daemon) set_daemonic(false);
    initialize();
    std::int64_t idle_since = now_ns();  // the end of start-up, then of the last result's put
    fig.ready_ns.store(idle_since, order::relaxed);
    int done = 0;
    for (;;) {
      TaskMsg t;
      try {
        // The task loop is the pool's own (a worker forked after enable_interrupts() is armed and
        // has the program's SIGINT handler): only what a task blocks on may be interrupted.
        InterruptExempt exempt;
        t = in_.tasks->get();
      } catch (...) {
        leave(kExitMailbox);
      }
      if (t.invoker == 0) leave_normally();
      if (withdrawn(t.id)) {  // cancelled while it waited in the mailbox: not run, not counted
        post(event(kSkipped, t.id));
        continue;
      }
      const std::int64_t began = begin(t.id);
      EventMsg ev = run_task(t, began);
      fig.tasks.store(fig.tasks.load(order::relaxed) + 1, order::relaxed);
      if (in_.insights) {
        const std::int64_t ran = now_ns();
        add(fig.wait_ns, began - idle_since);
        add(fig.work_ns, ran - began - sent_ns_);
        post(ev);
        idle_since = now_ns();
        add(fig.send_ns, idle_since - ran + sent_ns_);
        sent_ns_ = 0;
      } else {
        post(ev);
      }
      if (in_.maxtasks > 0 && ++done >= in_.maxtasks) leave_normally();
    }
  }

 private:
  // A piece of a chunk's outcomes, sent while the chunk runs on (TaskContext's EmitFn).
  struct Poster {
    Worker* self;
    std::uint64_t id;
    std::int64_t since;  // when the piece being staged began
  };
  // A chunk's last piece goes in the task's own result event.
  struct Final {
    EventMsg* ev;
    std::int64_t since;
  };

  EventMsg event(EventKind kind, std::uint64_t id = 0) const {
    EventMsg ev;
    ev.kind = kind;
    ev.slot = in_.slot;
    ev.pid = pid_;
    ev.id = id;
    return ev;
  }

  // The worker leaves of its own accord: the exit hook runs, and its value (or error) goes to
  // the parent before the worker ends (so before the launcher's report of its exit).
  [[noreturn]] void leave_normally() noexcept {
    if (in_.exit_hook != nullptr) {
      EventMsg ev = event(kExitValue);
      try {
        exit_hook_value().reset();
        (void)in_.exit_hook->run();
        if (std::optional<std::vector<std::byte>>& v = exit_hook_value()) {
          ev.status = 1;
          ev.payload = std::move(*v);
        }
      } catch (...) {
        ev = event(kExitFailed);
        describe_current(ev.type, ev.what);
        ev.trace = current_exception_trace();
      }
      post(ev);
    }
    leave(0);
  }

  void post(const EventMsg& ev) noexcept {
    try {
      InterruptExempt exempt;
      in_.results->put(ev);
    } catch (...) {
      leave(kExitResultQueue);
    }
  }

  void initialize() noexcept {
    in_.shared->started_ns.store(now_ns(), order::relaxed);  // the initializer's limit runs
    if (in_.initializer && *in_.initializer) {
      try {
        (*in_.initializer)();
      } catch (...) {
        EventMsg ev = event(kInitFailed);
        describe_current(ev.type, ev.what);
        ev.trace = current_exception_trace();
        post(ev);
        leave(1);
      }
    }
    post(event(kReady));
  }

  static void emit_part(void* owner, const Spans& covered, const std::byte* errors,
                        std::size_t error_bytes, const std::byte* values, std::size_t value_bytes) {
    auto* p = static_cast<Poster*>(owner);
    EventMsg part = p->self->event(kPart, p->id);
    const std::int64_t now = now_ns();
    part.ns = static_cast<std::uint64_t>(now - p->since);
    p->since = now;
    part.set_piece(covered, errors, error_bytes, values, value_bytes);
    p->self->post(part);
    if (p->self->in_.insights) p->self->sent_ns_ += now_ns() - now;
  }

  static void emit_final(void* owner, const Spans& covered, const std::byte* errors,
                         std::size_t error_bytes, const std::byte* values,
                         std::size_t value_bytes) {
    auto* f = static_cast<Final*>(owner);
    f->ev->ns = static_cast<std::uint64_t>(now_ns() - f->since);
    f->ev->set_piece(covered, errors, error_bytes, values, value_bytes);
  }

  // Counts task `id` as taken and claims it from the parent's withdrawn ids (SlotShared::skip):
  // true when the parent withdrew it (it must not run).
  bool withdrawn(std::uint64_t id) noexcept {
    SlotShared& shared = *in_.shared;
    shared.taken.store(++taken_, order::seq_cst);
    for (auto& word : shared.skip) {
      // A sequentially consistent load first (a plain load on x86): the compare-and-swap only
      // when the parent wrote this id.
      std::uint64_t expect = id;
      if (word.load(order::seq_cst) == id &&
          word.compare_exchange_strong(expect, 0, order::seq_cst, order::seq_cst))
        return true;
    }
    return false;
  }

  // Task `id` begins: published in the slot's record, unless the parent is about to kill this
  // worker for the task before (SlotShared::doomed): then the worker parks until it is killed,
  // or released if the parent changed its mind. Returns the time it began (started_ns).
  std::int64_t begin(std::uint64_t id) noexcept {
    SlotShared& shared = *in_.shared;
    shared.element.store(0, order::relaxed);
    shared.staged.store(0, order::relaxed);
    std::int64_t began = now_ns();
    shared.started_ns.store(began, order::relaxed);
    shared.worker_pid.store(pid_, order::relaxed);
    shared.task.store(id, order::seq_cst);
    if (shared.doomed.load(std::memory_order_seq_cst) == 0) [[likely]]
      return began;
    shared.parked.store(id, order::seq_cst);
    while (shared.doomed.load(std::memory_order_seq_cst) != 0)
      (void)futex_wait(&shared.doomed, 1, Expiry());
    shared.parked.store(0, order::seq_cst);
    began = now_ns();
    shared.started_ns.store(began, order::relaxed);
    return began;
  }

  // Runs task `t`, begun at `began`; the event that carries its outcome (a chunk's points into
  // the staging areas).
  EventMsg run_task(TaskMsg& t, std::int64_t began) noexcept {
    SlotShared& shared = *in_.shared;
    EventMsg ev = event(kOk, t.id);
    Poster poster{this, t.id, began};
    TaskContext ctx(std::move(t.run), &shared, &Worker::emit_part, &poster);
    if (t.element_clock) ctx.set_element_clock(&shared.started_ns);
    if (in_.insights) ctx.set_code_clock(&shared.figures.code_ns);
    try {
      std::shared_ptr<Region> big;
      Descriptors handles;
      if (t.big != 0 || t.fds != 0) receive_descriptors(t, big, handles);
      Reader r = big ? Reader(static_cast<const std::byte*>(big->data()), t.big)
                     : Reader(t.payload.data(), t.payload.size());
      Invoker invoker = reinterpret_cast<Invoker>(t.invoker);
      if (in_.fresh) {
        if (!t.images.empty()) learn_images(t.images);
        invoker =
            reinterpret_cast<Invoker>(const_cast<void*>(resolve_code(unpack_code_ref(t.invoker))));
      }
      TravelIn scope(handles);
      invoker(r, ctx);
      if (ctx.chunk()) {  // its last piece
        Final f{&ev, poster.since};
        ctx.finish(&Worker::emit_final, &f);
      } else {
        ev.payload = std::move(ctx.out());
      }
    } catch (...) {
      ev = event(kFailed, t.id);
      describe_current(ev.type, ev.what);
      ev.trace = current_exception_trace();
    }
    return ev;
  }

  // Receives task `t`'s descriptors: the memfd that holds its payload (mapped into `big`) when it
  // is large, then those of the handles among its arguments (into `handles`). Descriptors tagged
  // with another id are left over from a worker of this slot that died before it took them: they
  // are dropped.
  void receive_descriptors(const TaskMsg& t, std::shared_ptr<Region>& big, Descriptors& handles) {
    bool need_big = t.big != 0;
    while (need_big || handles.size() < t.fds) {
      std::uint64_t tag = 0;
      int fd = -1;
      if (recv_fd(in_.descriptors, tag, fd)) leave(kExitDescriptors);
      if (tag != t.id) {
        close_fd(fd);
        continue;
      }
      if (need_big) {
        need_big = false;
        std::error_code ec;
        big = Region::map_fd(fd, static_cast<std::size_t>(t.big), ec);
        if (!big) throw std::system_error(ec, "mproc::Pool: mapping a task's payload failed");
        continue;
      }
      handles.adopt(fd);
    }
  }

  const WorkerInputs in_;
  const std::int32_t pid_;
  std::uint64_t taken_ = 0;   // tasks taken from the mailbox (SlotShared::taken)
  std::int64_t sent_ns_ = 0;  // insights: time spent sending pieces of the task now running
};

}  // namespace

void run_worker(const WorkerInputs& in) noexcept { Worker(in).run(); }

std::optional<std::vector<std::byte>>& exit_hook_value() noexcept {
  static std::optional<std::vector<std::byte>> value;
  return value;
}

}  // namespace mproc::detail

namespace mproc {

std::optional<int> worker_id() noexcept {
  if (detail::g_worker_slot < 0 ||
      detail::g_worker_pid != static_cast<std::int32_t>(detail::this_process_id()))
    return std::nullopt;
  return detail::g_worker_slot;
}

}  // namespace mproc
