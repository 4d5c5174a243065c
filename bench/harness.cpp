// bench/harness.cpp — the workload registry, shared mappings and the multi-process runner.
#include "harness.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace mproc_bench {

std::vector<Workload>& workloads() {
  static std::vector<Workload> all;
  return all;
}

void* map_shared(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  return p;
}

void unmap_shared(void* p, std::size_t bytes) noexcept { ::munmap(p, bytes); }

double now_seconds() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

namespace {

std::optional<Pin> g_pin_override;

// The CPUs this process could use at start-up.
struct InitialAffinity {
  cpu_set_t set;
  bool ok;
  InitialAffinity() noexcept {
    CPU_ZERO(&set);
    ok = ::sched_getaffinity(0, sizeof set, &set) == 0;
  }
};
const InitialAffinity& initial_affinity() noexcept {
  static const InitialAffinity a;
  return a;
}

// The CPUs for this process (first) and `partners` partners under `pin`; -1 = leave alone.
std::vector<int> team_cpus(Pin pin, unsigned partners) {
  std::vector<int> out(partners + 1, -1);
  if (pin == Pin::kNone) return out;
  const InitialAffinity& init = initial_affinity();
  if (!init.ok) return out;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &init.set)) cpus.push_back(c);
  }
  if (cpus.empty()) return out;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = pin == Pin::kSame ? cpus[0] : cpus[i % cpus.size()];
  }
  return out;
}

void pin_to(int cpu) noexcept {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

// The harness's own futex calls (shared, not private: the words are in MAP_SHARED memory).
void wait_word(std::atomic<std::uint32_t>& word, std::uint32_t expected, long timeout_ns) noexcept {
  timespec ts{};
  ts.tv_sec = timeout_ns / 1000000000L;
  ts.tv_nsec = timeout_ns % 1000000000L;
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected,
            timeout_ns > 0 ? &ts : nullptr, nullptr, 0);
}

void wake_word(std::atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, INT_MAX, nullptr,
            nullptr, 0);
}

struct Control {
  alignas(64) std::atomic<std::uint32_t> go{0};  // bumped by the parent to start a repetition
  std::atomic<std::uint64_t> iters{0};
  std::atomic<std::uint32_t> stop{0};
  struct alignas(64) Done {
    std::atomic<std::uint32_t> seq{0};  // set to `go`'s value by a partner when it is done
  };
  Done done[kMaxPartners];
};

void write_stderr(const char* msg) noexcept {
  std::size_t left = std::strlen(msg);
  while (left > 0) {
    const ssize_t w = ::write(STDERR_FILENO, msg, left);
    if (w <= 0) return;
    msg += w;
    left -= static_cast<std::size_t>(w);
  }
}

class TeamRunner final : public Runner {
 public:
  explicit TeamRunner(TeamSpec spec)
      : spec_(std::move(spec)), control_(make_shared_object<Control>()) {
    if (spec_.partners < 1 || spec_.partners > kMaxPartners) {
      throw std::invalid_argument("team_runner: 1 to kMaxPartners partners");
    }
    const std::vector<int> cpus = team_cpus(g_pin_override.value_or(spec_.pin), spec_.partners);
    self_cpu_ = cpus[0];
    const pid_t parent = ::getpid();
    std::fflush(nullptr);  // nothing buffered may be written twice
    for (unsigned i = 0; i < spec_.partners; ++i) {
      const pid_t pid = ::fork();
      if (pid < 0) {
        const int err = errno;
        stop_partners();
        throw std::system_error(err, std::generic_category(), "fork");
      }
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(1);
        // Unpinned partners get every CPU back (this process may be pinned by another runner).
        if (cpus[i + 1] >= 0) {
          pin_to(cpus[i + 1]);
        } else {
          restore_affinity();
        }
        partner_loop(i);
      }
      pids_.push_back(pid);
    }
  }

  TeamRunner(const TeamRunner&) = delete;
  TeamRunner& operator=(const TeamRunner&) = delete;

  ~TeamRunner() override { stop_partners(); }

  double run(std::uint64_t iters) override {
    if (self_cpu_ >= 0) {
      pin_to(self_cpu_);
    } else {
      restore_affinity();
    }
    if (spec_.before) spec_.before();
    control_->iters.store(iters, std::memory_order_relaxed);
    const double t0 = now_seconds();
    const std::uint32_t seq = control_->go.fetch_add(1, std::memory_order_release) + 1;
    wake_word(control_->go);
    spec_.self(iters);
    for (std::size_t i = 0; i < pids_.size(); ++i) {
      std::atomic<std::uint32_t>& done = control_->done[i].seq;
      for (;;) {
        const std::uint32_t d = done.load(std::memory_order_acquire);
        if (d == seq) break;
        wait_word(done, d, 200000000L);
        if (done.load(std::memory_order_acquire) != seq) {
          int status = 0;
          if (pids_[i] > 0 && ::waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
            pids_[i] = -1;
            throw std::runtime_error("a partner process exited during a repetition");
          }
        }
      }
    }
    return now_seconds() - t0;
  }

 private:
  [[noreturn]] void partner_loop(unsigned index) noexcept {
    std::uint32_t seen = 0;
    for (;;) {
      std::uint32_t g;
      while ((g = control_->go.load(std::memory_order_acquire)) == seen) {
        wait_word(control_->go, seen, 0);
      }
      seen = g;
      if (control_->stop.load(std::memory_order_relaxed) != 0) ::_exit(0);
      try {
        spec_.partner(index, control_->iters.load(std::memory_order_relaxed));
      } catch (const std::exception& e) {
        write_stderr("bench: partner process failed: ");
        write_stderr(e.what());
        write_stderr("\n");
        ::_exit(2);
      } catch (...) {
        write_stderr("bench: partner process failed\n");
        ::_exit(2);
      }
      control_->done[index].seq.store(seen, std::memory_order_release);
      wake_word(control_->done[index].seq);
    }
  }

  // Tells every partner to leave; one stuck in a broken protocol gets a second, then SIGKILL.
  void stop_partners() noexcept {
    control_->stop.store(1, std::memory_order_relaxed);
    control_->go.fetch_add(1, std::memory_order_release);
    wake_word(control_->go);
    for (int i = 0; i < 100; ++i) {
      bool left = false;
      for (pid_t& pid : pids_) {
        if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) != 0) pid = -1;
        left = left || pid > 0;
      }
      if (!left) return;
      ::usleep(10000);
    }
    for (pid_t& pid : pids_) {
      if (pid <= 0) continue;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }

  TeamSpec spec_;
  std::shared_ptr<Control> control_;
  std::vector<pid_t> pids_;
  int self_cpu_ = -1;
};

}  // namespace

void set_pin_override(std::optional<Pin> pin) noexcept { g_pin_override = pin; }

void restore_affinity() noexcept {
  const InitialAffinity& init = initial_affinity();
  if (init.ok) ::sched_setaffinity(0, sizeof init.set, &init.set);
}

std::unique_ptr<Runner> pair_runner(PairSpec spec) {
  auto partner = std::move(spec.partner);
  return team_runner({
      .pin = spec.pin,
      .partners = 1,
      .before = std::move(spec.before),
      .self = std::move(spec.self),
      .partner = [partner = std::move(partner)](unsigned, std::uint64_t n) { partner(n); },
  });
}

std::unique_ptr<Runner> team_runner(TeamSpec spec) {
  return std::make_unique<TeamRunner>(std::move(spec));
}

}  // namespace mproc_bench
