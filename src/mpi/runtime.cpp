// The MPI job as mproc::mpi sees it: mproc::init's MPI part, the ranks' serve loop, and the end of
// the job (see mproc/mpi.hpp).
#include "mpi/runtime.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mproc/errors.hpp>
#include <mproc/mpi.hpp>
#include <thread>
#include <vector>

#include "mpi/node.hpp"
#include "mpi/wire.hpp"
#include "start/start.hpp"

namespace mproc::mpi::detail {

Runtime& runtime() noexcept {
  static Runtime* rt = new Runtime();  // never destroyed: the atexit handler uses it
  return *rt;
}

std::string local_host() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

namespace {

bool started_by_launcher() noexcept {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

// Sends the outcomes the node has gathered to rank 0.
void send_outcomes(Node& node, std::vector<Outcome>& outs, bool& did) {
  node.take(outs);
  if (outs.empty()) return;
  runtime().link->send(0, kUp, frame(kOutcomes, outs));
  outs.clear();
  did = true;
}

// A rank other than 0: serves rank 0's pools, one at a time, until rank 0 says Exit.
void serve() {
  Runtime& rt = runtime();
  Link& link = *rt.link;
  std::unique_ptr<Node> node;
  std::vector<Outcome> outs;
  std::vector<std::byte> buf;
  std::int64_t idle_since = mproc::detail::monotonic_ns();
  for (;;) {
    bool did = false;
    int from = 0;
    std::size_t off = 0;
    while (link.try_receive(0, kDown, from, buf, off)) {
      did = true;
      Reader r(buf.data() + off, buf.size() - off);
      const auto kind = r.read_value<std::uint8_t>();
      switch (kind) {
        case kStart: {
          const auto start = mproc::decode<StartMsg>(r);
          StartedMsg ans;
          ans.host = rt.host;
          if (node) {
            ans.error = "a pool is open on this rank already";
          } else {
            try {
              const int n = start.processes > 0 ? start.processes : default_workers(rt.node_ranks);
              node = std::make_unique<Node>(start, n, true, nullptr);
              ans.workers = n;
            } catch (const std::exception& e) {
              ans.error = e.what();
            }
          }
          link.send(0, kUp, frame(kStarted, ans));
          break;
        }
        case kTasks: {
          auto tasks = mproc::decode<std::vector<WireTask>>(r);
          if (node) node->submit(tasks);
          break;
        }
        case kQuery: {
          const auto q = mproc::decode<QueryMsg>(r);
          ReplyMsg rep{q.req, node ? node->query(q) : false};
          if (node) send_outcomes(*node, outs, did);  // what the query settled goes first
          link.send(0, kUp, frame(kReply, rep));
          break;
        }
        case kStop: {
          const bool kill = mproc::decode<bool>(r);
          if (node) {
            node->stop(kill);
            send_outcomes(*node, outs, did);
            node.reset();
          }
          link.send(0, kUp, frame(kStopped));
          break;
        }
        case kExit:
          link.flush();
          return;
        default:
          break;
      }
    }
    if (node) send_outcomes(*node, outs, did);
    const bool sending = link.progress();
    const std::int64_t t = mproc::detail::monotonic_ns();
    if (did) {
      idle_since = t;
      continue;
    }
    if (t - idle_since < kSpinNs || sending) {
      std::this_thread::yield();
      continue;
    }
    const std::int64_t sleep = idle_sleep_ns(t - idle_since);
    if (node) {
      node->wait(sleep);
    } else {
      timespec ts{0, static_cast<long>(sleep)};
      nanosleep(&ts, nullptr);
    }
  }
}

std::atomic<bool> g_ending{false};  // rank 0's program is ending: ranks leave on purpose

// "; N task(s) of the pool unfinished" while a pool is open (async-signal-safe).
std::size_t put_unfinished(char* line, std::size_t n, std::size_t cap) {
  if (!runtime().pool_open.load(std::memory_order_relaxed)) return n;
  auto put = [&](const char* s) {
    while (*s != '\0' && n < cap) line[n++] = *s++;
  };
  char digits[24];
  int k = 0;
  std::uint64_t v = runtime().unfinished.load(std::memory_order_relaxed);
  do {
    digits[k++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && k < 23);
  put("; ");
  while (k > 0 && n < cap) line[n++] = digits[--k];
  put(" task(s) of the pool unfinished");
  return n;
}

// Rank 0 watches the other ranks on its own host through pidfds, and says at once which one died:
// Open MPI (without ULFM) then ends the job, and its SIGKILL can follow its SIGTERM within a
// millisecond, too soon for a report written only then. Ranks on other hosts are reported by the
// SIGTERM handler (on_end_signal). Collective: every rank takes part (init, before serving).
void watch_local_ranks(Runtime& rt) {
  int pid = static_cast<int>(getpid());
  std::vector<int> pids(static_cast<std::size_t>(rt.size));
  MPI_Gather(&pid, 1, MPI_INT, pids.data(), 1, MPI_INT, 0, rt.comm);
  constexpr int kName = 256;
  char name[kName] = {};
  std::snprintf(name, kName, "%s", rt.host.c_str());
  std::vector<char> names(static_cast<std::size_t>(rt.size) * kName);
  MPI_Gather(name, kName, MPI_CHAR, names.data(), kName, MPI_CHAR, 0, rt.comm);
  if (rt.rank != 0) return;
  struct Watched {
    int rank;
    int pid;
  };
  std::vector<Watched> who;
  std::vector<pollfd> fds;
  for (int r = 1; r < rt.size; ++r) {
    const char* host = names.data() + static_cast<std::size_t>(r) * kName;
    if (rt.host != std::string(host, strnlen(host, kName))) continue;
    const long fd = syscall(SYS_pidfd_open, pids[static_cast<std::size_t>(r)], 0);
    if (fd < 0) continue;
    who.push_back({r, pids[static_cast<std::size_t>(r)]});
    fds.push_back(pollfd{static_cast<int>(fd), POLLIN, 0});
  }
  if (fds.empty()) return;
  try {
    std::thread([who = std::move(who), fds = std::move(fds)]() mutable {
      for (;;) {
        if (poll(fds.data(), fds.size(), -1) < 0) {
          if (errno == EINTR) continue;
          return;
        }
        for (std::size_t i = 0; i < fds.size(); ++i) {
          if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
          if (g_ending.load()) return;
          char line[320];
          const int n0 = std::snprintf(
              line, sizeof line,
              "mproc::mpi: rank %d (pid %d, this host) died; Open MPI ends the whole job "
              "(no ULFM)",
              who[i].rank, who[i].pid);
          std::size_t n = n0 > 0 ? static_cast<std::size_t>(n0) : 0;
          n = put_unfinished(line, std::min(n, sizeof line - 2), sizeof line - 2);
          line[n++] = '\n';
          (void)!write(STDERR_FILENO, line, n);
          return;  // one report; the launcher ends the job
        }
      }
    }).detach();
  } catch (...) {
    for (const pollfd& p : fds) close(p.fd);
  }
}

// Rank 0's exit: the other ranks leave their serve loop, then every rank finalizes MPI.
void finish_rank0() {
  Runtime& rt = runtime();
  if (!rt.launched) return;
  g_ending.store(true);
  if (rt.pool_open.load()) {
    std::fprintf(stderr,
                 "mproc::mpi: the program ends while an mpi::Pool is open; ending the MPI job\n");
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (int r = 1; r < rt.size; ++r) rt.link->send(r, kDown, frame(kExit));
  rt.link->flush();
  delete rt.link;
  rt.link = nullptr;
  MPI_Comm_free(&rt.comm);
  MPI_Finalize();
}

// Rank 0, when the launcher ends the job (SIGTERM: a rank died, or mpirun was interrupted): say so,
// then die of the signal as before. Only async-signal-safe calls.
pid_t g_rank0_pid = 0;  // the process that installed the handler: its forks (workers) inherit it

void on_end_signal(int sig) {
  if (getpid() != g_rank0_pid) {  // a fork of rank 0 (its pool's zygote, a worker): no report
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  char line[320];
  std::size_t n = 0;
  auto put = [&](const char* s) {
    while (*s != '\0' && n < sizeof line - 1) line[n++] = *s++;
  };
  put("mproc::mpi: the MPI job is being ended by its launcher (a rank died, or mpirun was "
      "interrupted)");
  n = put_unfinished(line, n, sizeof line - 1);
  put("\n");
  (void)!write(STDERR_FILENO, line, n);
  signal(sig, SIG_DFL);
  raise(sig);
}

// A rank other than 0, when the launcher ends the job: it dies of the signal a little later (300
// ms), because mpirun sends SIGKILL as soon as a rank has died of its SIGTERM, and rank 0 needs
// that time to write its report (a rank on another host has no pidfd watch).
pid_t g_rank_pid = 0;  // the rank itself: its forks (workers, processes of tasks) die at once

void on_rank_end_signal(int sig) {
  if (getpid() == g_rank_pid) {
    timespec ts{0, 300'000'000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void delay_end_signal() {
  struct sigaction old {};
  if (sigaction(SIGTERM, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) return;
  g_rank_pid = getpid();
  struct sigaction sa {};
  sa.sa_handler = &on_rank_end_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}

void watch_end_signal() {
  struct sigaction old {};
  if (sigaction(SIGTERM, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) return;
  g_rank0_pid = getpid();
  struct sigaction sa {};
  sa.sa_handler = &on_end_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}

void init_hook(int argc, char** argv) {
  Runtime& rt = runtime();
  rt.host = local_host();
  if (!started_by_launcher() || rt.launched) return;
  int provided = 0;
  int ac = argc;
  char** av = argv;
  if (MPI_Init_thread(&ac, &av, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
    throw ProcessError("mproc::init: MPI_Init_thread failed");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw ProcessError(
        "mproc::init: this MPI library gives MPI_THREAD_FUNNELED at most; mproc::mpi needs "
        "MPI_THREAD_SERIALIZED (its pools talk from a thread of their own)");
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &rt.comm);
  MPI_Comm_rank(rt.comm, &rt.rank);
  MPI_Comm_size(rt.comm, &rt.size);
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &rt.node_ranks);
  MPI_Comm_free(&node);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS && len > 0) rt.host.assign(name, len);
  rt.link = new Link(rt.comm, 0);
  rt.launched = true;
  watch_local_ranks(rt);
  if (rt.rank != 0) {
    delay_end_signal();
    try {
      serve();
    } catch (const std::exception& e) {
      // A message from rank 0 that does not decode, or a failure of this rank's own: the job
      // cannot go on without this rank.
      std::fprintf(stderr, "mproc::mpi: rank %d (host %s) cannot serve on: %s\n", rt.rank,
                   rt.host.c_str(), e.what());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 70);
    }
    delete rt.link;
    rt.link = nullptr;
    MPI_Comm_free(&rt.comm);
    MPI_Finalize();
    std::exit(0);
  }
  std::atexit(&finish_rank0);
  watch_end_signal();
}

}  // namespace
}  // namespace mproc::mpi::detail

namespace mproc::mpi {

bool launched() noexcept { return detail::runtime().launched; }
int rank() noexcept { return detail::runtime().rank; }
int size() noexcept { return detail::runtime().size; }
std::string host() {
  detail::Runtime& rt = detail::runtime();
  return rt.host.empty() ? detail::local_host() : rt.host;
}

bool detail::install_init_hook() noexcept {
  mproc::detail::set_init_hook(&detail::init_hook);
  return true;
}

}  // namespace mproc::mpi
