// soak/leaks.hpp — what the driver process holds, to tell what a run leaked: descriptors, child
// processes (the driver is a child subreaper, so orphaned descendants become its children), and
// /dev/shm entries.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace soak {

struct Snapshot {
  std::map<int, std::string> fds;  // fd -> what it points to
  std::set<std::string> shm;       // /dev/shm entries owned by this user
};

Snapshot take_snapshot();

// Descriptors in `after` that were not in `before`, one line each ("fd 7 -> memfd:..."), except
// mproc's pidfd of the calling process itself, which the first Process::start() opens for the
// life of the process (every child inherits it as its parent's sentinel).
std::vector<std::string> new_fds(const Snapshot& before, const Snapshot& after);
std::vector<std::string> new_shm(const Snapshot& before, const Snapshot& after);

// The calling process's children (all threads), zombies included.
std::vector<int> children_of_self();
// The children of `pid` (all its threads).
std::vector<int> children_of(int pid);
// /proc/<pid>/stat's state letter and parent pid; state 0 if the process is gone.
struct ProcStat {
  char state = 0;
  int ppid = 0;
};
ProcStat proc_stat(int pid);
// A readable description of a process: pid, state and command line.
std::string describe_process(int pid);

// Reaps children of the calling process that are not in `known` and have exited (orphans
// reparented to this subreaper). Never waits; returns how many it reaped.
int reap_orphans(const std::set<int>& known);

// Waits until the calling process has no child left or `settle` passed, reaping as they exit;
// then SIGKILLs and reaps whatever is left and returns their descriptions (the leaked ones).
std::vector<std::string> settle_children(std::chrono::milliseconds settle);

}  // namespace soak
