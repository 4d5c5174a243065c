// PoolCore: the facade that puts a Pool's parts together (see docs/design.md, "Pool").
//
//   channels.{hpp,cpp}    what the parent and its workers share (mailboxes, result queue,
//                         descriptor channels, staging records); made first, inherited by workers
//   launcher.{hpp,cpp}    how workers come to exist (the zygote); runs in the parent and the zygote
//   worker.{hpp,cpp}      the worker loop; runs in a worker, given only its WorkerInputs
//   task_context.cpp      a chunk's staging in the worker, and the layouts of a piece
//   protocol.hpp          every message and record that crosses a process boundary
//   dispatcher.{hpp,cpp}, events.cpp
//                         the parent's bookkeeping and its result thread
//   shutdown.cpp          close, join, terminate and the destructors: the shutdown policy
//   remote_error.cpp      a task's exception, described in the worker and rebuilt in the parent
#include "pool/core.hpp"

#include <cstdio>
#include <mproc/pool.hpp>
#include <string>
#include <system_error>
#include <thread>

#include "pool/engine.hpp"
#include "pool/worker.hpp"
#include "posix/demangle.hpp"
#include "posix/error.hpp"
#include "posix/thread_id.hpp"
#include "start/start.hpp"

namespace mproc::detail {
namespace {

// The encoded size an automatic chunk of map/imap aims at (PoolCore::chunk_bytes()).
constexpr std::size_t kChunkBytes = std::size_t{64} << 10;
// How long a constructor that fails waits for the launcher to kill and reap its workers.
constexpr auto kLauncherAbortGrace = std::chrono::seconds(10);

}  // namespace

namespace {
std::function<void()> run_of(const Ref<ProcessTarget>& t) {
  if (!t) return {};
  return [t] { (void)t->run(); };
}
}  // namespace

std::unique_ptr<WorkerLauncher> PoolCore::Impl::make_launcher(Impl& im, StartMethod method) {
  FreshZygoteInputs fz{method,       &im.channels, im.init_target, im.maxtasks,
                       im.exit_hook, im.daemon,    im.insights};
  return make_zygote_launcher(im.n, &worker_main, &im, &report_exit, &im.channels.events,
                              im.fresh ? &fz : nullptr);
}

PoolCore::Impl::Impl(int processes, PoolInitializer init, int max_tasks, StartMethod method,
                     const PoolOptions& options)
    : n(processes),
      init_target(init.target()),
      initializer(run_of(init_target)),
      fresh(method != StartMethod::fork),
      start_method(method),
      maxtasks(max_tasks),
      exit_hook(options.worker_exit.target()),
      daemon(options.daemon),
      insights(options.insights),
      creator_pid(this_process_id()),
      channels(processes, fresh),
      launcher(make_launcher(*this, method)),
      dispatcher(processes, max_tasks, static_cast<bool>(initializer), channels, *launcher) {}

void PoolCore::Impl::worker_main(void* ctx, int slot) noexcept {
  auto& im = *static_cast<Impl*>(ctx);
  const auto s = static_cast<std::size_t>(slot);
  WorkerInputs in;
  in.slot = slot;
  in.tasks = &im.channels.mailboxes[s];
  in.results = &im.channels.events;
  in.descriptors = im.channels.fd_worker[s];
  in.shared = &im.channels.slot_shared[s];
  in.initializer = &im.initializer;
  in.maxtasks = im.maxtasks;
  in.exit_hook = im.exit_hook.get();
  in.daemon = im.daemon;
  in.insights = im.insights;
  run_worker(in);
}

PoolCore::Impl::~Impl() = default;

bool PoolCore::Impl::report_exit(void* ctx, int slot, int pid, int code, int error,
                                 const char* call) noexcept {
  try {
    return static_cast<Queue<EventMsg>*>(ctx)->try_put(
        EventMsg::exited(slot, pid, code, error, call));
  } catch (...) {
    return true;  // it would fail the same way every time
  }
}

void PoolCore::Impl::destroy(void* ctx) noexcept { delete static_cast<Impl*>(ctx); }

void PoolCore::Impl::check_owner() const {
  if (this_process_id() != creator_pid)
    throw ProcessError("mproc::Pool: a Pool belongs to the process that created it");
}

// Every failure leaves nothing behind: the queues and descriptors made so far go with `impl_`,
// and a launcher that started is stopped (with its workers) before the exception leaves.
PoolCore::PoolCore(PoolOptions options) {
  int n = options.processes ? *options.processes : process_cpu_count();
  if (n <= 0) throw ValueError("mproc::Pool: processes must be at least 1");
  if (options.maxtasksperchild && *options.maxtasksperchild <= 0)
    throw ValueError("mproc::Pool: maxtasksperchild must be a positive number or empty");
  const std::int64_t task_ns = limit_ns(options.task_timeout);
  const std::int64_t init_ns = limit_ns(options.initializer_timeout);
  const Ref<ProcessTarget>& init = options.initializer.target();
  const std::type_info* culprit = nullptr;
  const bool init_travels = !init || init->cannot_travel(culprit) == 0;
  const StartMethod method = choose_start_method(options.start_method, init_travels, "mproc::Pool");
  if (method != StartMethod::fork) {
    require_init(method, "mproc::Pool");
    if (!init_travels) {
      throw ValueError(std::string("mproc::Pool (start method ") + method_name(method) +
                       "): the initializer (" + (culprit ? demangle(culprit->name()) : "?") +
                       ") cannot travel to a fresh program image: a lambda with captures, a "
                       "std::function or a function object without serialize(). Use a function, "
                       "a lambda without captures, or bind data with mproc::partial(f, args...)");
    }
  }
  const Ref<ProcessTarget>& exit_hook = options.worker_exit.target();
  if (method != StartMethod::fork && exit_hook && exit_hook->cannot_travel(culprit) != 0) {
    throw ValueError(std::string("mproc::Pool (start method ") + method_name(method) +
                     "): the worker_exit hook (" + (culprit ? demangle(culprit->name()) : "?") +
                     ") cannot travel to a fresh program image: a lambda with captures, a "
                     "std::function or a function object without serialize(). Use a function, "
                     "a lambda without captures, or bind data with mproc::partial(f, args...)");
  }
  impl_ = make_box<Impl>(n, std::move(options.initializer),
                         options.maxtasksperchild ? *options.maxtasksperchild : 0, method, options);
  Impl& im = *impl_;
  im.dispatcher.set_limits(task_ns, init_ns);
  im.dispatcher.set_insights(options.insights);
  // The images the zygote learns when it starts (fresh): later ones travel with the tasks.
  const std::uint32_t images_known = image_count();
  im.launcher->start();  // forks the zygote and the workers: before the result thread exists
  if (im.fresh) im.dispatcher.set_fresh(images_known);
  im.channels.close_worker_ends();
  try {
    im.dispatcher.start_result_thread(&Impl::destroy, &im);
  } catch (...) {
    im.launcher->kill_all();
    if (!im.launcher->wait(Expiry(deadline_after(kLauncherAbortGrace)))) im.launcher->force_end();
    im.launcher->force_end();  // reaps it
    try {
      throw;
    } catch (const std::system_error& e) {
      throw_system_error(e.code(), "mproc::Pool: cannot start the result thread: pthread_create");
    }
  }
}

PoolCore::PoolCore(Box<PoolEngine> engine, int processes)
    : engine_(std::move(engine)), engine_processes_(processes) {}

std::size_t PoolCore::max_task_bytes() const noexcept { return kMailboxBytes / 4 - 256; }
std::size_t PoolCore::chunk_bytes() noexcept { return kChunkBytes; }
int PoolCore::processes() const noexcept { return engine_ ? engine_processes_ : impl_->n; }
bool PoolCore::fresh_image() const noexcept { return engine_ ? true : impl_->fresh; }
StartMethod PoolCore::start_method() const noexcept {
  return engine_ ? StartMethod::spawn : impl_->start_method;
}

void throw_task_cannot_travel(const std::type_info& type) {
  throw ValueError("mproc::Pool: the task's callable (" + demangle(type.name()) +
                   ") cannot travel to this pool's workers, which are fresh images of the program "
                   "(start method spawn or forkserver): it is a lambda with captures or a function "
                   "object without serialize(), whose bytes may hold addresses of this process. "
                   "Use a function, a lambda without captures, a function object with serialize(), "
                   "or bind data with mproc::partial(f, args...)");
}

std::uint64_t PoolCore::submit(std::vector<TaskSpec> specs, const Ref<TaskSink>& sink,
                               bool continuation) {
  if (engine_) return engine_->submit(specs, sink, continuation);
  impl_->check_owner();
  return impl_->dispatcher.submit(specs, sink, continuation, max_task_bytes());
}

std::size_t PoolCore::unfinished() const {
  return engine_ ? engine_->unfinished() : impl_->dispatcher.unfinished();
}

bool PoolCore::insights_on() const noexcept {
  return engine_ ? engine_->insights_on() : impl_->dispatcher.insights_on();
}
void PoolCore::note_encoding(std::uint64_t tasks, std::int64_t ns) noexcept {
  if (engine_) return engine_->note_encoding(tasks, ns);
  impl_->dispatcher.note_encoding(tasks, ns);
}

Insights PoolCore::insights() const {
  if (engine_) return engine_->insights();
  impl_->check_owner();
  return impl_->dispatcher.insights();
}

std::vector<std::vector<std::byte>> PoolCore::exit_result_bytes() const {
  if (engine_) return engine_->exit_results();
  impl_->check_owner();
  return impl_->dispatcher.exit_results();
}

}  // namespace mproc::detail

