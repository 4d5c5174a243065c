// A threaded parent never deadlocks its children (mproc/start_method.hpp): while threads of this
// process allocate, write to std::cout and std::cerr and hold the program's own std::mutex most of
// the time, 1000 children are started under forkserver, 1000 under spawn and 1000 under the
// default rule (which, with threads and mproc::init, must pick forkserver), in batches started
// together and then joined; each child allocates, writes to a std::ostringstream and takes the
// same global std::mutex, and exits with a code the test checks. A fork of this parent would
// inherit a held mutex (and possibly malloc's or iostreams' locks) and hang: the watchdog turns
// that into a failure. The same with Pool workers: a Pool per method made while the threads run.
//
// Standard output and error are sent to /dev/null while the threads write (dup2 on 1 and 2,
// restored afterwards); the watchdog writes to the saved standard error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/start_method.hpp>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace mproc_test {
namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;

constexpr int kChildren = 1000;
constexpr int kBatch = 50;
constexpr int kThreads = 3;

// The program's own mutex: held by the busy threads most of the time, taken by every child.
std::mutex g_program_mu;

// The child's work: malloc, an ostringstream, the program's mutex; exits with `code`, or with
// 250 when it runs in a process forked from `not_parent` (the default rule must not fork).
int child_work(int code, int not_parent) {
  void* p = std::malloc(static_cast<std::size_t>(64 + code));
  if (p == nullptr) return 251;
  std::ostringstream os;
  os << "child " << code << " of " << not_parent;
  std::lock_guard<std::mutex> lock(g_program_mu);
  std::free(p);
  if (not_parent != 0 && ::getppid() == not_parent) return 250;
  return os.str().empty() ? 252 : code;
}

// Set in the test process before its pools exist: a worker forked from it would see 1, a fresh
// image (spawn, forkserver) sees 0.
int g_marker = 0;
int marker(int) { return g_marker; }

int pool_work(int x) {
  void* p = std::malloc(static_cast<std::size_t>(16 + x % 512));
  if (p == nullptr) return -1;
  std::ostringstream os;
  os << x;
  std::lock_guard<std::mutex> lock(g_program_mu);
  std::free(p);
  return static_cast<int>(os.str().size()) + 2 * x;
}

// Sends standard output and error to /dev/null for its lifetime; `saved_err()` is the real one.
class Silenced {
 public:
  Silenced() {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    out_ = ::dup(1);
    err_ = ::dup(2);
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::close(null);
  }
  ~Silenced() {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    ::dup2(out_, 1);
    ::dup2(err_, 2);
    ::close(out_);
    ::close(err_);
  }
  Silenced(const Silenced&) = delete;
  Silenced& operator=(const Silenced&) = delete;
  int saved_err() const { return err_; }

 private:
  int out_ = -1;
  int err_ = -1;
};

