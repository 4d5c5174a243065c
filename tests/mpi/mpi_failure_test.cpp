// How an MPI job of mproc::mpi fails (mproc/mpi.hpp, "Failures"): this test runs mpirun on
// mpi_fail_app (tests/mpi/mpi_fail_app.cpp) in each way a job fails and checks what rank 0 reports,
// how mpirun ends, and that no process of the job is left afterwards.
//
// - A rank SIGKILLed while every rank runs tasks: Open MPI 4.1 (no ULFM) ends the whole job, so
//   rank 0 prints "mproc::mpi: the MPI job is being ended by its launcher ..." with the tasks
//   left; mpirun exits non-zero; every rank and every local pool's zygote and workers go.
// - Rank 0 itself SIGKILLed: no report can come, but the job ends the same way.
// - SIGINT to mpirun (Ctrl-C) while a long map runs: the same end.
// - Ranks that run different binaries (an MPMD job): mpi::Pool's constructor throws ProcessError
//   naming the rank, its host and the image.
// - A Process that rank 0 forks and terminates: the job goes on (no end-of-job report).
// Once with the shared-memory transport (--mca btl self,vader) and once forcing the network path
// (--mca btl self,tcp) where the transport could matter (a rank's death, an interrupt).
//
// How mpirun (Open MPI 4.1.4, orte/mca/odls/base/odls_base_default_fns.c) ends a job: SIGCONT to
// each live rank's process group, sleep(odls_base_sigkill_timeout), SIGTERM to each group,
// sleep(odls_base_sigkill_timeout), SIGKILL to each group; it sleeps in a loop `ret =
// sleep(ret)`, and glibc's sleep() returns the whole seconds left when a signal interrupts it.
// With the default timeout of 1 s, the SIGCHLD of the first rank that dies of the SIGTERM (a
// rank other than 0 dies at once) makes sleep(1) return 0, and mpirun SIGKILLs every group about
// a millisecond after the SIGTERM (seen with perf's signal tracepoints). Rank 0 prints its report
// only if it runs its SIGTERM handler within that millisecond: on a loaded machine it often did
// not (in 5 of 20 runs with three CPU hogs on this 2-core machine no report came). mproc::mpi
// therefore (runtime.cpp) makes the ranks other than 0 die of SIGTERM 300 ms late, so their
// SIGCHLD cannot cut mpirun's grace short before rank 0 has written its report, and rank 0 watches
// the ranks of its own host through pidfds and reports a dead one at once. Most report tests run
// mpirun with odls_base_sigkill_timeout=3 as well; KilledRankReportComesWithDefaultSigkillTimeout
// checks five jobs in a row under mpirun's defaults.
//
// Every process of a job has the job's token in its command line (mpirun, the ranks, and their
// pools' zygotes and workers, which are forks of the ranks), so the test finds them in /proc. Every
// wait is bounded: past its bound the job is SIGKILLed (mpirun and every process with the token)
// and the test fails; a backstop watchdog does the same for the whole test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Bounds (hang detection only: a job normally ends within a few seconds).
constexpr auto kStartLimit = 60s;     // mpirun started, rank 0 reached a given line
constexpr auto kEndLimit = 60s;       // the job ended after the failure
constexpr auto kLeftoverLimit = 15s;  // the job's processes gone after mpirun exited
constexpr auto kTestLimit = 170s;     // the backstop for a whole test (ctest's limit: 180 s)

constexpr const char* kReport = "mproc::mpi: the MPI job is being ended by its launcher";

// A grace of seconds, not a millisecond, between mpirun's SIGTERM and its SIGKILL (see the header
// comment).
constexpr const char* kGrace = "OMPI_MCA_odls_base_sigkill_timeout=3";

// A process whose command line has a job's token.
struct JobProcess {
  int pid = 0;
  int ppid = 0;
  char state = 0;
  std::string cmdline;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every process but this one whose command line has `token` (zombies have none: not listed).
std::vector<JobProcess> job_processes(const std::string& token) {
  std::vector<JobProcess> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const int pid = std::atoi(name.c_str());
    if (pid == getpid()) continue;
    std::string cmd = read_file("/proc/" + name + "/cmdline");
    if (cmd.find(token) == std::string::npos) continue;
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    JobProcess p;
    p.pid = pid;
    p.cmdline = cmd;
    const std::string stat = read_file("/proc/" + name + "/stat");
    if (const auto close = stat.rfind(')'); close != std::string::npos) {
      std::istringstream rest(stat.substr(close + 2));
      rest >> p.state >> p.ppid;
    }
    out.push_back(std::move(p));
  }
  return out;
}

