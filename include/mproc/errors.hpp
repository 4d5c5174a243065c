// mproc/errors.hpp — the exception types of mproc's public API.
//
// They mirror the exceptions Python's multiprocessing raises. Every mproc exception derives from
// `mproc::Error`, itself a `std::runtime_error`; failures of the operating system itself surface as
// `std::system_error` carrying the errno value.
//
//   mproc::Error
//   ├── ProcessError        misuse of a Process (start twice, join before start, ...)
//   │                       Mirrors multiprocessing.ProcessError / the AssertionErrors of Process.
//   ├── ValueError          an argument or state that cannot be accepted (closing a running process,
//   │                       using a closed object, releasing a BoundedSemaphore too often).
//   │                       Mirrors Python's ValueError.
//   ├── LockError           releasing a Lock/RLock the caller does not hold, waiting on or notifying
//   │                       a Condition without holding its lock. Mirrors Python's RuntimeError /
//   │                       AssertionError for the same misuse.
//   ├── TimeoutError        a blocking call whose deadline passed where Python raises
//   │                       (`AsyncResult.get(timeout)` later). Mirrors multiprocessing.TimeoutError.
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
//   └── DecodeError         bytes that do not decode as the requested type (corrupt, truncated,
//                           or of another type). Mirrors pickle.UnpicklingError.
#pragma once

#include <mproc/export.hpp>

#include <stdexcept>
#include <string>

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

}  // namespace mproc
