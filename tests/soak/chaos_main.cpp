// soak/chaos_main.cpp — the chaos soak behind `make soak SECONDS=N` (docs/soak.md).
//
//   soak_chaos [--seconds N] [--hang S] [--seed N] [--progress]
//
// Starts the cast of soak/board.hpp (producers and consumers on a Queue with a 64 KiB ring and a
// JoinableQueue, lockers on a Lock and an RLock, sync parties on an Event, a Barrier and a
// Condition, and a pool client with a Pool of 2 workers), then for N seconds SIGKILLs and
// SIGSTOP/SIGCONTs random participants and Pool processes, restarting the killed ones. Then it
// stops everything, drains the queues, joins, and checks what it can:
//
//   hangs        participants that made no progress for S seconds while not stopped, or did not
//                stop when asked
//   lost         messages whose put() returned and that nobody received, except those a consumer
//                killed inside get() had begun to take (it notes each one as it decodes it)
//   duplicated   messages received twice
//   torn         messages whose checksum or length is wrong or that failed to decode, critical
//                sections found half-done without owner_died(), pool results that are not their
//                task's
//   count drift  qsize()/empty()/full() against the items really in the queues, JoinableQueue
//                items still unfinished after everything was received and done, Pool::unfinished()
//                after join()
//   leaked       descriptors the driver holds that it did not hold before, descendants still alive
//                at the end (the driver is their subreaper), new /dev/shm entries
//   errors       anything else unexpected (a participant's exception or exit code, a WorkerLost or
//                BrokenPool without a kill to explain it, ...), each logged on stderr
//
// It prints one summary line on stdout and exits 1 if any of those is nonzero. Details (the error
// log) go to stderr. The only timing judgement is the hang watchdog.
#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "soak/accounts.hpp"
#include "soak/board.hpp"
#include "soak/cast.hpp"
#include "soak/leaks.hpp"
#include "soak/roles.hpp"
#include "soak/world.hpp"

namespace soak {
namespace {

using namespace std::chrono_literals;

struct Options {
  double seconds = 60;
  double hang = 10;
  std::uint64_t seed = 0;
  bool progress = false;
};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: soak_chaos [--seconds N] [--hang S] [--seed N] [--progress]\n");
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  o.seed = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--seconds") {
      o.seconds = std::strtod(value(), nullptr);
    } else if (a == "--hang") {
      o.hang = std::strtod(value(), nullptr);
    } else if (a == "--seed") {
      o.seed = std::strtoull(value(), nullptr, 0);
    } else if (a == "--progress") {
      o.progress = true;
    } else {
      usage();
    }
  }
  if (!(o.seconds >= 0) || !(o.hang > 0)) usage();
  return o;
}

// Closes the Event gate now and then for a few milliseconds (the sync parties wait on it).
class Gate {
 public:
  explicit Gate(mproc::Event& e) : event_(e) { event_.set(); }
  void tick(Clock::time_point now, Rng& rng) {
    if (now < next_) return;
    if (open_) {
      event_.clear();
      next_ = now + std::chrono::milliseconds(1 + rng() % 20);
    } else {
      event_.set();
      next_ = now + std::chrono::milliseconds(20 + rng() % 200);
    }
    open_ = !open_;
  }
  void open() {
    event_.set();
    open_ = true;
  }

 private:
  mproc::Event& event_;
  bool open_ = true;
  Clock::time_point next_{};
};

std::uint64_t total_ops(const Board& b) {
  std::uint64_t n = 0;
  for (const Slot& s : b.slots) n += s.ops.load();
  return n;
}

// The longest the chaos loop went between two housekeeping rounds (shown in the details: the
// watchdog's resolution).
Clock::duration g_slowest_tick{};

// The chaos phase: until `end`, housekeeping every millisecond and a random signal every few.
void run_chaos(World& w, Cast& cast, Accounts& accounts, Rng& rng, Clock::time_point end,
               bool progress) {
  Gate gate(w.gate);
  const auto t0 = Clock::now();
  auto next_chaos = t0 + 200ms;  // let the cast settle first
  auto next_report = t0 + 5s;
  auto last = t0;
  for (auto now = t0; now < end; now = Clock::now()) {
    g_slowest_tick = std::max(g_slowest_tick, now - last);
    last = now;
    cast.tick();
    accounts.sweep();
    gate.tick(now, rng);
    if (now >= next_chaos) {
      cast.chaos(rng);
      next_chaos = now + std::chrono::milliseconds(2 + rng() % 40);
    }
    if (progress && now >= next_report) {
      const ChaosStats& st = cast.stats();
      std::fprintf(stderr, "soak: %.0f s, %llu ops, %llu kills, %llu stops, %llu hangs\n",
                   std::chrono::duration<double>(now - t0).count(),
                   static_cast<unsigned long long>(total_ops(*w.board)),
                   static_cast<unsigned long long>(st.kills),
                   static_cast<unsigned long long>(st.stops),
                   static_cast<unsigned long long>(st.hangs));
      next_report = now + 5s;
    }
    std::this_thread::sleep_for(1ms);
  }
  cast.resume_all();
  gate.open();
}

// Asks everyone to stop and waits for them (a bounded wait: a participant that does not stop is
// a hang).
void stop_cast(World& w, Cast& cast) {
  w.board->stop.store(1);
  w.barrier.abort();  // parties waiting at the barrier leave at once
  cast.join_all(Clock::now() + 30s);
}