// SIGKILLs every process with `token` (a few rounds: a zygote may fork while it is killed).
void kill_job_processes(const std::string& token) {
  for (int round = 0; round < 5; ++round) {
    const auto ps = job_processes(token);
    if (ps.empty()) return;
    for (const auto& p : ps) ::kill(p.pid, SIGKILL);
    std::this_thread::sleep_for(20ms);
  }
}

// Waits up to `limit` for every process with `token` to be gone. Returns "" when none is left,
// else a description of those left (which are then SIGKILLed, so the test leaves nothing behind).
std::string wait_no_process_left(const std::string& token, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  std::vector<JobProcess> left;
  for (;;) {
    left = job_processes(token);
    if (left.empty()) return "";
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(50ms);
  }
  std::string d;
  for (const auto& p : left)
    d += "  pid " + std::to_string(p.pid) + " ppid " + std::to_string(p.ppid) + " state " +
         std::string(1, p.state) + ": " + p.cmdline + "\n";
  kill_job_processes(token);
  return d;
}

// A word unique to one job of this test binary.
std::string unique_token() {
  static std::atomic<int> n{0};
  return "mpifailtok" + std::to_string(getpid()) + "x" + std::to_string(n.fetch_add(1)) + "x" +
         std::to_string(Clock::now().time_since_epoch().count() % 1000000007);
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// True when `text` names the file `path` (not merely a longer name that begins with it).
bool names_path(const std::string& text, const std::string& path) {
  for (auto at = text.find(path); at != std::string::npos; at = text.find(path, at + 1)) {
    const auto end = at + path.size();
    if (end == text.size()) return true;
    const char c = text[end];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
      return true;
  }
  return false;
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

// One mpirun, its stdout and stderr in one pipe. The destructor SIGKILLs what is left of the job
// (mpirun and every process with the token) and reaps mpirun.
class MpiJob {
 public:
  // `args`: mpirun's arguments (the token must be among them, as an argument of the program).
  // `env`: more NAME=value settings for mpirun (and so for the ranks).
  MpiJob(const std::vector<std::string>& args, std::string token,
         const std::vector<std::string>& env = {})
      : token_(std::move(token)) {
    std::vector<std::string> argv_s{MPROC_MPIEXEC};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s;
    std::vector<std::string> ours{"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                                  "OMPI_MCA_mpi_yield_when_idle=1",
                                  "OMPI_MCA_odls_base_sigkill_timeout="};  // unset unless in env
    ours.insert(ours.end(), env.begin(), env.end());
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string v = *e;
      bool replaced = false;
      for (const auto& o : ours)
        if (v.compare(0, o.find('=') + 1, o, 0, o.find('=') + 1) == 0) replaced = true;
      if (!replaced) env_s.push_back(v);
    }
    for (const auto& o : ours)
      if (o.back() != '=') env_s.push_back(o);
    std::vector<char*> argv, envp;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);
    for (const auto& e : env) command_ += e + " ";
    for (const auto& a : argv_s) command_ += a + " ";

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    std::fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // the test binary dies: mpirun ends the job
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
    if (pid_ < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return;
    }
    pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd_ < 0) ADD_FAILURE() << "pidfd_open: " << std::strerror(errno);
  }
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;
  ~MpiJob() {
    if (pid_ > 0 && !reaped_) {
      kill_all();
      (void)wait_exit(30s);
    }
    kill_job_processes(token_);
    if (pidfd_ >= 0) close(pidfd_);
    if (out_ >= 0) close(out_);
  }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] const std::string& output() const noexcept { return output_; }
  [[nodiscard]] const std::string& command() const noexcept { return command_; }

  // Waits up to `limit` for `text` in the output; false if it did not come (or mpirun ended).
  bool wait_for_output(const std::string& text, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (output_.find(text) == std::string::npos) {
      if (eof_ || Clock::now() >= deadline) return false;
      pump(deadline);
    }
    return true;
  }

  // Waits up to `limit` for mpirun to exit and reaps it; its wait status, or nullopt past the
  // limit (mpirun is then still running: the destructor kills the job). The output is read to
  // its end (or for a bounded time after the exit, if a process of the job still holds the pipe).
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    if (reaped_) return status_;
    if (pid_ <= 0) return std::nullopt;
    const auto deadline = Clock::now() + limit;
    for (;;) {
      pollfd p{pidfd_, POLLIN, 0};
      if (poll(&p, 1, 0) == 1) break;
      if (Clock::now() >= deadline) return std::nullopt;
      pump(deadline, 50ms);
    }
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    status_ = status;
    const auto drain = Clock::now() + 5s;
    while (!eof_ && Clock::now() < drain) pump(drain);
    return status_;
  }

  void signal(int sig) {
    if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
  }

  // SIGKILL to mpirun and to every process of the job.
  void kill_all() {
    signal(SIGKILL);
    kill_job_processes(token_);
  }

 private:
  // Reads what the pipe has, waiting up to `step` (and not past `deadline`) for something.
  void pump(Clock::time_point deadline, std::chrono::milliseconds step = 200ms) {
    if (out_ < 0 || eof_) {
      std::this_thread::sleep_for(std::min<Clock::duration>(step, deadline - Clock::now()));
      return;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const int ms = static_cast<int>(std::max<std::int64_t>(0, std::min(left, step).count()));
    pollfd p{out_, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return;
    char buf[4096];
    const ssize_t n = read(out_, buf, sizeof buf);
    if (n > 0)
      output_.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
      eof_ = true;
  }

  std::string token_;
  std::string command_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_ = -1;
  bool eof_ = false;
  bool reaped_ = false;
  int status_ = 0;
  std::string output_;
};

// The backstop: past `limit`, SIGKILLs every process with the token, then ends the test binary
// with a message (a hang becomes a failure, and leaves no job behind).
class JobWatchdog {
 public:
  JobWatchdog(std::string token, std::chrono::seconds limit)
      : token_(std::move(token)), thread_([this, limit] {
          std::unique_lock<std::mutex> lk(mu_);
          if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
            std::fprintf(stderr, "watchdog: the test ran over %lld s (hung?): killing the job\n",
                         static_cast<long long>(limit.count()));
            kill_job_processes(token_);
            std::fflush(stderr);
            std::_Exit(2);
          }
        }) {}
  JobWatchdog(const JobWatchdog&) = delete;
  JobWatchdog& operator=(const JobWatchdog&) = delete;
  ~JobWatchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::string token_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// mpirun's arguments for a job of `ranks` ranks of mpi_fail_app, all running `scenario`.
std::vector<std::string> spmd_args(const char* btl, int ranks, const std::string& scenario,
                                   const std::string& token) {
  return {"--oversubscribe",          "--mca",  "btl",
          std::string("self,") + btl, "-np",    std::to_string(ranks),
          MPROC_MPI_FAIL_APP,         scenario, token};
}

// The workers of every rank, from rank 0's "pool ready, workers per rank: 1 1 1" line (0 if
// the line is not there).
int workers_in_all(const std::string& output) {
  const std::string head = "workers per rank:";
  const auto at = output.find(head);
  if (at == std::string::npos) return 0;
  std::istringstream in(output.substr(at + head.size(), output.find('\n', at) - at - head.size()));
  int sum = 0;
  for (int n; in >> n;) sum += n;
  return sum;
}

// rank-dies: rank 2 SIGKILLed while every rank runs tasks; mpirun gets `env`. Returns the job's
// output.
std::string run_rank_dies(const char* btl, const std::vector<std::string>& env) {
  const std::string token = unique_token();
  JobWatchdog watchdog(token, std::chrono::duration_cast<std::chrono::seconds>(kTestLimit));
  std::string output;
  {
    MpiJob job(spmd_args(btl, 3, "rank-dies", token), token, env);
    SCOPED_TRACE(job.command());
    EXPECT_TRUE(job.wait_for_output("tasks sent", kStartLimit)) << job.output();
    const auto status = job.wait_exit(kEndLimit);
    output = job.output();
    if (!status) {
      ADD_FAILURE() << "mpirun still runs " << kEndLimit.count()
                    << " s after rank 2 was killed; its output:\n"
                    << output;
      return output;
    }
    // mpirun ends with the status of the rank that failed (a nonzero exit status).
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << describe_status(*status) << "\n"
                                                                 << output;
  }
  // Rank 2 died of SIGKILL (mpirun's own message, Open MPI 4.1), not of something else.
  EXPECT_NE(output.find("process rank 2"), std::string::npos) << output;
  EXPECT_NE(output.find("signal 9"), std::string::npos) << output;
  // Rank 0 said why it ends, with the tasks of its pool still out: every task (4 per worker, each
  // sleeping far longer than the test) was unfinished.
  const int workers = workers_in_all(output);
  EXPECT_GE(workers, 3) << output;  // at least one per rank
  EXPECT_NE(output.find(std::string(kReport) + " (a rank died, or mpirun was interrupted); " +
                        std::to_string(4 * workers) + " task(s) of the pool unfinished"),
            std::string::npos)
      << output;
  EXPECT_EQ(output.find("results came"), std::string::npos) << output;
  const std::string left = wait_no_process_left(token, kLeftoverLimit);
  EXPECT_EQ(left, "") << "processes of the job left after mpirun exited:\n" << left;
  return output;
}

// interrupt: SIGINT to mpirun while a long map runs over every rank.
std::string run_interrupt(const char* btl) {
  const std::string token = unique_token();
  JobWatchdog watchdog(token, std::chrono::duration_cast<std::chrono::seconds>(kTestLimit));
  std::string output;
  {
    MpiJob job(spmd_args(btl, 3, "interrupt", token), token, {kGrace});
    SCOPED_TRACE(job.command());
    if (!job.wait_for_output("running", kStartLimit)) {
      ADD_FAILURE() << "the map did not get under way; output:\n" << job.output();
      return job.output();
    }
    // Every rank and its pool are up (rank 0 saw results from 3 tasks per worker): ranks,
    // zygotes and workers all carry the token.
    EXPECT_GE(job_processes(token).size(), 1u + 3u * 3u);
    job.signal(SIGINT);
    const auto status = job.wait_exit(kEndLimit);
    output = job.output();
    if (!status) {
      ADD_FAILURE() << "mpirun still runs " << kEndLimit.count() << " s after SIGINT; its output:\n"
                    << output;
      return output;
    }
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << describe_status(*status) << "\n"
                                                                 << output;
  }
  EXPECT_NE(output.find(std::string(kReport) + " (a rank died, or mpirun was interrupted)"),
            std::string::npos)
      << output;
  EXPECT_EQ(output.find("the map ended"), std::string::npos) << output;
  const std::string left = wait_no_process_left(token, kLeftoverLimit);
  EXPECT_EQ(left, "") << "processes of the job left after mpirun exited:\n" << left;
  return output;
}

TEST(MpiFailure, KilledRankEndsJobWithReportOverSharedMemory) {
  (void)run_rank_dies("vader", {kGrace});
}

TEST(MpiFailure, KilledRankEndsJobWithReportOverTcp) { (void)run_rank_dies("tcp", {kGrace}); }

TEST(MpiFailure, InterruptedMpirunEndsEveryRankOverSharedMemory) { (void)run_interrupt("vader"); }

TEST(MpiFailure, InterruptedMpirunEndsEveryRankOverTcp) { (void)run_interrupt("tcp"); }

// rank 0 itself SIGKILLed while every rank runs tasks: no report can come (rank 0 is the one that
// died), but the job ends and leaves nothing: the other ranks, rank 0's pool's zygote and workers
// (orphaned: they go through the zygote's watch of rank 0 and PR_SET_PDEATHSIG), every other pool.
TEST(MpiFailure, KilledRankZeroEndsEveryRank) {
  const std::string token = unique_token();
  JobWatchdog watchdog(token, std::chrono::duration_cast<std::chrono::seconds>(kTestLimit));
  std::string output;
  {
    MpiJob job(spmd_args("vader", 3, "root-dies", token), token);
    SCOPED_TRACE(job.command());
    EXPECT_TRUE(job.wait_for_output("tasks sent", kStartLimit)) << job.output();
    const auto status = job.wait_exit(kEndLimit);
    output = job.output();
    ASSERT_TRUE(status.has_value())
        << "mpirun still runs " << kEndLimit.count() << " s after rank 0 was killed; its output:\n"
        << output;
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << describe_status(*status) << "\n"
                                                                 << output;
  }
  EXPECT_NE(output.find("process rank 0"), std::string::npos) << output;
  EXPECT_NE(output.find("signal 9"), std::string::npos) << output;
  const std::string left = wait_no_process_left(token, kLeftoverLimit);
  EXPECT_EQ(left, "") << "processes of the job left after mpirun exited:\n" << left;
}

// Five jobs in a row under mpirun's defaults, each must carry rank 0's report (see the header
// comment: without the ranks' late death, about a millisecond between SIGTERM and SIGKILL once
// another rank has died of the SIGTERM; it failed mostly on a loaded machine).
TEST(MpiFailure, KilledRankReportComesWithDefaultSigkillTimeout) {
  for (int i = 0; i < 5 && !::testing::Test::HasFailure(); ++i) {
    SCOPED_TRACE("job " + std::to_string(i));
    (void)run_rank_dies("vader", {});
  }
}

// The report comes from rank 0 alone: the processes forked from rank 0 (its pool's zygote and
// workers, a Process started with the fork method) inherit its SIGTERM handler, and mpirun's
// SIGTERM goes to rank 0's whole process group; the handler reports only in rank 0 itself.
TEST(MpiFailure, EndReportIsPrintedOnceByRankZero) {
  const std::string output = run_rank_dies("vader", {kGrace});
  EXPECT_EQ(count_of(output, kReport), 1u) << output;
}

// A Process that rank 0 forks and terminates (SIGTERM) prints no report: the job goes on and ends
// normally.
TEST(MpiFailure, TerminatedForkOfRankZeroPrintsNoEndReport) {
  const std::string token = unique_token();
  JobWatchdog watchdog(token, std::chrono::duration_cast<std::chrono::seconds>(kTestLimit));
  std::string output;
  {
    MpiJob job(spmd_args("vader", 2, "fork-terminate", token), token);
    SCOPED_TRACE(job.command());
    const auto status = job.wait_exit(kStartLimit + kEndLimit);
    output = job.output();
    ASSERT_TRUE(status.has_value()) << "mpirun did not end; output:\n" << output;
    EXPECT_EQ(describe_status(*status), "exit status 0") << output;
  }
  EXPECT_NE(output.find("the child ended with exitcode -15"), std::string::npos) << output;
  EXPECT_EQ(output.find(kReport), std::string::npos) << output;
  const std::string left = wait_no_process_left(token, kLeftoverLimit);
  EXPECT_EQ(left, "") << "processes of the job left after mpirun exited:\n" << left;
}

// mismatch: rank 0 runs mpi_fail_app, rank 1 mpi_fail_app_other. Returns the ProcessError's line
// ("ProcessError: " and its what()), or "" (a failure is then recorded).
std::string run_mismatch() {
  const std::string token = unique_token();
  JobWatchdog watchdog(token, std::chrono::duration_cast<std::chrono::seconds>(kTestLimit));
  std::string output;
  {
    MpiJob job({"--oversubscribe", "--mca", "btl", "self,vader", "-np", "1", MPROC_MPI_FAIL_APP,
                "mismatch", token, ":", "-np", "1", MPROC_MPI_OTHER_APP, "mismatch", token},
               token);
    SCOPED_TRACE(job.command());
    const auto status = job.wait_exit(kStartLimit + kEndLimit);
    output = job.output();
    if (!status) {
      ADD_FAILURE() << "mpirun did not end; output:\n" << output;
      return "";
    }
    // Rank 0 caught the ProcessError and ended normally, and so did rank 1.
    EXPECT_EQ(describe_status(*status), "exit status 0") << output;
  }
  EXPECT_NE(output.find("variant 1, rank 0 of 2"), std::string::npos) << output;
  EXPECT_EQ(output.find("the pool started"), std::string::npos) << output;
  const std::string left = wait_no_process_left(token, kLeftoverLimit);
  EXPECT_EQ(left, "") << "processes of the job left after mpirun exited:\n" << left;
  const auto at = output.find("ProcessError: ");
  if (at == std::string::npos) {
    ADD_FAILURE() << "no ProcessError; output:\n" << output;
    return "";
  }
  return output.substr(at, output.find('\n', at) - at);
}

TEST(MpiFailure, PoolThrowsWhenARankRunsAnotherBinary) {
  const std::string what = run_mismatch();
  EXPECT_NE(what.find("rank 1 (host " + host_name() + ")"), std::string::npos) << what;
  EXPECT_TRUE(names_path(what, MPROC_MPI_FAIL_APP)) << what;  // the image that differs
  EXPECT_NE(what.find("build-id"), std::string::npos) << what;
}

// The message says what happened: it names the binary rank 1 runs beside rank 0's, and does not
// suggest (as resolving rank 0's image alone would) that a file was moved or deleted.
TEST(MpiFailure, MismatchNamesTheBinaryTheRankRuns) {
  const std::string what = run_mismatch();
  EXPECT_TRUE(names_path(what, MPROC_MPI_OTHER_APP)) << what;
  EXPECT_EQ(what.find("moved or deleted"), std::string::npos) << what;
}

}  // namespace
