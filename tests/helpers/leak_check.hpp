// helpers/leak_check.hpp — the leak check every test binary runs around each of its tests.
//
// Before each test it records the test process's open descriptors (with what they point to), its
// descendants and the entries of /dev/shm; after the test (fixture destroyed) it records them
// again and fails the test if anything is new and still there once the system has had a bounded
// time to settle (kSettle): a descriptor, a descendant process still running, a zombie, or a
// /dev/shm entry. The message names each leaked fd with its target, each process with its pid,
// state and command line, and each /dev/shm entry. Leaked descendants are then SIGKILLed, so that
// none outlives the test binary (a process holding ctest's output pipe would stall the run).
//
// It is linked into every test binary by `mproc_add_test` (tests/CMakeLists.txt) through the main
// in leak_check_runner.cpp, so no test opts in. Under ctest each TEST runs in its own process, so
// the check must happen within the test: a leak cannot be seen by the next test.
//
// What counts as the test's:
// - Descriptors: any (fd number, target) pair open after the test that was not open before it.
// - Descendants: processes whose parent chain leads to the test process, and, when the test
//   process leads its own process group (see `own_process_group`), every other member of that
//   group: a grandchild orphaned by its parent's death is reparented to init and falls out of the
//   parent chain, but keeps the process group. Processes that existed before the test (same pid and
//   start time) are not the test's.
// - /dev/shm: entries owned by this user that did not exist before the test, unless every process
//   that holds one (open or mapped) is outside the test's process tree: ctest runs tests in
//   parallel, and another test's live segment is not this test's leak. An entry nobody holds
//   counts.
//
// Exclusions (each is process-lifetime state by design, not a leak):
// - mproc's own pidfd of the calling process (src/process.cpp, ProcessState::self_pidfd): opened
//   by the first Process::start() and kept for the life of the process, because every child
//   inherits it as its parent's sentinel. Recognised as an anon_inode:[pidfd] whose fdinfo names
//   this process's own pid; a pidfd of any other process is still a leak.
// - The sanitizer runtime's llvm-symbolizer child, and the two pipes it talks to it through,
//   which ASan/TSan start the first time they symbolize a stack (to print a report, or to match
//   a suppression) and keep for the life of the process. Recognised by the process name, and the
//   pipes by being open in that process too.
// - The forkserver (src/start/forkserver.cpp): started by the first forkserver start and kept for
//   the life of the process, with its control socket and pidfd. Recognised by asking the library
//   (mproc::detail::forkserver_pid, forkserver_fds); a zombie forkserver is still a leak.
// - The descriptor the check itself uses to list /proc/self/fd.
// The library keeps no other process-lifetime descriptor or process: the Pool's zygote and
// workers, queue and lock regions (memfds) and pidfds all belong to objects a test destroys.
//
// Set MPROC_LEAK_CHECK=0 to turn the check off (for example to debug a test under gdb).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mproc_test::leak {

// How long the check waits for the system to settle before it calls something a leak: daemon
// children and orphaned grandchildren die asynchronously (PR_SET_PDEATHSIG, pipe EOF).
inline constexpr std::chrono::milliseconds kSettle{5000};

struct ProcInfo {
  int pid = 0;
  int ppid = 0;
  int pgid = 0;
  char state = 0;                // 'R', 'S', 'Z', ...
  unsigned long long start = 0;  // start time in clock ticks after boot (against pid reuse)
  std::string comm;              // the name in /proc/<pid>/stat
};

struct Snapshot {
  std::map<int, std::string> fds;  // fd -> readlink target
  std::map<int, int> pidfd_pids;   // fd -> the pid a pidfd refers to (-1 once it is reaped)
  std::map<std::pair<int, unsigned long long>, ProcInfo> descendants;  // (pid, start) -> info
  std::set<std::string> shm;                 // /dev/shm names of this user
  std::set<std::string> symbolizer_targets;  // what the sanitizer's llvm-symbolizer holds open
};

// What leaked, one readable line per item.
struct Leaks {
  std::vector<std::string> fds;
  std::vector<std::string> processes;  // still running
  std::vector<std::string> zombies;
  std::vector<std::string> shm;
  std::vector<int> pids;  // the leaked descendants that are not zombies, for the cleanup
  bool empty() const { return fds.empty() && processes.empty() && zombies.empty() && shm.empty(); }
  std::string describe() const;
};

// Makes the test process the leader of a new process group, so that its descendants can be found
// even after their parent died (they keep the group). Skipped when a terminal is attached (a
// process outside the terminal's foreground group would no longer get Ctrl-C) and when the
// process already leads its group. Call once, first thing in main.
void own_process_group();

Snapshot take_snapshot();

// What is in `after` but not in `before`, minus the exclusions above.
Leaks compare(const Snapshot& before, const Snapshot& after);

// Takes snapshots until nothing new is left or `settle` has passed; returns what is left.
Leaks wait_for_no_leaks(const Snapshot& before, std::chrono::milliseconds settle = kSettle);

// The GoogleTest listener: a snapshot in OnTestStart, the comparison in OnTestEnd (ADD_FAILURE).
// Does nothing in a process other than the one that started the test (a forked child that
// returned into GoogleTest) and when MPROC_LEAK_CHECK=0.
class Listener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override;
  void OnTestEnd(const ::testing::TestInfo& info) override;

 private:
  bool active_ = false;
  int pid_ = 0;
  Snapshot before_;
};

// Appends the listener to GoogleTest's listeners; call after InitGoogleTest, so that it runs
// before the result printer at the end of each test and its failure is printed with the test.
void install();

}  // namespace mproc_test::leak
