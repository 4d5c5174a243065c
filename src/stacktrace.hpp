// stacktrace.hpp — remote tracebacks: the stack of the exception being handled, symbolised and
// formatted the way Python prints a traceback, and how such a trace crosses a process boundary
// (bounded). See "Remote tracebacks" in docs/design.md.
//
// The stack is recorded at the throw (posix/stacktrace.hpp) and symbolised here, only when a
// failure is reported (a task's exception in a Pool worker, an exception that escapes a Process
// child's target): with GCC's libbacktrace (Debian's libgcc-12-dev, bundled into the library at
// build time: function, file and line from the DWARF debug information, inlined calls included;
// the ELF symbol table where there is no debug information), or with dladdr alone (function names
// of exported symbols, no file:line) when the build found no libbacktrace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <mproc/byte_stream.hpp>
#include <mproc/errors.hpp>
#include <string>

#include "posix/stacktrace.hpp"

namespace mproc::detail {

// The most bytes of one formatted trace, and of one function or file name in it (a longer one is
// cut, ending in "..."). Traces travel in error records and events: a decoded trace longer than
// kMaxTraceBytes is corrupt (DecodeError).
inline constexpr std::size_t kMaxTraceBytes = 8192;
inline constexpr std::size_t kMaxTraceNameBytes = 300;

// The traceback of the exception being handled (call it in a catch block), or "" when there is
// none (outside a handler, an exception made without a throw expression, a build without
// MPROC_TRACEBACKS, no memory). Format (most recent call last, as Python prints it):
//   Traceback (most recent call last):
//     File "/src/app.cpp", line 42, in run_job(int)
//     File "/src/app.cpp", line 17, in parse(std::string const&)
//     File "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", in std::__throw_out_of_range_fmt(...)
// The frames are those from the throw up to the code that called into mproc's caller of the
// user's code (a Pool's task invoker, a Process's target, a Pool's initializer): the first frame
// of namespace mproc met after a frame of the user's is left out with every frame below it.
// Never throws.
std::string current_exception_trace() noexcept;

// True when traces name functions and give file:line from debug information (this build has
// libbacktrace and records throws); false when they name exported functions only (dladdr), or
// are always empty.
bool traces_have_lines() noexcept;

// The traceback of a recorded stack (as current_exception_trace). Throws std::bad_alloc only.
std::string format_trace(const ThrowStack& stack);

// Reads a trace as mproc::encode writes a std::string. Throws DecodeError when its length is over
// kMaxTraceBytes or over the bytes that remain.
std::string read_trace(Reader& r);

// ---- Traces in a Pool's error records and errors (until mproc/detail/pool_core.hpp's TaskContext
// and remote_error take a trace themselves). Defined in src/pool/task_context.cpp and
// src/pool/remote_error.cpp.

// An error record (TaskContext's layout): the element's index in the chunk, its exception's type
// name, what() and trace. TaskContext's own members read and write the same records with an
// empty trace (writing) or dropping it (reading).
std::size_t error_record_bytes(const std::string& type, const std::string& what,
                               const std::string& trace);
void write_error_record(Writer& w, std::uint64_t index, const std::string& type,
                        const std::string& what, const std::string& trace);
// Throws DecodeError for a record that does not decode (read_trace's limits included).
void read_error_record(Reader& r, std::uint64_t& index, std::string& type, std::string& what,
                       std::string& trace);

// remote_error (mproc/detail/pool_core.hpp) with the worker's traceback in the RemoteError.
MPROC_API std::exception_ptr remote_error(const std::string& type, const std::string& what,
                                          const std::string& trace, std::int32_t pid,
                                          TaskOrigin origin = {});

}  // namespace mproc::detail
