// posix/stacktrace.hpp — the stack at the point of a throw, recorded as raw return addresses.
//
// mproc defines `__cxa_throw` (the C++ ABI's entry point of every `throw` expression, also those
// inside libstdc++) when built with MPROC_TRACEBACKS (the default): before handing the exception
// to the C++ runtime's own `__cxa_throw` (found with dlsym(RTLD_NEXT)), it walks the stack with
// the unwinder (_Unwind_Backtrace, libgcc_s, which every C++ program already links) into a small
// ring of per-thread records, keyed by the thrown object's address (in the processes that record,
// see record_throw_stacks: children and workers, not the program). Nothing is symbolised there:
// that is src/stacktrace.cpp's work, done only when a failure is reported. So the cost is paid by
// throws only (about one microsecond per throw of a shallow stack), never by code that does not
// throw, and a `catch (...)` far from the throw still finds where it came from.
//
// A rethrow (`throw;`, std::rethrow_exception) is no new throw: its record stays the first
// throw's. An exception made without a throw expression (std::make_exception_ptr) has none.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mproc::detail {

// The most frames recorded for one throw (the innermost ones).
inline constexpr std::size_t kMaxThrowFrames = 64;

// The stack of one throw: return addresses, innermost first (pcs[0] is in the function whose
// throw expression ran; `__cxa_throw` itself is left out).
struct ThrowStack {
  std::uintptr_t pcs[kMaxThrowFrames];
  std::size_t frames = 0;
  bool truncated = false;  // the stack was deeper than kMaxThrowFrames (and no stop address met)
};

// Makes the recording of a throw's stack stop at return address `pc` (after recording it): the
// frame where a traceback is cut (src/stacktrace.cpp), learnt from the first traceback cut there,
// so that later throws under the same caller walk only the frames a traceback shows. The last 16
// such addresses are kept, for every thread.
void add_stop_address(std::uintptr_t pc) noexcept;

// True when this build records the stacks of throws (MPROC_TRACEBACKS).
bool throw_stacks_recorded() noexcept;

// Only the processes whose failures another process reports record their throws: every fork of
// the program (a pthread_atfork child handler: Process children, Pool workers and zygotes, the
// forkserver's children), and a fresh image that calls this when it becomes a child (mproc::init
// of a spawned child or zygote). The program itself records nothing: its own throws cost what
// they cost without mproc.
void record_throw_stacks() noexcept;

// Copies the stack recorded when the exception object `object` (the most-derived object's
// address) of type `type` (its std::type_info*) was thrown on this thread, or, when `object` is
// null (a type that is not polymorphic), the last throw of an object of that type. False when no
// record of it is left: the ring keeps the last 4 throws of each thread, and a record goes when
// its object is freed (mproc defines `__cxa_free_exception` too, which forwards the same way).
bool find_throw_stack(const void* object, const void* type, ThrowStack& out) noexcept;

}  // namespace mproc::detail