namespace mproc {

namespace {

// "12.3 ms", "1.25 s": a duration as the summary prints it.
std::string seconds_text(std::chrono::nanoseconds ns) {
  const double s = static_cast<double>(ns.count()) / 1e9;
  char buf[32];
  if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
  else if (s < 1)
    std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

// "43.2%": `part` of `whole`.
std::string share_text(std::chrono::nanoseconds part, std::chrono::nanoseconds whole) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%",
                whole.count() > 0
                    ? 100.0 * static_cast<double>(part.count()) / static_cast<double>(whole.count())
                    : 0.0);
  return buf;
}

void insight_row(std::string& out, const std::string& name, const WorkerInsights& w) {
  char head[96];
  std::snprintf(head, sizeof head, "%-8s %7llu %8llu %5llu", name.c_str(),
                static_cast<unsigned long long>(w.workers),
                static_cast<unsigned long long>(w.tasks), static_cast<unsigned long long>(w.lost));
  out += head;
  for (const auto& [d, share] :
       {std::pair{w.wall, false}, std::pair{w.start_up, true}, std::pair{w.working, true},
        std::pair{w.waiting, true}, std::pair{w.sending, true}, std::pair{w.coding, true}}) {
    std::string cell = seconds_text(d);
    if (share) cell += " (" + share_text(d, w.wall) + ")";
    char buf[48];
    std::snprintf(buf, sizeof buf, " %20s", cell.c_str());
    out += buf;
  }
  out += '\n';
}

}  // namespace