// Checks that the pool's failures are explained by the kills the chaos made.
void check_pool(World& w, const ChaosStats& st) {
  const Counters& c = w.board->counters;
  const std::uint64_t lost_allowed = st.worker_kills + kPoolWorkers * st.zygote_kills;
  if (c.pool_lost.load() > lost_allowed)
    report_error(*w.board, "%llu WorkerLost for %llu worker and %llu zygote kills",
                 static_cast<unsigned long long>(c.pool_lost.load()),
                 static_cast<unsigned long long>(st.worker_kills),
                 static_cast<unsigned long long>(st.zygote_kills));
  if (c.pools_broken.load() > st.zygote_kills)
    report_error(*w.board, "%llu pools broke for %llu zygote kills",
                 static_cast<unsigned long long>(c.pools_broken.load()),
                 static_cast<unsigned long long>(st.zygote_kills));
}

struct Leaked {
  std::uint64_t count = 0;
  void add(Board& b, const char* what, const std::vector<std::string>& items) {
    for (const std::string& s : items) b.log.add("leaked %s: %s", what, s.c_str());
    count += items.size();
  }
};

// What the checks after the chaos found.
struct Verdict {
  std::uint64_t hangs = 0, lost = 0, duplicated = 0, torn = 0, drift = 0, leaked = 0, errors = 0;
  bool bad() const { return hangs || lost || duplicated || torn || drift || leaked || errors; }
};

// Stops the cast, then drains, counts and checks (see the header comment).
Verdict check_all(World& w, Cast& cast, Accounts& accounts, const Snapshot& before) {
  Verdict v;
  stop_cast(w, cast);
  v.drift += accounts.drain_queue();
  v.drift += accounts.drain_joinable();
  v.drift += w.board->counters.pool_drift.load();
  v.hangs += accounts.check_locks();
  v.hangs += cast.stats().hangs;
  accounts.final_sweep();
  check_pool(w, cast.stats());

  Leaked leaked;
  leaked.add(*w.board, "process", settle_children(5s));
  const Snapshot after = take_snapshot();
  leaked.add(*w.board, "descriptor", new_fds(before, after));
  leaked.add(*w.board, "/dev/shm entry", new_shm(before, after));
  v.leaked = leaked.count;

  const Counters& c = w.board->counters;
  v.lost = accounts.lost();
  v.duplicated = c.duplicated.load();
  v.torn = c.torn_messages.load() + c.torn_sections.load() + c.pool_wrong.load();
  v.errors = c.errors.load();
  return v;
}

void print_details(World& w, const Cast& cast, const Accounts& accounts) {
  const ChaosStats& st = cast.stats();
  const Counters& c = w.board->counters;
  auto u = [](std::uint64_t x) { return static_cast<unsigned long long>(x); };
  std::fprintf(stderr,
               "soak: messages delivered %llu (%llu of them refused by DecodeError, as made; "
               "refused again without being consumed %llu), "
               "missing but excused %llu (producer died in put) "
               "+ %llu (consumer died in get; %llu such deaths), sections recovered %llu, barrier "
               "passes %llu broken %llu, pool ok %llu lost %llu broken %llu, worker kills %llu, "
               "zygote kills %llu, restarts %llu, slowest driver round %.0f ms\n",
               u(accounts.delivered()), u(c.undecodable.load()), u(c.undecodable_again.load()),
               u(accounts.maybe_put()), u(accounts.maybe_taken()), u(st.window_deaths),
               u(c.recovered_sections.load()), u(c.barrier_generations.load()),
               u(c.barrier_broken.load()), u(c.pool_ok.load()), u(c.pool_lost.load()),
               u(c.pools_broken.load()), u(st.worker_kills), u(st.zygote_kills), u(st.restarts),
               std::chrono::duration<double, std::milli>(g_slowest_tick).count());
  std::fprintf(stderr, "soak: ops by role:");
  for (int r = 0; r <= static_cast<int>(Role::kPoolClient); ++r) {
    std::uint64_t n = 0;
    for (int s = 0; s < kSlots; ++s)
      if (static_cast<int>(kCast[s].role) == r) n += w.board->slots[s].ops.load();
    std::fprintf(stderr, "%s %s %llu", r ? "," : "", role_name(static_cast<Role>(r)), u(n));
  }
  std::fprintf(stderr, "\n");
  if (w.board->log.next.load()) {
    std::fprintf(stderr, "soak: log:\n");
    w.board->log.print(stderr);
  }
  accounts.print_missing(stderr);
}

int run(const Options& o) {
  // Orphaned descendants (a killed pool client's zygote and workers) become our children, so
  // that the leak check sees any that survive, and we reap them.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  Board* board = make_board();
  World w(board);
  const Snapshot before = take_snapshot();
  Rng rng(o.seed);
  const auto t0 = Clock::now();
  const auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));

  Cast cast(w, o.seed, std::chrono::milliseconds(static_cast<long>(o.hang * 1000)));
  Accounts accounts(w, cast);
  cast.start_all();
  run_chaos(w, cast, accounts, rng, end, o.progress);
  const Verdict v = check_all(w, cast, accounts, before);
  print_details(w, cast, accounts);

  auto u = [](std::uint64_t x) { return static_cast<unsigned long long>(x); };
  std::printf(
      "soak: %.1f s, %d procs, %llu ops, %llu kills, %llu stops, hangs %llu, lost %llu, "
      "duplicated %llu, torn %llu, count drift %llu, leaked %llu, errors %llu, seed %llu\n",
      std::chrono::duration<double>(Clock::now() - t0).count(), kSlots + 1 + kPoolWorkers,
      u(total_ops(*board)), u(cast.stats().kills), u(cast.stats().stops), u(v.hangs), u(v.lost),
      u(v.duplicated), u(v.torn), u(v.drift), u(v.leaked), u(v.errors), u(o.seed));
  std::fflush(stdout);
  return v.bad() ? 1 : 0;
}

}  // namespace
}  // namespace soak

int main(int argc, char** argv) { return soak::run(soak::parse(argc, argv)); }
