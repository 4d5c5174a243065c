// pool/dispatcher.hpp — the parent's side of a Pool: the bookkeeping of tasks and worker slots,
// and the result thread.
//
// One mutex (`mu_`) guards the bookkeeping: the tasks not yet dispatched (`pending_`), the tasks
// accepted and not yet answered (`tasks_`, each with the elements of a chunk still without an
// outcome, `todo`), and per worker slot the ids dispatched to it in order (`Slot::outstanding`).
// It is held for short bookkeeping and non-blocking queue calls only (try_put to a mailbox,
// try_get from a dead worker's mailbox); decoding results and running callbacks happen outside it,
// on the result thread (deliver()).
//
// Files: dispatcher.cpp (submission, dispatch, the result thread, delivery), events.cpp (what
// each event from a worker or the launcher does to the bookkeeping), shutdown.cpp (close, join,
// terminate: the shutdown policy).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mproc/worker.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "pool/channels.hpp"
#include "pool/engine.hpp"
#include "pool/launcher.hpp"
#include "pool/protocol.hpp"
#include "posix/region.hpp"
#include "thread_annotations.hpp"

namespace mproc::detail {

class Dispatcher final : public TaskControl {
 public:
  // `n` worker slots over `channels`, whose workers `launcher` starts (already started). Every
  // worker takes at most `maxtasks` tasks (0: no limit). `has_initializer`: a worker that dies
  // before "ready" breaks the pool (otherwise it is replaced, a few times in a row).
  Dispatcher(int n, int maxtasks, bool has_initializer, PoolChannels& channels,
             WorkerLauncher& launcher);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;
  ~Dispatcher();

  // Starts the result thread; `on_orphaned_end(arg)` runs on it after its loop when the pool was
  // abandoned from a callback (abandon()). Throws std::system_error when no thread can be made.
  void start_result_thread(void (*on_orphaned_end)(void*) noexcept, void* arg);

  // The workers are fresh images of the program (spawn, forkserver) whose zygote learned the first
  // `images_known` images of this process's table: invokers travel as code references, and later
  // images' records with the tasks. Called before the first submit.
  void set_fresh(std::uint32_t images_known) noexcept {
    fresh_ = true;
    images_known_ = images_known;
  }

  // The pool's time limits, in nanoseconds (0: none): of every task or element without its own,
  // and of the initializer. Called before the result thread starts.
  void set_limits(std::int64_t task_ns, std::int64_t init_ns) noexcept {
    task_limit_ns_ = task_ns;
    init_limit_ns_ = init_ns;
    if (task_ns != 0 || init_ns != 0) watching_.store(true, std::memory_order_relaxed);
  }

  // PoolOptions::insights: the durations of Insights are measured. Called before the result
  // thread starts.
  void set_insights(bool on) noexcept { insights_ = on; }
  [[nodiscard]] bool insights_on() const noexcept { return insights_; }
  // `tasks` more were encoded at submit, in `ns` (Pool's templates, with insights on).
  void note_encoding(std::uint64_t tasks, std::int64_t ns) noexcept {
    encoded_.fetch_add(tasks, std::memory_order_relaxed);
    encoding_ns_.fetch_add(ns, std::memory_order_relaxed);
  }
  // Pool::insights() and Pool::exit_results() (events.cpp). exit_results() throws the
  // RemoteError of the first exit hook that threw.
  [[nodiscard]] Insights insights();
  std::vector<std::vector<std::byte>> exit_results();

  // PoolCore::submit: queues the tasks (all or none) and dispatches what fits.
  std::uint64_t submit(std::vector<TaskSpec>& specs, const Ref<TaskSink>& sink, bool continuation,
                       std::size_t max_task_bytes);
  [[nodiscard]] std::size_t unfinished() const;

  // Cancelling (cancel.cpp; see "Futures" in docs/design.md). Tasks [first, first + count):
  // those not started are withdrawn (their outcome: CancelledError, delivered by the result
  // thread); with `kill_running` the workers running the others are killed and replaced (the same
  // outcome). True when at least one was withdrawn or killed.
  bool cancel(std::uint64_t first, std::uint64_t count, bool kill_running) override;
  // True when one of them runs in a worker now.
  bool running(std::uint64_t first, std::uint64_t count) override;
  // Withdraws every task not started yet (Executor.shutdown(cancel_futures=True)).
  void cancel_pending();
  // The tie that results keep to this dispatcher (cleared when the pool has stopped).
  [[nodiscard]] const Ref<PoolLink>& link() const noexcept { return link_; }

