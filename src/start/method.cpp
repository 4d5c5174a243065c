// mproc::init, the program's start method and the safe default (see <mproc/start_method.hpp>).
//
// Threads are detected with glibc's __libc_single_threaded (true until the first thread is
// created, never set again): no cost while it holds. Once it is false, /proc/self/stat's thread
// count decides, so a program whose threads have all ended forks again.
#include <sys/single_threaded.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mproc/errors.hpp>
#include <mproc/start_method.hpp>
#include <mutex>
#include <string>

#include "posix/error.hpp"
#include "posix/stacktrace.hpp"
#include "start/start.hpp"

namespace mproc {
namespace detail {
namespace {

std::atomic<int> g_method{-1};  // set_start_method's choice; -1: none
std::atomic<bool> g_init{false};
std::atomic<bool> g_warned{false};
std::mutex g_argv0_mu;
std::string* g_argv0 = nullptr;  // never freed: read until the very end

const char* const kSpawnFlag = "--mproc-spawn";
const char* const kServerFlag = "--mproc-forkserver";

// Threads of the calling process, from /proc/self/stat's 20th field; 0 if it cannot be read.
long thread_count() noexcept {
  char buf[1024];
  FILE* f = std::fopen("/proc/self/stat", "re");
  if (!f) return 0;
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces and parentheses
  if (!p) return 0;
  // After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
  // stime cutime cstime priority nice num_threads(20).
  int field = 2;
  for (++p; *p != '\0'; ++p) {
    if (*p == ' ') {
      ++field;
      if (field == 20) return std::strtol(p + 1, nullptr, 10);
    }
  }
  return 0;
}

}  // namespace

bool process_is_threaded() noexcept {
  if (__libc_single_threaded) return false;
  return thread_count() != 1;
}

bool init_was_called() noexcept { return g_init.load(std::memory_order_acquire); }

const char* program_argv0() noexcept {
  std::lock_guard<std::mutex> lock(g_argv0_mu);
  return g_argv0 ? g_argv0->c_str() : "mproc";
}

const char* method_name(StartMethod m) noexcept {
  switch (m) {
    case StartMethod::fork:
      return "fork";
    case StartMethod::spawn:
      return "spawn";
    case StartMethod::forkserver:
      return "forkserver";
  }
  return "fork";
}

void require_init(StartMethod method, const char* what) {
  if (method == StartMethod::fork || init_was_called()) return;
  throw ProcessError(std::string(what) + ": the start method " + method_name(method) +
                     " runs this program again to make the child, and needs "
                     "`mproc::init(argc, argv);` as the first line of main() to turn that run "
                     "into the child: add it (see mproc/start_method.hpp)");
}

std::atomic<InitHook> g_init_hook{nullptr};
void set_init_hook(InitHook hook) noexcept { g_init_hook.store(hook, std::memory_order_release); }

StartMethod choose_start_method(std::optional<StartMethod> requested, bool travels,
                                const char* what) {
  if (requested) return *requested;
  const int set = g_method.load(std::memory_order_acquire);
  if (set >= 0) return static_cast<StartMethod>(set);
  if (!process_is_threaded()) return StartMethod::fork;
  if (init_was_called() && travels) return StartMethod::forkserver;
  if (!g_warned.exchange(true)) {
    if (!init_was_called()) {
      std::fprintf(stderr,
                   "mproc: warning: %s forks a process that has other threads; a lock one of "
                   "them holds stays locked in the child, which can deadlock. Add "
                   "`mproc::init(argc, argv);` as the first line of main() and mproc uses the "
                   "forkserver start method here instead (or choose one with "
                   "mproc::set_start_method). This warning is printed once.\n",
                   what);
    } else {
      std::fprintf(stderr,
                   "mproc: warning: %s forks a process that has other threads, because its "
                   "target cannot travel to a forkserver child (a lambda with captures, or an "
                   "argument mproc::codec cannot encode); a lock another thread holds stays locked "
                   "in the child, which can deadlock. Bind data with mproc::partial(f, args...) "
                   "instead of captures, or choose a start method explicitly. This warning is "
                   "printed once.\n",
                   what);
    }
  }
  return StartMethod::fork;
}

}  // namespace detail

void init(int argc, char** argv) {
  if (argc >= 2 && argv != nullptr && argv[1] != nullptr) {
    if (std::strcmp(argv[1], detail::kSpawnFlag) == 0) {
      detail::record_throw_stacks();  // a child: its failures are reported to its parent
      detail::run_fresh_child(3, true);
    }
    if (std::strcmp(argv[1], detail::kServerFlag) == 0) {
      detail::run_forkserver(3,
                             argc >= 3 && argv[2] != nullptr && std::strcmp(argv[2], "bind") == 0);
    }
  }
  {
    std::lock_guard<std::mutex> lock(detail::g_argv0_mu);
    if (detail::g_argv0 == nullptr && argc >= 1 && argv != nullptr && argv[0] != nullptr) {
      try {
        detail::g_argv0 = new std::string(argv[0]);
      } catch (...) {
      }
    }
  }
  detail::g_init.store(true, std::memory_order_release);
  if (detail::InitHook hook = detail::g_init_hook.load(std::memory_order_acquire)) hook(argc, argv);
}

std::string_view start_method_name(StartMethod method) noexcept {
  return detail::method_name(method);
}

StartMethod start_method_from_name(std::string_view name) {
  if (name == "fork") return StartMethod::fork;
  if (name == "spawn") return StartMethod::spawn;
  if (name == "forkserver") return StartMethod::forkserver;
  throw ValueError("cannot find context for '" + std::string(name) + "'");
}

void set_start_method(StartMethod method, bool force) {
  int expected = -1;
  const int want = static_cast<int>(method);
  if (force) {
    detail::g_method.store(want, std::memory_order_release);
    return;
  }
  if (!detail::g_method.compare_exchange_strong(expected, want, std::memory_order_acq_rel))
    throw ProcessError("context has already been set");
}

void set_start_method(std::string_view method, bool force) {
  set_start_method(start_method_from_name(method), force);
}

void reset_start_method() noexcept { detail::g_method.store(-1, std::memory_order_release); }

std::optional<std::string> get_start_method(bool allow_none) {
  const int set = detail::g_method.load(std::memory_order_acquire);
  if (set >= 0) return std::string(detail::method_name(static_cast<StartMethod>(set)));
  if (allow_none) return std::nullopt;
  // The default rule's pick for a start made now (without printing its warning).
  if (!detail::process_is_threaded()) return std::string("fork");
  return std::string(detail::init_was_called() ? "forkserver" : "fork");
}

std::vector<std::string> get_all_start_methods() { return {"fork", "spawn", "forkserver"}; }

}  // namespace mproc
