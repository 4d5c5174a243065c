// bench/harness.hpp — the cross-process benchmark harness: named workloads, runners, partners.
//
// A workload is one named way to do one operation ("lock.uncontended/mproc"): it belongs to a
// group ("lock.uncontended") that holds every implementation of the same operation (mproc, the
// raw-syscall floor here, CPython's anchor in bench/python/), so that bench/compare.py can put
// them side by side. A workload makes a `Runner` once; `bench --serve` (command_line.hpp) then runs
// it for as many iterations as bench/compare.py asks, as often as it asks, and reports the seconds
// each run took: the calibration, repetition and ordering policy is compare.py's alone
// (docs/benchmarks.md).
//
// Workloads register themselves at static-initialisation time:
//
//   const mproc_bench::Registrar kFoo{{.name = "lock.uncontended/floor",
//                                      .group = "lock.uncontended",
//                                      .impl = "floor",
//                                      .label = "robust pthread mutex",
//                                      .make = [] { return loop_runner([](std::uint64_t n) {...});
//                                      }}};
//
// Groups (what one operation is, its target) are declared once, in groups.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mproc_bench {

// Runs `iters` operations and returns the elapsed wall time in seconds.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual double run(std::uint64_t iters) = 0;
};

// What a throughput group's rows move per op, so that compare.py shows a rate beside the time.
enum class Rate {
  kNone,      // time per op only
  kMessages,  // one op = one message: also messages per second
  kBytes,     // one op = `bytes_per_op` bytes: also bytes per second
};

// One operation measured several ways. `target` compares cost ratios, "python/mproc>=8" (mproc at
// least 8x faster than Python) or "mproc/floor<=1.5" (mproc at most 1.5x the floor's time), or
// bounds mproc's own figure: "mproc<=100ns" (time per op; ns, us, ms or s), "mproc>=10M/s" (ops
// per second; k, M or G) or "mproc>=5GB/s" (bytes per second, for a `Rate::kBytes` group).
// compare.py checks them (docs/benchmarks.md).
struct Group {
  std::string name;
  std::string op;  // what one "op" is, for the docs and --list
  std::string target;
  // Run each row of the group in a program invocation of its own (compare.py does so), e.g. so
  // that a floor never runs in a process where mproc has registered its fork handlers.
  bool isolate = false;
  Rate rate = Rate::kNone;
  std::uint64_t bytes_per_op = 0;  // with Rate::kBytes
};

struct Workload {
  std::string name;     // "<group>/<impl>[.<variant>]", unique
  std::string group;    // a Group's name
  std::string impl;     // "mproc", "floor" or "anchor" (another library) here; "python" in
                        // bench/python/
  std::string label;    // a few words on how it is done
  bool primary = true;  // false: an extra row shown under the group's main row
  std::function<std::unique_ptr<Runner>()> make;
};

std::vector<Workload>& workloads();
const std::vector<Group>& groups();

struct Registrar {
  explicit Registrar(Workload w) { workloads().push_back(std::move(w)); }
};

// A runner that calls `body(iters)` in this process.
template <class F>
std::unique_ptr<Runner> loop_runner(F body);

// Where a two-process runner puts its processes. `kSplit` pins them to two different CPUs (the
// first two this process may use): both run at once, as on an idle multi-core machine. `kSame` pins
// both to the first: every hand-off is a wake-up and a context switch, whatever else runs on the
// other CPUs. `kNone` leaves placement to the scheduler (varies from run to run).
enum class Pin { kSplit, kSame, kNone };

// Two processes: this one and a partner forked when the runner is made (it dies with this process).
// For each repetition: `before` runs here while the partner is idle; then the clock starts, the
// partner is told to run `partner(iters)`, this process runs `self(iters)`, and the clock stops
// when both have returned. The partner lives until the runner is destroyed.
struct PairSpec {
  Pin pin = Pin::kSplit;  // each group chooses; see docs/benchmarks.md
  std::function<void()> before;
  std::function<void(std::uint64_t)> self;
  std::function<void(std::uint64_t)> partner;
};
std::unique_ptr<Runner> pair_runner(PairSpec spec);

// This process and `partners` partners (at most kMaxPartners), forked when the runner is made: as
// pair_runner, with `partner(index, iters)` run in partner `index` (0 ... partners - 1); the clock
// stops when this process and every partner have returned. Under `Pin::kSplit` this process takes
// the first CPU and the partners the next ones in turn (wrapping round); under `Pin::kSame` all
// share the first.
inline constexpr unsigned kMaxPartners = 8;
struct TeamSpec {
  Pin pin = Pin::kNone;
  unsigned partners = 1;
  std::function<void()> before;
  std::function<void(std::uint64_t)> self;
  std::function<void(unsigned, std::uint64_t)> partner;
};
std::unique_ptr<Runner> team_runner(TeamSpec spec);

// The share of `n` ops that member `index` of `count` does: n / count, the first n % count
// members doing one more.
constexpr std::uint64_t share(std::uint64_t n, unsigned index, unsigned count) noexcept {
  return n / count + (index < n % count ? 1 : 0);
}

// Overrides every PairSpec's and TeamSpec's `pin` (bench --pin); nullopt restores each workload's
// own.
void set_pin_override(std::optional<Pin> pin) noexcept;
// Gives this process back the CPUs it could use when it started (pair and team runners pin it).
void restore_affinity() noexcept;

// Memory shared with forked partners: an anonymous MAP_SHARED mapping holding one `T`, destroyed
// and unmapped when the last owner in this process lets go (a partner never unmaps: it leaves with
// _exit). Throws std::system_error when mmap fails.
void* map_shared(std::size_t bytes);
void unmap_shared(void* p, std::size_t bytes) noexcept;

template <class T, class... Args>
std::shared_ptr<T> make_shared_object(Args&&... args) {
  void* p = map_shared(sizeof(T));
  T* obj = nullptr;
  try {
    obj = ::new (p) T(std::forward<Args>(args)...);
  } catch (...) {
    unmap_shared(p, sizeof(T));
    throw;
  }
  return std::shared_ptr<T>(obj, [](T* q) {
    q->~T();
    unmap_shared(q, sizeof(T));
  });
}

// Seconds on CLOCK_MONOTONIC.
double now_seconds() noexcept;

// Keeps the compiler from proving a value unused.
template <class T>
inline void do_not_optimize(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

template <class F>
std::unique_ptr<Runner> loop_runner(F body) {
  class LoopRunner final : public Runner {
   public:
    explicit LoopRunner(F f) : body_(std::move(f)) {}
    double run(std::uint64_t iters) override {
      const double t0 = now_seconds();
      body_(iters);
      return now_seconds() - t0;
    }

   private:
    F body_;
  };
  return std::make_unique<LoopRunner>(std::move(body));
}

}  // namespace mproc_bench
