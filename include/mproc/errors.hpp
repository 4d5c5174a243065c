// mproc/errors.hpp — the exception types of mproc's public API.
// clang-format off
//
// They mirror the exceptions Python's multiprocessing raises. Every mproc exception derives from
// `mproc::Error`, itself a `std::runtime_error`; failures of the operating system itself surface as
// `std::system_error` carrying the errno value (`code()`), whose what() names the operation, the
// resource, the system call and the errno, symbolic name included:
//   "mproc::Pipe: socketpair: Too many open files (EMFILE)"
//   "mproc::Process::start: cannot create the process: fork: Cannot allocate memory (ENOMEM)"
// Running out of memory in the calling process's own heap is `std::bad_alloc`, as everywhere in C++.
//
//   mproc::Error
//   ├── ProcessError        misuse of a Process (start twice, join before start, ...)
//   │                       Mirrors multiprocessing.ProcessError / the AssertionErrors of Process.
//   ├── ValueError          an argument or state that cannot be accepted (closing a running process,
//   │                       using a closed object, releasing a BoundedSemaphore too often).
//   │                       Mirrors Python's ValueError.
//   │   └── InvalidStateError  an operation a future's state does not allow (asking whether a
//   │                       result that is not ready was successful). Mirrors
//   │                       concurrent.futures.InvalidStateError; a ValueError, as the
//   │                       multiprocessing.pool.AsyncResult of Python raises for the same.
//   ├── LockError           releasing a Lock/RLock the caller does not hold, waiting on or notifying
//   │                       a Condition without holding its lock. Mirrors Python's RuntimeError /
//   │                       AssertionError for the same misuse.
//   ├── TimeoutError        a blocking call whose deadline passed where Python raises
//   │                       (`AsyncResult.get(timeout)` later). Mirrors multiprocessing.TimeoutError.
//   │   └── TaskTimeout     a Pool task (or an element of a map/imap chunk) that ran past its
//   │                       limit: its worker was killed and replaced; names the task or element
//   │                       and the limit. pebble's TimeoutError of a task; Python has none.
//   ├── CancelledError      the result of a task that was cancelled (AsyncResult::cancel,
//   │                       Pool::shutdown(cancel_futures)). Mirrors
//   │                       concurrent.futures.CancelledError.
//   ├── BrokenBarrierError  a Barrier that was aborted, reset or timed out while waited on.
//   │                       Mirrors threading.BrokenBarrierError.
//   ├── Empty               a get on an empty queue that could not wait (or whose timeout
//   │                       expired). Mirrors queue.Empty.
//   ├── Full                a put on a full queue that could not wait (or whose timeout
//   │                       expired). Mirrors queue.Full.
//   ├── Closed              use of a queue or connection after close(). Mirrors the ValueError /
//   │                       OSError Python raises for a closed queue or connection.
//   ├── EOFError            recv on a connection whose peer closed (nothing more will come).
//   │                       Mirrors EOFError.
//   ├── DecodeError         bytes that do not decode as the requested type (corrupt, truncated,
//   │                       or of another type). Mirrors pickle.UnpicklingError.
//   ├── Interrupted         a blocking call ended by mproc::interrupt() (interrupt.hpp), e.g.
//   │                       from a SIGINT handler. Mirrors KeyboardInterrupt.
//   ├── RemoteError         an exception thrown by a task in a Pool worker: carries the original
//   │                       type name, what(), the worker's pid, the element's position in
//   │                       the input (or the task's number) and the worker's stack at the
//   │                       throw (traceback()). Mirrors the exception Python re-raises from
//   │                       AsyncResult.get() (with its remote traceback).
//   ├── WorkerLost          the Pool worker running a task died (signal, crash, `_exit`) before
//   │                       the task finished; names the signal or exit code and the element's
//   │                       position in the input (or the task's number). Python's Pool hangs
//   │                       there; concurrent.futures raises BrokenProcessPool.
//   └── BrokenPool          a Pool that cannot run tasks any more (its initializer failed, its
//                           launcher died, or it was terminated with the task unfinished).
//                           Mirrors concurrent.futures.process.BrokenProcessPool.
// clang-format on
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/export.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace mproc {

class MPROC_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MPROC_API ProcessError : public Error {
 public:
  using Error::Error;
};

class MPROC_API ValueError : public Error {
 public:
  using Error::Error;
};

class MPROC_API InvalidStateError : public ValueError {
 public:
  using ValueError::ValueError;
};

class MPROC_API CancelledError : public Error {
 public:
  using Error::Error;
};

class MPROC_API LockError : public Error {
 public:
  using Error::Error;
};

class MPROC_API TimeoutError : public Error {
 public:
  using Error::Error;
};

class MPROC_API BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

class MPROC_API Empty : public Error {
 public:
  using Error::Error;
};

class MPROC_API Full : public Error {
 public:
  using Error::Error;
};

class MPROC_API Closed : public Error {
 public:
  using Error::Error;
};

class MPROC_API EOFError : public Error {
 public:
  using Error::Error;
};

class MPROC_API DecodeError : public Error {
 public:
  using Error::Error;
};

class MPROC_API Interrupted : public Error {
 public:
  using Error::Error;
};

// Where a Pool task that failed came from: an element of a map/starmap/imap/imap_unordered
// (`position`: its 0-based index in the input) or a task of apply/apply_async/submit (`task`: its
// number in its pool, 1 for the first task submitted, counting every apply/submit and every chunk
// of a map). Both empty for an error made outside a pool.
struct TaskOrigin {
  std::optional<std::size_t> position{};
  std::optional<std::uint64_t> task{};
  // The MPI rank and host whose worker ran it (mproc::mpi); empty for a pool on this machine.
  std::optional<int> rank{};
  std::string host{};
  // ", input element 537" / ", task 17" / "" (appended to what()); with a rank first:
  // " on rank 2, host node7, task 17".
  [[nodiscard]] std::string describe() const {
    std::string out;
    if (rank) out = " on rank " + std::to_string(*rank) + ", host " + host;
    if (position) return out + ", input element " + std::to_string(*position);
    if (task) return out + ", task " + std::to_string(*task);
    return out;
  }
};

// An exception thrown by a task in a Pool worker, rethrown in the caller. `what()` reads
// "<type>: <what> (in worker pid N, input element I)" (", task T" for apply/submit); the parts
// are available separately, and so is the worker's stack at the point of the throw:
// `traceback()`.
//
// Decided: what() does not include the traceback (Python's str(RemoteError) does). A what() stays
// one line that logs, test assertions and error dialogs can use as they are; a traceback is many
// lines and up to 8 KiB. Print `e.traceback()` then `e.what()` for Python's full report.
class MPROC_API RemoteError : public Error {
 public:
  RemoteError(std::string type_name, std::string remote_what, int pid, TaskOrigin origin = {},
              std::string traceback = {})
      : Error(type_name + ": " + remote_what + " (in worker pid " + std::to_string(pid) +
              origin.describe() + ")"),
        type_name_(std::move(type_name)),
        remote_what_(std::move(remote_what)),
        traceback_(std::move(traceback)),
        pid_(pid),
        origin_(origin) {}
  // The demangled type of the original exception ("std::invalid_argument").
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  // The original exception's what() (empty for a type not derived from std::exception).
  [[nodiscard]] const std::string& remote_what() const noexcept { return remote_what_; }
  // The worker's stack where the exception was thrown, as Python prints a traceback (most recent
  // call last), from the task's own code to the throw, one line per frame (inlined calls too):
  //   Traceback (most recent call last):
  //     File "/src/app.cpp", line 42, in run_job(int)
  //     File "/src/app.cpp", line 17, in parse(std::string const&)
  // A frame without debug information names its image and the function's symbol instead of
  // file and line ("??" when neither is known). At most 64 frames and 8 KiB: the innermost are
  // kept, after a line "  ... N earlier frames left out". Empty when the stack is unknown: an
  // exception made without a throw expression (std::make_exception_ptr), a library built with
  // MPROC_TRACEBACKS=OFF. The stack is recorded at the throw, so a task that catches and rethrows
  // (`throw;`) still reports the first throw. See "Remote tracebacks" in docs/design.md.
  [[nodiscard]] const std::string& traceback() const noexcept { return traceback_; }
  // The pid of the worker that ran the task.
  [[nodiscard]] int pid() const noexcept { return pid_; }
  // The element's index in the input of map/starmap/imap/imap_unordered (empty for apply/submit).
  [[nodiscard]] std::optional<std::size_t> position() const noexcept { return origin_.position; }
  // The task's number in its pool, for apply/apply_async/submit (empty for map/imap elements).
  [[nodiscard]] std::optional<std::uint64_t> task() const noexcept { return origin_.task; }
  // The MPI rank and host of the worker (mproc::mpi); empty and "" for a pool on this machine.
  [[nodiscard]] std::optional<int> rank() const noexcept { return origin_.rank; }
  [[nodiscard]] const std::string& host() const noexcept { return origin_.host; }

 private:
  std::string type_name_;
  std::string remote_what_;
  std::string traceback_;
  int pid_;
  TaskOrigin origin_;
};

// The worker running a task died before the task finished. `exitcode()` uses the encoding of
// Process::exitcode(): the exit status, or -N when signal N killed the worker. what() names the
// worker, how it ended and the element or task ("... while running input element 537").
class MPROC_API WorkerLost : public Error {
 public:
  WorkerLost(const std::string& message, int pid, int exitcode, TaskOrigin origin = {})
      : Error(message), pid_(pid), exitcode_(exitcode), origin_(origin) {}
  [[nodiscard]] int pid() const noexcept { return pid_; }
  [[nodiscard]] int exitcode() const noexcept { return exitcode_; }
  // The element's index in the input of map/starmap/imap/imap_unordered (empty for apply/submit).
  [[nodiscard]] std::optional<std::size_t> position() const noexcept { return origin_.position; }
  // The task's number in its pool, for apply/apply_async/submit (empty for map/imap elements).
  [[nodiscard]] std::optional<std::uint64_t> task() const noexcept { return origin_.task; }

 private:
  int pid_;
  int exitcode_;
  TaskOrigin origin_;
};

// A task (or an element of a chunk) that ran longer than its limit (PoolOptions::task_timeout,
// SubmitOptions/MapOptions::timeout): its worker was killed and replaced, and only that task or
// element failed. what() names it and the limit ("mproc::Pool: task 12 ran past its limit of
// 0.5 s; its worker 4711 was killed").
class MPROC_API TaskTimeout : public TimeoutError {
 public:
  TaskTimeout(const std::string& message, double limit_seconds, TaskOrigin origin = {})
      : TimeoutError(message), limit_(limit_seconds), origin_(origin) {}
  // The limit that was passed, in seconds.
  [[nodiscard]] double limit() const noexcept { return limit_; }
  [[nodiscard]] std::optional<std::size_t> position() const noexcept { return origin_.position; }
  [[nodiscard]] std::optional<std::uint64_t> task() const noexcept { return origin_.task; }

 private:
  double limit_;
  TaskOrigin origin_;
};

class MPROC_API BrokenPool : public Error {
 public:
  using Error::Error;
};

}  // namespace mproc