// Ends the binary if the test runs over `limit`, writing why to `err_fd` (the real stderr).
class Watchdog {
 public:
  Watchdog(std::chrono::seconds limit, int err_fd)
      : thread_([this, limit, err_fd] {
          std::unique_lock<std::mutex> lk(mu_);
          if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
            const std::string m = "watchdog: the test ran over " + std::to_string(limit.count()) +
                                  " s (a child deadlocked?) during: " + stage_ + "\n";
            (void)!::write(err_fd, m.data(), m.size());
            std::_Exit(2);
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  void stage(std::string s) {
    std::lock_guard<std::mutex> g(mu_);
    stage_ = std::move(s);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string stage_ = "setup";
  std::thread thread_;
};

// Threads that allocate, write to the iostreams and hold g_program_mu most of the time.
class BusyThreads {
 public:
  BusyThreads() {
    for (int t = 0; t < kThreads; ++t) {
      threads_.emplace_back([this, t] {
        std::vector<void*> blocks;
        unsigned n = 0;
        while (!stop_.load(std::memory_order_relaxed)) {
          std::unique_lock<std::mutex> lock(g_program_mu);
          for (int i = 0; i < 50; ++i, ++n) {
            blocks.push_back(std::malloc(16 + (n * 37) % 4096));
            if (blocks.size() > 64) {
              for (void* b : blocks) std::free(b);
              blocks.clear();
            }
            if (i % 10 == 0) {
              std::cout << "thread " << t << " line " << n << '\n';
              std::cerr << "thread " << t << " err " << n << '\n';
            }
          }
          lock.unlock();
          std::this_thread::yield();  // a short window: most of the time the mutex is held
          rounds_.fetch_add(1, std::memory_order_relaxed);
        }
        for (void* b : blocks) std::free(b);
      });
    }
    // Running before the first child starts.
    while (rounds_.load() < kThreads) std::this_thread::sleep_for(1ms);
  }
  ~BusyThreads() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  BusyThreads(const BusyThreads&) = delete;
  BusyThreads& operator=(const BusyThreads&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::atomic<long> rounds_{0};
  std::vector<std::thread> threads_;
};

// Starts kChildren children with `method` (empty: the default rule) in batches, joins each batch
// (bounded), and checks every exit code. Returns what went wrong ("" if nothing); the test reports
// it once standard output and error are back.
std::string run_children(std::optional<StartMethod> method, int not_parent, Watchdog& dog,
                         const char* name) {
  int wrong = 0;
  std::string first_wrong;
  try {
    for (int base = 0; base < kChildren; base += kBatch) {
      dog.stage(std::string(name) + ": children " + std::to_string(base) + ".." +
                std::to_string(base + kBatch - 1));
      std::vector<mproc::Process> batch;
      batch.reserve(kBatch);
      for (int i = base; i < base + kBatch; ++i) {
        const int code = 1 + i % 200;
        batch.emplace_back(mproc::ProcessOptions{.start_method = method}, child_work, code,
                           not_parent);
        batch.back().start();
      }
      for (int i = 0; i < kBatch; ++i) {
        mproc::Process& p = batch[static_cast<std::size_t>(i)];
        const int code = 1 + (base + i) % 200;
        if (!p.join(60s)) {
          p.kill();
          (void)p.join(10s);
        }
        if (p.exitcode() != code) {
          if (wrong++ == 0)
            first_wrong = "child " + std::to_string(base + i) + " exited with " +
                          std::to_string(p.exitcode().value_or(-1000)) + ", expected " +
                          std::to_string(code);
        }
      }
    }
  } catch (const std::exception& e) {
    return std::string(name) + ": " + e.what();
  }
  if (wrong == 0) return {};
  return std::string(name) + ": " + std::to_string(wrong) + " wrong exit codes; " + first_wrong;
}

// Restores the test main's start method (fork) at the end of a test.
struct RestoreForkMethod {
  ~RestoreForkMethod() { mproc::set_start_method(StartMethod::fork, true); }
};

TEST(ThreadedParent, ThousandsOfChildrenUnderEachSafeMethodNeverDeadlock) {
  RestoreForkMethod restore;
  std::vector<std::string> problems;
  std::optional<std::string> default_method;
  {
    Silenced silenced;
    Watchdog dog(240s, silenced.saved_err());
    BusyThreads threads;
    problems.push_back(run_children(StartMethod::forkserver, 0, dog, "forkserver"));
    problems.push_back(run_children(StartMethod::spawn, 0, dog, "spawn"));
    mproc::reset_start_method();
    default_method = mproc::get_start_method();
    problems.push_back(run_children(std::nullopt, static_cast<int>(::getpid()), dog, "default"));
  }
  EXPECT_EQ(default_method, std::optional<std::string>("forkserver"));
  for (const std::string& p : problems) EXPECT_EQ(p, "");
}

TEST(ThreadedParent, PoolsMadeWhileThreadsRunNeverDeadlock) {
  RestoreForkMethod restore;
  std::vector<int> xs(3000);
  std::iota(xs.begin(), xs.end(), 0);
  std::vector<int> want(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) want[i] = pool_work(xs[i]);
  const std::vector<int> xs200(xs.begin(), xs.begin() + 200);
  g_marker = 1;
  const std::vector<int> want200(want.begin(), want.begin() + 200);
  std::vector<std::string> problems;
  {
    Silenced silenced;
    Watchdog dog(240s, silenced.saved_err());
    BusyThreads threads;
    mproc::reset_start_method();
    for (std::optional<StartMethod> method :
         {std::optional<StartMethod>(StartMethod::forkserver),
          std::optional<StartMethod>(StartMethod::spawn), std::optional<StartMethod>()}) {
      const std::string name =
          method ? std::string(mproc::start_method_name(*method)) : std::string("default");
      dog.stage("Pool, " + name);
      try {
        mproc::Pool pool({.processes = 4, .start_method = method});
        // The default rule does not fork a threaded program: its workers are fresh images too.
        if (pool.apply_async(marker, 0).get(60s) != 0)
          problems.push_back(name + ": a worker is a fork of this threaded process");
        if (pool.map(pool_work, xs, std::size_t{16}) != want)
          problems.push_back(name + ": wrong map results");
        // One element per task: many round trips while the threads run.
        if (pool.map(pool_work, xs200, std::size_t{1}) != want200)
          problems.push_back(name + ": wrong map results (chunksize 1)");
        pool.close();
        pool.join();
      } catch (const std::exception& e) {
        problems.push_back(name + ": " + e.what());
      }
    }
  }
  g_marker = 0;
  EXPECT_EQ(problems, std::vector<std::string>{});
}

}  // namespace
}  // namespace mproc_test
