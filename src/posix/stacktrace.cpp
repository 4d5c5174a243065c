// The recorder of throws' stacks (see posix/stacktrace.hpp). This file holds no throw expression
// and does not include <cxxabi.h>: GCC declares `__cxa_throw` itself, with `void*` for the type,
// wherever a throw expression is compiled, and that declaration must agree with the definition.
#include "posix/stacktrace.hpp"

#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace mproc::detail {

#if MPROC_TRACEBACKS
namespace {

// The last few throws of this thread (a ring, newest at `next - 1`): enough for the throws a
// handler's own code makes and catches before it reports the exception it caught.
constexpr std::size_t kRing = 4;
struct Record {
  const void* object = nullptr;
  const void* type = nullptr;
  ThrowStack stack;
};
struct Ring {
  Record records[kRing];
  std::size_t next = 0;
};
thread_local Ring t_ring;

struct Walk {
  ThrowStack* out;
  bool skipped = false;  // the first frame is __cxa_throw's own
};

constexpr std::size_t kStops = 16;
std::atomic<std::uintptr_t> g_stops[kStops];
std::atomic<std::size_t> g_next_stop{0};

bool is_stop(std::uintptr_t pc) noexcept {
  for (const auto& s : g_stops)
    if (s.load(std::memory_order_relaxed) == pc) return true;
  return false;
}

_Unwind_Reason_Code walk_frame(_Unwind_Context* context, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  const std::uintptr_t pc = _Unwind_GetIP(context);
  if (pc == 0) return _URC_END_OF_STACK;
  if (!w->skipped) {
    w->skipped = true;
    return _URC_NO_REASON;
  }
  ThrowStack& s = *w->out;
  if (s.frames == kMaxThrowFrames) {
    s.truncated = true;
    return _URC_END_OF_STACK;
  }
  s.pcs[s.frames++] = pc;
  return is_stop(pc) ? _URC_END_OF_STACK : _URC_NO_REASON;
}

using CxaThrow = void (*)(void*, void*, void (*)(void*));
using CxaFree = void (*)(void*) noexcept;

[[noreturn]] void die(const char* message) noexcept {
  const ssize_t ignored = ::write(STDERR_FILENO, message, std::strlen(message));
  (void)ignored;
  std::abort();
}

template <class F>
F next_function(std::atomic<F>& cache, const char* name) noexcept {
  F f = cache.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
    if (f == nullptr)
      die("mproc: cannot find the C++ runtime's __cxa_throw or __cxa_free_exception "
          "(dlsym(RTLD_NEXT)): build mproc with -DMPROC_TRACEBACKS=OFF for a static executable\n");
    cache.store(f, std::memory_order_release);
  }
  return f;
}

std::atomic<CxaThrow> g_next_throw{nullptr};
std::atomic<CxaFree> g_next_free{nullptr};

// Whether this process records its throws: only the processes whose failures are reported from
// another process (a fork of the program: a Process child, a Pool worker; a fresh image that
// becomes a child, record_throw_stacks()), never the program itself, whose throws then cost what
// they cost without mproc.
std::atomic<bool> g_record{false};

void record_in_child() noexcept { g_record.store(true, std::memory_order_relaxed); }

struct RecordInForks {
  RecordInForks() noexcept { (void)::pthread_atfork(nullptr, nullptr, &record_in_child); }
} const g_record_in_forks;

}  // namespace

bool throw_stacks_recorded() noexcept { return true; }

void record_throw_stacks() noexcept { record_in_child(); }

void add_stop_address(std::uintptr_t pc) noexcept {
  if (pc == 0 || is_stop(pc)) return;
  const std::size_t k = g_next_stop.fetch_add(1, std::memory_order_relaxed) % kStops;
  g_stops[k].store(pc, std::memory_order_relaxed);
}

bool find_throw_stack(const void* object, const void* type, ThrowStack& out) noexcept {
  const Ring& ring = t_ring;
  for (std::size_t k = 1; k <= kRing; ++k) {
    const Record& r = ring.records[(ring.next + kRing - k) % kRing];
    if (r.type == nullptr) continue;
    if (r.type == type && (object == nullptr || r.object == object)) {
      out = r.stack;
      return true;
    }
  }
  return false;
}

}  // namespace mproc::detail

// AddressSanitizer's own __cxa_throw (an interceptor) is bypassed by this one: what it does first
// (forget the stack's poisoned redzones, which the unwinding skips over) is done here.
extern "C" void __asan_handle_no_return() __attribute__((weak));

extern "C" __attribute__((visibility("default"), noreturn)) void __cxa_throw(
    void* object, void* type, void (*destroy)(void*)) {
  using namespace mproc::detail;
  if (g_record.load(std::memory_order_relaxed)) {
    Ring& ring = t_ring;
    Record& r = ring.records[ring.next];
    ring.next = (ring.next + 1) % kRing;
    r.object = object;
    r.type = type;
    r.stack.frames = 0;
    r.stack.truncated = false;
    Walk w{&r.stack};
    _Unwind_Backtrace(&walk_frame, &w);
  }
  if (&__asan_handle_no_return != nullptr) __asan_handle_no_return();
  next_function(g_next_throw, "__cxa_throw")(object, type, destroy);
  std::abort();  // the runtime's __cxa_throw does not return
}

// An exception object freed: its records go (on this thread, which is where it was thrown unless
// an exception_ptr carried it to another), so an object made later at the same address without a
// throw (std::make_exception_ptr) is not taken for it.
extern "C" __attribute__((visibility("default"))) void __cxa_free_exception(void* object) noexcept {
  using namespace mproc::detail;
  for (Record& r : t_ring.records)
    if (r.object == object) r.object = r.type = nullptr;
  next_function(g_next_free, "__cxa_free_exception")(object);
}

#else  // !MPROC_TRACEBACKS

bool throw_stacks_recorded() noexcept { return false; }
void record_throw_stacks() noexcept {}
void add_stop_address(std::uintptr_t) noexcept {}
bool find_throw_stack(const void*, const void*, ThrowStack&) noexcept { return false; }

}  // namespace mproc::detail

#endif
