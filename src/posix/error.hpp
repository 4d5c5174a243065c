// posix/error.hpp — the one place errno becomes a std::error_code, and the public-boundary
// throwers.
//
// Every OS failure reaches the user as a std::system_error carrying the errno, whose what() names
// the operation, the resource, the failing call and the errno, in one format:
//
//   <mproc call>: <what could not be done>: <system call>: <strerror message> (<errno name>)
//   mproc::Process::start: cannot create the process: fork: Cannot allocate memory (ENOMEM)
//
// The throwers below append ": <message> (<name>)" to the text they are given, so a caller writes
// the part before it. An errno without a symbolic name reads "(errno N)".
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace mproc::detail {

// The current errno as an error_code. Call right after the failing system call.
inline std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

// The symbolic name of an errno value ("EMFILE"), or "errno N" when it has none.
std::string errno_name(int err);

// Public boundary only: throw std::system_error(ec) with what() in the format above. An error
// code of another category than generic/system gets its category's message, without a name.
[[noreturn]] void throw_system_error(std::error_code ec, const char* what);
[[noreturn]] void throw_system_error(std::error_code ec, const std::string& what);
[[noreturn]] void throw_errno(int err, const char* what);
[[noreturn]] void throw_errno(int err, const std::string& what);

}  // namespace mproc::detail