  // The shutdown policy (shutdown.cpp).
  void close();
  void terminate();
  void join();
  // The last handle went away on the result thread (in a callback): terminate, then let the
  // result thread end by itself and run `on_orphaned_end`.
  void abandon() noexcept;
  // Waits for the result thread, if it still runs (the destructor's last step).
  void join_result_thread() noexcept;

  [[nodiscard]] bool on_result_thread() const noexcept {
    return std::this_thread::get_id() == collector_.get_id();
  }

 private:
  struct Entry {
    Ref<TaskSink> sink;
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
    Descriptors fds;  // of the handles among its arguments, sent with each dispatch
    // Where it was last put: the slot, and its number among the tasks put in that slot's mailbox
    // since the slot's worker started (Slot::put_seq; compared with SlotShared::taken).
    int slot = -1;
    std::uint64_t seq = 0;
    std::uint64_t epoch = 0;  // the slot's epoch then: another epoch means another worker
    // Its time limit (0: none), for the task as a whole or, with `element_clock`, for each
    // element of the chunk.
    std::int64_t limit_ns = 0;
    bool element_clock = false;
  };
  using Tasks = std::unordered_map<std::uint64_t, Entry>;
  struct Slot {
    std::deque<std::uint64_t> outstanding;  // dispatched, unanswered, in dispatch order
    int dispatched = 0;                     // tasks given to the current worker
    bool ready = false;                     // its initializer has finished
    int pid = 0;
    std::string init_error;
    int early_deaths = 0;       // workers of this slot that died before "ready", in a row
    std::uint64_t put_seq = 0;  // tasks put in the mailbox since the worker started
    std::uint64_t epoch = 0;    // counts the slot's workers (reset_slot_shared_locked)
    // The parent is killing this worker (SlotShared::doomed is set): nothing more is put in its
    // mailbox. `kill_task`: the task it was killed for; `kill_limit`: the time limit it ran past
    // in seconds (its outcome is then TaskTimeout), or 0 for a cancelled task (whose outcome is
    // delivered already).
    bool killing = false;
    std::uint64_t kill_task = 0;
    double kill_limit = 0;
  };
  // An outcome to deliver outside the lock: of a whole task, or (chunk) of the elements
  // `covered`. `last`: the task has no outcome left to deliver after this one.
  struct Delivery {
    Ref<TaskSink> sink;
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
  enum class State { kRunning, kClosed, kTerminated };
  enum class BigPayload { kReady, kFailed, kLater };

  // dispatcher.cpp
  void add_locked(std::vector<TaskSpec>& specs, const Ref<TaskSink>& sink,
                  std::size_t max_task_bytes) MPROC_REQUIRES(mu_);
  void dispatch_locked() MPROC_REQUIRES(mu_);
  int least_loaded_locked() const MPROC_REQUIRES(mu_);
  BigPayload prepare_big_locked(TaskMsg& t, Region*& big) MPROC_REQUIRES(mu_);
  void take_stranded_locked(std::vector<Delivery>& out) MPROC_REQUIRES(mu_);
  void wake_result_thread() noexcept;
  void collect();
  void read_batch(std::vector<Delivery>& out, bool& quit, int& queue_errors);
  void deliver(std::vector<Delivery>& out);
  static Delivery fail_all(Entry& e, std::exception_ptr error);
  void fail_locked(std::uint64_t id, std::exception_ptr e, std::vector<Delivery>& out)
      MPROC_REQUIRES(mu_);
  void break_locked(const std::string& why, std::vector<Delivery>& out) MPROC_REQUIRES(mu_);

  // events.cpp
  void handle_locked(EventMsg& m, std::vector<Delivery>& out, bool& quit) MPROC_REQUIRES(mu_);
  void on_result_locked(EventMsg& m, std::vector<Delivery>& out) MPROC_REQUIRES(mu_);
  void on_chunk_result_locked(Tasks::iterator it, EventMsg& m, bool final,
                              std::vector<Delivery>& out) MPROC_REQUIRES(mu_);
  void on_chunk_lost_locked(std::uint64_t id, const EventMsg& m, std::vector<Delivery>& out,
                            double limit = 0) MPROC_REQUIRES(mu_);
  bool settle_staged_locked(Tasks::iterator it, const EventMsg& m, std::vector<Delivery>& out)
      MPROC_REQUIRES(mu_);
  bool settle_locked(Tasks::iterator it, Delivery d, std::vector<Delivery>& out)
      MPROC_REQUIRES(mu_);
  void on_exit_locked(const EventMsg& m, std::vector<Delivery>& out) MPROC_REQUIRES(mu_);
  std::vector<std::uint64_t> drain_mailbox_locked(int slot) MPROC_REQUIRES(mu_);
  std::string broken_by_exit_locked(const EventMsg& m) MPROC_REQUIRES(mu_);
  void on_exit_hook_locked(EventMsg& m) MPROC_REQUIRES(mu_);
  void fold_figures_locked(int slot) MPROC_REQUIRES(mu_);
  static std::exception_ptr undecodable_error(const EventMsg& m);

