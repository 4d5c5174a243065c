// posix/error.hpp — the OS boundary's error convention: how errno becomes a std::error_code, how
// an interrupted call is retried, and the one way an OS error is thrown at the public boundary.
//
// src/posix/ is the only place in the library with raw system calls and errno (the Pool's files
// excepted until they move onto these helpers; docs/design.md lists them). Its convention:
//
//   * Every function in src/posix/ is noexcept and reports failure as a std::error_code in the
//     generic category (the errno value), returned or, where the function returns something else,
//     through an out-parameter. The futex calls of the hot paths and the robust-mutex calls return
//     the errno number itself as an int (0: success), as pthread does. Nothing leaves errno for
//     the caller to read, and nothing throws, so most of it is safe in a freshly forked child.
//     (The throwers below, and the few functions documented as throwing, say so.)
//   * An interrupted call (EINTR) is retried in `retry_on_eintr` below; a call that waits with a
//     deadline resumes with the time left (poll_until, futex_wait's callers).
//   * The code above src/posix/ turns an error_code into an exception once, at the public call,
//     with throw_system_error: a std::system_error carrying the errno, whose what() names the
//     operation, the resource, the failing call and the errno, in one format:
//
//   <mproc call>: <what could not be done>: <system call>: <strerror message> (<errno name>)
//   mproc::Process::start: cannot create the process: fork: Cannot allocate memory (ENOMEM)
//
// The throwers append ": <message> (<name>)" to the text they are given, so a caller writes the
// part before it. An errno without a symbolic name reads "(errno N)".
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace mproc::detail {

// The current errno as an error_code. Call right after the failing system call.
inline std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

// An errno value as an error_code (0: no error).
inline std::error_code errno_code(int err) noexcept {
  return err == 0 ? std::error_code() : std::error_code(err, std::generic_category());
}

// Calls `call()` again for as long as it fails with EINTR, and returns its last result. For the
// calls that return a negative value and set errno on failure (read, recvmsg, waitpid, ...), whose
// restart is correct as is; a call that waits for a relative time must recompute it instead
// (poll_until). Async-signal-safe when `call` is.
template <class Call>
auto retry_on_eintr(Call call) noexcept(noexcept(call())) {
  for (;;) {
    auto r = call();
    if (!(r < 0 && errno == EINTR)) return r;
  }
}

// The symbolic name of an errno value ("EMFILE"), or "errno N" when it has none.
std::string errno_name(int err);

// Public boundary only: throw std::system_error(ec) with what() in the format above. An error
// code of another category than generic/system gets its category's message, without a name.
[[noreturn]] void throw_system_error(std::error_code ec, const char* what);
[[noreturn]] void throw_system_error(std::error_code ec, const std::string& what);
[[noreturn]] void throw_errno(int err, const char* what);
[[noreturn]] void throw_errno(int err, const std::string& what);

}  // namespace mproc::detail
