// posix/error.hpp — the one place errno becomes a std::error_code, and the public-boundary
// throwers.
#pragma once

#include <cerrno>
#include <system_error>

namespace mproc::detail {

// The current errno as an error_code. Call right after the failing system call.
inline std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

// Public boundary only: turn an error into std::system_error.
[[noreturn]] void throw_system_error(std::error_code ec, const char* what);
[[noreturn]] void throw_errno(int err, const char* what);

}  // namespace mproc::detail