std::string Insights::to_string() const {
  std::string out;
  char head[224];
  std::snprintf(head, sizeof head, "%-8s %7s %8s %5s %20s %20s %20s %20s %20s %20s\n", "slot",
                "workers", "tasks", "lost", "wall", "start-up", "working", "waiting", "sending",
                "coding (in working)");
  out += head;
  for (const WorkerInsights& w : workers) insight_row(out, std::to_string(w.slot), w);
  insight_row(out, "total", total);
  out += "parent: " + std::to_string(encoded) + " tasks encoded in " + seconds_text(encoding) +
         ", " + std::to_string(delivered) + " outcomes delivered in " + seconds_text(delivering) +
         " (decoding results, callbacks)\n";
  return out;
}

Pool::Pool(PoolOptions options) : core_(detail::make_ref<detail::PoolCore>(std::move(options))) {}

detail::PoolCore& Pool::core() const {
  if (!core_) throw ValueError("mproc::Pool: moved-from pool");
  return *core_;
}

int Pool::processes() const { return core().processes(); }
StartMethod Pool::start_method() const { return core().start_method(); }
void Pool::close() { core().close(); }
void Pool::terminate() { core().terminate(); }
void Pool::join() { core().join(); }
void Pool::shutdown(bool wait, bool cancel_futures) { core().shutdown(wait, cancel_futures); }
std::size_t Pool::unfinished() const { return core().unfinished(); }
Insights Pool::insights() const { return core().insights(); }
std::vector<std::vector<std::byte>> Pool::exit_result_bytes() const {
  return core().exit_result_bytes();
}

}  // namespace mproc