  // cancel.cpp
  enum class Withdraw { kWithdrawn, kTaken, kGone };
  Withdraw withdraw_locked(std::uint64_t id) MPROC_REQUIRES(mu_);
  bool kill_for_locked(std::uint64_t id, double limit) MPROC_REQUIRES(mu_);
  void repend_locked(std::uint64_t id) MPROC_REQUIRES(mu_);
  void reset_slot_shared_locked(int slot) MPROC_REQUIRES(mu_);
  void watch_limits_locked(std::vector<Delivery>& out) MPROC_REQUIRES(mu_);

  // shutdown.cpp
  void shut_down(bool kill);

  const int n_;
  const int maxtasks_;
  const bool has_initializer_;
  PoolChannels& ch_;
  WorkerLauncher& launcher_;
  std::thread collector_;
  void (*on_orphaned_end_)(void*) noexcept = nullptr;
  void* orphaned_arg_ = nullptr;
  // Set (on the result thread) when the Pool was destroyed from one of its callbacks: the result
  // thread then runs on_orphaned_end_ when it ends.
  bool orphaned_ = false;
  // Set by shut_down() once the workers and the launcher are gone: the result thread ends after its
  // current batch (the kQuit event also wakes it, when the result queue has room for it).
  std::atomic<bool> quit_requested_{false};

  mutable Mutex mu_;
  std::condition_variable idle_cv_;  // with mu_: undelivered_ reached 0, terminated, or finished
  State state_ MPROC_GUARDED_BY(mu_) = State::kRunning;
  bool stopping_ MPROC_GUARDED_BY(mu_) = false;  // join/terminate is shutting the workers down
  bool finished_ MPROC_GUARDED_BY(mu_) = false;  // workers, launcher and result thread are gone
  std::string broken_ MPROC_GUARDED_BY(mu_);     // why the pool is broken (empty: it is not)
  std::uint64_t next_id_ MPROC_GUARDED_BY(mu_) = 1;
  std::deque<TaskMsg> pending_ MPROC_GUARDED_BY(mu_);
  bool fresh_ = false;
  std::uint32_t images_known_ = 0;
  Tasks tasks_ MPROC_GUARDED_BY(mu_);
  // Accepted tasks whose outcome has not been delivered yet.
  std::size_t undelivered_ MPROC_GUARDED_BY(mu_) = 0;
  std::vector<Slot> slots_ MPROC_GUARDED_BY(mu_);
  // Tasks failed by the dispatcher (their memfd could not be made) on a thread other than the
  // result thread, which delivers them (callbacks run there).
  std::vector<Delivery> stranded_ MPROC_GUARDED_BY(mu_);
  Mutex shutdown_mu_;  // serialises join() and terminate()
  Ref<PoolLink> link_;
  std::int64_t task_limit_ns_ = 0;
  std::int64_t init_limit_ns_ = 0;
  // Some task has a time limit (or the initializer has): the result thread looks at the running
  // tasks every few milliseconds (watch_limits_locked) instead of sleeping until an event.
  std::atomic<bool> watching_{false};

  // Insights (events.cpp): per slot, the figures of its workers that ended (their SlotShared
  // figures folded in when their exit was reported) and the tasks lost with them; in the parent,
  // the outcomes delivered and the time deliver() took (with insights_ only).
  struct SlotTotals {
    std::uint64_t workers = 0, tasks = 0, lost = 0;
    std::int64_t wall = 0, start_up = 0, work = 0, wait = 0, send = 0, code = 0;
  };
  bool insights_ = false;
  std::vector<SlotTotals> totals_ MPROC_GUARDED_BY(mu_);
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> encoded_{0};     // tasks encoded at submit (with insights_ only)
  std::atomic<std::int64_t> encoding_ns_{0};  // the time their encoding took
  std::atomic<std::int64_t> delivering_ns_{0};
  // PoolOptions::worker_exit: the encoded values of the hooks that ran, and the first failure.
  std::vector<std::vector<std::byte>> exit_values_ MPROC_GUARDED_BY(mu_);
  std::exception_ptr exit_error_ MPROC_GUARDED_BY(mu_);
};

}  // namespace mproc::detail
