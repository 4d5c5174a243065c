// mproc/start_method.hpp — how processes are started: `mproc::init`, the start methods fork, spawn
// and forkserver, and the functions that choose one: `set_start_method`, `get_start_method`,
// `get_all_start_methods`, `get_context`.
//
// Mirrors multiprocessing's contexts and start methods.
//
// The one line a program adds:
//
//   int main(int argc, char** argv) {
//     mproc::init(argc, argv);   // first, before anything with side effects
//     ...
//   }
//
// In the program run by a user, init() records that it ran and returns at once. In a process that
// mproc started with spawn or forkserver (the same program file, run again), it becomes that
// child (or the forkserver) and never returns: main's code after it never runs there. Without
// init(), starting a process with spawn or forkserver throws ProcessError at `start()` naming this
// line; fork needs nothing.
//
// The methods (StartMethod in mproc/process.hpp; Python's names as strings):
//   * "fork": the child is a copy of the calling process with only the calling thread. Fastest;
//     lambdas with captures, globals and pointers come along. In a process with other threads a
//     lock another thread held stays held in the child (malloc's, iostreams', the program's own):
//     the child can deadlock.
//   * "spawn": the program file is run again (/proc/self/exe, posix_spawn: safe in a threaded
//     program). The child gets only descriptors 0, 1, 2 and those of the handles it was given.
//     Before main's init() returns control to mproc, the program's static initialisers run in it.
//   * "forkserver": a server process, itself spawned the first time it is needed and
//     single-threaded, forks the children on request. Safe in a threaded program; a child costs a
//     fork of a small fresh process rather than an exec. The server ends with the program.
// With spawn and forkserver the target and its arguments travel to a fresh image: the callable
// must be a function, a lambda without captures, a function object with serialize(), or
// mproc::partial(f, args...) of those (a lambda with captures would carry addresses of the parent;
// its start() throws ValueError naming partial); every argument must be encodable (mproc/codec.hpp)
// or an mproc handle (Queue, Lock, Event, Value, SharedMemory, Connection, ...: their descriptors
// travel with them). Code in shared libraries travels as (library, offset): a library the parent
// loaded with dlopen is loaded by the child from the same file, checked by build-id.
//
// The default (no set_start_method, no per-object choice): fork while the calling process is
// single-threaded; once it has other threads, forkserver if init() was called and the target can
// travel, and otherwise fork with a warning printed once per program on stderr naming the fix
// (init(), or partial for a lambda with captures). A threaded program is never forked silently.
// Python 3.14 uses forkserver by default on Linux (and raises for a target it cannot pickle); a
// C++ program that calls init() gets the same safety, keeps fork's speed while it has no thread,
// and keeps working, with a warning, where its target cannot travel.
//
// Thread safety: every function may be called from any thread. set_start_method affects starts
// that begin after it returns.
#pragma once

#include <mproc/export.hpp>
#include <mproc/process.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mproc {

class Pool;
struct PoolOptions;

// Turns a process started by spawn or forkserver into what it was started for (never returns
// there); returns at once in the user's program. Call it first in main, with main's arguments.
// Calling it more than once is harmless. Throws nothing in the user's program.
MPROC_API void init(int argc, char** argv);

// The name of a method ("fork", "spawn", "forkserver") and back. The string form throws
// ValueError("cannot find context for 'xyz'") for an unknown name. Mirror Python's strings.
[[nodiscard]] MPROC_API std::string_view start_method_name(StartMethod method) noexcept;
[[nodiscard]] MPROC_API StartMethod start_method_from_name(std::string_view name);

// Sets the program's start method. Throws ProcessError("context has already been set") when one
// is set and `force` is false; ValueError for an unknown name. Mirrors
// multiprocessing.set_start_method(method, force=False).
MPROC_API void set_start_method(StartMethod method, bool force = false);
MPROC_API void set_start_method(std::string_view method, bool force = false);
// Clears the program's choice (the default rule applies again). Mirrors
// set_start_method(None, force=True).
MPROC_API void reset_start_method() noexcept;

// The program's start method: the one set, or, when none is, the one the default rule picks for a
// start made now (with `allow_none`: empty instead). Unlike Python, asking does not fix the
// choice. Mirrors multiprocessing.get_start_method(allow_none=False).
[[nodiscard]] MPROC_API std::optional<std::string> get_start_method(bool allow_none = false);

// {"fork", "spawn", "forkserver"}. Mirrors multiprocessing.get_all_start_methods().
[[nodiscard]] MPROC_API std::vector<std::string> get_all_start_methods();

// A start method bound to the objects made through it (Python's context objects). Queues, locks,
// shared memory and pipes do not depend on the method in mproc (they work with every one), so a
// context makes processes and pools; make the rest directly.
//   auto ctx = mproc::get_context("spawn");
//   mproc::Process p = ctx.process(work, q);
class Context {
 public:
  // The method (empty: the default context, whose starts follow the program's choice).
  [[nodiscard]] std::optional<StartMethod> method() const noexcept { return method_; }
  // The method's name; for the default context, the program's start method now.
  [[nodiscard]] std::string get_start_method() const {
    if (method_) return std::string(start_method_name(*method_));
    return *mproc::get_start_method(false);
  }
  // A Process (not started) that will use this context's method. Mirror ctx.Process(target=...).
  template <class F, class... Args>
  [[nodiscard]] Process process(F&& f, Args&&... args) const {
    return Process(ProcessOptions{.start_method = method_}, std::forward<F>(f),
                   std::forward<Args>(args)...);
  }
  template <class F, class... Args>
  [[nodiscard]] Process process(ProcessOptions options, F&& f, Args&&... args) const {
    if (!options.start_method) options.start_method = method_;
    return Process(std::move(options), std::forward<F>(f), std::forward<Args>(args)...);
  }
  // A Pool whose workers use this context's method (needs <mproc/pool.hpp>). Mirrors
  // ctx.Pool(processes, ...).
  //   mproc::Pool pool = mproc::get_context("forkserver").pool({.processes = 4});
  template <class P = Pool, class Options = PoolOptions>
  [[nodiscard]] P pool(Options options = Options{}) const {
    if (!options.start_method) options.start_method = method_;
    return P(std::move(options));
  }

 private:
  friend Context get_context(std::optional<StartMethod>) noexcept;
  explicit Context(std::optional<StartMethod> method) noexcept : method_(method) {}
  std::optional<StartMethod> method_;
};

// The context of `method` (empty: the default context). The string form throws ValueError for an
// unknown name. Mirrors multiprocessing.get_context(method=None).
[[nodiscard]] inline Context get_context(
    std::optional<StartMethod> method = std::nullopt) noexcept {
  return Context(method);
}
[[nodiscard]] inline Context get_context(std::string_view method) {
  return get_context(start_method_from_name(method));
}

}  // namespace mproc
