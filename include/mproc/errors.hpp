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
//   └── BrokenBarrierError  a Barrier that was aborted, reset or timed out while waited on.
//                           Mirrors threading.BrokenBarrierError.
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

}  // namespace mproc
