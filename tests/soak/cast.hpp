// soak/cast.hpp — the driver's side of the participants: starting and restarting them, the chaos
// (SIGKILL, and SIGSTOP followed by SIGCONT after a short while, to random participants and to the
// Pool's zygote and workers), the hang watchdog, and what each death means for the accounts.
//
// Who may be signalled: every participant and Pool process, never the driver. The JoinableQueue
// consumer is only stopped, never killed: a consumer killed between get() and task_done() leaves
// its item unfinished for good (documented, as in Python), which would make the JoinableQueue's
// final count unverifiable; killing its producer (often blocked in put() on the full queue) is what
// tests that count.
//
// The watchdog: a participant (a cast slot, whichever incarnation plays it) whose `ops` has not
// moved for `hang` seconds, not counting the time it spent stopped, has hung. A restart is not
// progress: the chaos kills each participant every second or so, and a wedged primitive must
// still show. The hang is reported (role, what it was doing), the participant is SIGKILLed and
// restarted so that the run goes on, and its clock starts again: a primitive that stays wedged
// shows as a hang every `hang` seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <mproc/process.hpp>
#include <optional>
#include <set>
#include <vector>

#include "soak/board.hpp"
#include "soak/message.hpp"
#include "soak/world.hpp"

namespace soak {

using Clock = std::chrono::steady_clock;

struct ChaosStats {
  std::uint64_t kills = 0;         // SIGKILLs sent by the chaos (participants and pool processes)
  std::uint64_t stops = 0;         // SIGSTOPs sent (each followed by a SIGCONT)
  std::uint64_t worker_kills = 0;  // of those kills, Pool workers
  std::uint64_t zygote_kills = 0;  // of those kills, Pool zygotes
  std::uint64_t hangs = 0;         // watchdog verdicts, and participants that would not stop
  std::uint64_t restarts = 0;
  // Consumer deaths inside a get/record window (the messages they had noted are excused).
  std::uint64_t window_deaths = 0;
  // Deaths of the JoinableQueue consumer between get() and task_done() (watchdog kills only).
  std::uint64_t holding_deaths = 0;
};

class Cast {
 public:
  Cast(World& world, std::uint64_t seed, std::chrono::milliseconds hang);
  Cast(const Cast&) = delete;
  Cast& operator=(const Cast&) = delete;

  void start_all();
  // Housekeeping, called often: reaps and restarts participants that exited or were killed,
  // resumes stopped processes whose time is up, runs the watchdog, reaps orphans. Never waits
  // for a process: a killed one can take a second to go (a pool client unmapping its pool at
  // low priority), and the driver keeps its pace meanwhile.
  void tick();
  // One random SIGKILL or SIGSTOP.
  void chaos(Rng& rng);
  // Resumes every stopped process now.
  void resume_all();
  // After the board says stop: waits (until `deadline`) for every participant to return;
  // one that does not is a hang and is killed. Process handles are released.
  void join_all(Clock::time_point deadline);

  // The seqs of each producer whose absence a death explains.
  Ledger::Excuses& excuses(int producer) { return excuses_[producer]; }
  const ChaosStats& stats() const { return stats_; }

 private:
  struct Member {
    std::optional<mproc::Process> proc;
    std::uint32_t incarnation = 0;
    std::uint64_t last_ops = 0;
    Clock::time_point progress_at;               // last progress (or first start, or hang)
    Clock::duration stopped_for{};               // time spent stopped since progress_at
    std::optional<Clock::time_point> resume_at;  // set while stopped
    Clock::time_point stopped_at;
    std::optional<Clock::time_point> killed_at;  // set from our SIGKILL until it is reaped
  };
  struct StoppedPid {
    int pidfd;
    Clock::time_point resume_at;
  };

  void start(int slot);
  // Accounts for an incarnation that ended, and checks its exit code (`killed`: we sent SIGKILL).
  void ended(int slot, bool killed);
  // A consumer died inside its window: the messages it noted may be lost with it.
  void excuse_receipts(Slot& st);
  // Sends SIGKILL; tick() reaps and restarts.
  void kill_member(int slot);
  // Reaps a member that has exited, accounts for it and (unless stopping) starts the next
  // incarnation; false while it still runs.
  bool reap_member(int slot);
  void stop_member(int slot, std::chrono::milliseconds for_how_long);
  void resume_member(int slot);
  void watchdog();
  // The Pool's processes under the pool client: the zygote first, then the workers.
  std::vector<int> pool_processes() const;
  void signal_pool_process(int pid, int expected_parent, bool zygote, bool kill,
                           std::chrono::milliseconds stop);
  std::set<int> known_pids() const;

  World& w_;
  std::uint64_t seed_;
  std::chrono::milliseconds hang_;
  Member members_[kSlots];
  std::vector<StoppedPid> stopped_pids_;
  Ledger::Excuses excuses_[kLedgerProducers];
  ChaosStats stats_;
};

}  // namespace soak
