// start/start.hpp — the start methods inside the library: which one a start uses, the program's
// init state, the fresh child's bootstrap and the forkserver (private to the library).
#pragma once

#include <sys/types.h>

#include <mproc/export.hpp>
#include <mproc/process.hpp>
#include <optional>
#include <string>
#include <system_error>

namespace mproc::detail {

// The method a start uses: `requested` if set, else set_start_method's, else the safe default:
// fork while the calling process is single-threaded; otherwise forkserver if init() was called and
// the target `travels` to a fresh image; otherwise fork with a warning printed once per program
// naming the fix (init, or partial). `what` names the caller in the warning.
StartMethod choose_start_method(std::optional<StartMethod> requested, bool travels,
                                const char* what);

// Whether mproc::init ran in this program (as the user's program: it returned).
bool init_was_called() noexcept;
// Runs at the end of mproc::init in the user's program (not in a spawned child or the
// forkserver): mproc::mpi makes init MPI-aware with it (mproc/mpi.hpp). One hook; a later call
// replaces it.
using InitHook = void (*)(int argc, char** argv);
MPROC_API void set_init_hook(InitHook hook) noexcept;
// Throws ProcessError naming the fix unless init ran ("mproc::Process::start: the start method
// spawn needs mproc::init(argc, argv) ...").
void require_init(StartMethod method, const char* what);
// The argv[0] the program was started with (for the children's argv), "mproc" if unknown.
const char* program_argv0() noexcept;
// The method's name: "fork", "spawn", "forkserver".
const char* method_name(StartMethod m) noexcept;

// Whether the calling process has more than one thread now.
bool process_is_threaded() noexcept;

// The child side of spawn and forkserver: reads the boot channel `boot_fd`, becomes the Process
// it describes, runs its target and ends the process (src/process.cpp). Never returns. `spawned`:
// started by spawn (its parent is the starter); otherwise a forkserver's child.
[[noreturn]] void run_fresh_child(int boot_fd, bool spawned) noexcept;

// The forkserver's own loop on its control socket (start/forkserver.cpp). Never returns.
// `bind_now_added`: the client put LD_BIND_NOW=1 in the server's environment (so that the server
// binds every symbol once, before it forks, rather than each child binding lazily); the server
// removes it, so that its children's environment is the program's.
[[noreturn]] void run_forkserver(int control_fd, bool bind_now_added) noexcept;

// Asks this process's forkserver (started on first use, restarted once if it is found dead) for a
// new child whose boot channel end is `boot_end` (borrowed: the server receives a copy). Does not
// wait for the child: its pid comes with its acknowledgement on the boot channel. On failure the
// errno and, in `why`, the step that failed.
std::error_code forkserver_fork(int boot_end, std::string& why) noexcept;

// The forkserver's pid (0 when none runs) and its descriptors in this process (-1 when none):
// process-lifetime state the tests' leak check knows about.
pid_t forkserver_pid() noexcept;
void forkserver_fds(int& control, int& pidfd) noexcept;
// Ends this process's forkserver (it kills the children it still has) and reaps it. The next
// forkserver start starts a new one.
void forkserver_stop() noexcept;
// Reaps this process's forkserver if it has ended or ends within 20 ms (killed): called when a
// forkserver child's channel ends without its status, so that a dead server does not stay a zombie
// until the next forkserver start.
// True when it had ended (and is now reaped).
bool forkserver_reap_if_dead() noexcept;
// In a child made by fork: forget the parent's forkserver (its descriptors are closed).
void forkserver_forget_after_fork() noexcept;

}  // namespace mproc::detail
