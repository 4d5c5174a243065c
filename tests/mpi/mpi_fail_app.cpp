// The program that tests/mpi/mpi_failure_test.cpp runs under mpirun, in the ways an MPI job fails.
//
//   mpirun -np 3 mpi_fail_app rank-dies TOKEN [MS] rank 2 is SIGKILLed (MS ms after its first task
//                                                  starts) while every rank has tasks
//   mpirun -np 3 mpi_fail_app root-dies TOKEN      rank 0 is SIGKILLed while every rank has tasks
//   mpirun -np 3 mpi_fail_app interrupt TOKEN      a long map; the test sends SIGINT to mpirun
//   mpirun -np 2 mpi_fail_app fork-terminate TOKEN rank 0 terminates a Process it forked
//   mpirun -np 1 mpi_fail_app mismatch TOKEN : -np 1 mpi_fail_app_other mismatch TOKEN
//                                                  rank 1 runs another binary: the Pool must throw
//
// Every rank runs main; mproc::init makes ranks other than 0 serve rank 0's pools, so only rank 0
// runs the scenario. TOKEN is any word unique to one run of the test: it is in the command line of
// every process of the job (the ranks, and their pools' zygotes and workers, which are forks of
// the ranks), so the test finds them all in /proc. Rank 0 prints one line per step (flushed), for
// the test to wait for. Built twice (MPROC_FAIL_APP_VARIANT 1 and 2): the two binaries differ.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mproc/mpi.hpp>
#include <mproc/mproc.hpp>
#include <ranges>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef MPROC_FAIL_APP_VARIANT
#define MPROC_FAIL_APP_VARIANT 1
#endif
#define MPROC_FAIL_APP_STR2(x) #x
#define MPROC_FAIL_APP_STR(x) MPROC_FAIL_APP_STR2(x)

namespace {

// In the binary's data, so that the two variants are different images (different build-ids).
const char kVariant[] = "mpi_fail_app variant " MPROC_FAIL_APP_STR(MPROC_FAIL_APP_VARIANT);

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The parent of process `pid` (0 when it cannot be read).
pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(in, s)) return 0;
  const auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  char state = 0;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

std::string cmdline_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The rank process this worker was forked from: the farthest ancestor with this process's command
// line (the worker's parent is its pool's zygote, whose parent is the rank; the rank's parent is
// mpirun). 0 when there is none.
pid_t my_rank_process() {
  const std::string mine = cmdline_of(getpid());
  pid_t found = 0;
  for (pid_t p = parent_of(getpid()); p > 1; p = parent_of(p)) {
    if (cmdline_of(p) != mine) break;
    found = p;
  }
  return found;
}

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

// rank-dies: on rank 2, SIGKILLs the rank after `delay_ms` (its pool and its workers stay: they
// must go when the job ends); elsewhere, a task far longer than any test.
int kill_rank2_or_sleep(int delay_ms) {
  if (mproc::mpi::rank() == 2) {
    sleep_s(delay_ms / 1000.0);
    if (const pid_t r = my_rank_process(); r > 0) ::kill(r, SIGKILL);
  }
  sleep_s(600);
  return 0;
}

// interrupt: a short sleep, so that the map keeps going, task after task, on every rank.
int nap(int i) {
  sleep_s(0.05);
  return i;
}

int rank_dies(int delay_ms) {
  mproc::mpi::Pool pool;
  std::string line = "pool ready, workers per rank:";
  for (int n : pool.workers_per_rank()) line += " " + std::to_string(n);
  say(line);
  // Tasks for every worker of every rank (the window lets each rank hold several), one element
  // per task: rank 2's first task kills rank 2.
  const std::vector<int> delays(static_cast<std::size_t>(4 * pool.processes()), delay_ms);
  auto result = pool.map_async(kill_rank2_or_sleep, delays, 1);
  say("tasks sent");
  (void)result.get();  // never returns: the job ends while it waits
  say("results came: not expected");
  return 3;
}

// root-dies: rank 0 itself is SIGKILLed while every rank runs tasks (no report can come: it is
// the one that died); the other ranks, and every pool's zygote and workers, must go.
int root_dies() {
  mproc::mpi::Pool pool;
  say("pool ready");
  const std::vector<int> delays(static_cast<std::size_t>(4 * pool.processes()), 600'000);
  auto result = pool.map_async(kill_rank2_or_sleep, delays, 1);  // rank 2 sleeps first: 600 s
  sleep_s(1.0);                                                  // the tasks reach every rank
  say("tasks sent");
  ::kill(getpid(), SIGKILL);
  (void)result.get();
  return 3;
}

int interrupt() {
  mproc::mpi::Pool pool;
  say("pool ready");
  int seen = 0;
  // About 10^6 tasks of 50 ms: hours of work; the test interrupts it within seconds.
  for (int v : pool.imap_unordered(nap, std::views::iota(0, 1'000'000), 1)) {
    (void)v;
    if (++seen == 3 * pool.processes()) say("running");
  }
  say("the map ended: not expected");
  return 3;
}

// fork-terminate: a Process forked from rank 0, terminated (SIGTERM) as any program may: the job
// goes on, so rank 0's end-of-job report must not be printed.
int fork_terminate() {
  mproc::ProcessOptions o;
  o.start_method = mproc::StartMethod::fork;
  mproc::Process p(o, sleep_s, 600.0);
  p.start();
  p.terminate();
  p.join();
  say("the child ended with exitcode " + std::to_string(p.exitcode().value_or(999)));
  return 0;
}

int mismatch() {
  try {
    mproc::mpi::Pool pool;
    say("the pool started: not expected");
    return 3;
  } catch (const mproc::ProcessError& e) {
    say(std::string("ProcessError: ") + e.what());
    return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // ranks other than 0 serve here, and never return
  const std::string scenario = argc > 1 ? argv[1] : "";
  say(std::string(kVariant) + ", rank " + std::to_string(mproc::mpi::rank()) + " of " +
      std::to_string(mproc::mpi::size()) + ", pid " + std::to_string(getpid()) + ", scenario " +
      scenario);
  if (!mproc::mpi::launched()) {
    say("not under an MPI launcher");
    return 2;
  }
  if (scenario == "rank-dies") return rank_dies(argc > 3 ? std::atoi(argv[3]) : 0);
  if (scenario == "interrupt") return interrupt();
  if (scenario == "root-dies") return root_dies();
  if (scenario == "mismatch") return mismatch();
  if (scenario == "fork-terminate") return fork_terminate();
  say("unknown scenario: " + scenario);
  return 2;
}
