// Pool under resource exhaustion: results too large for the parent's memory, a result queue that
// is full when terminate() runs, too few processes or threads (RLIMIT_NPROC), too few descriptors
// (RLIMIT_NOFILE) and too little address space (RLIMIT_AS) for the Pool's shared memory. Each
// case runs in a forked child (so that the limits bind only there), under a deadline, and checks
// the error's type and message, that nothing is left behind (no child process, no descriptor), and
// that a Pool works again once the resource is back.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mproc/pool.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/child.hpp"
#include "helpers/count_range.hpp"
#include "helpers/proc_state.hpp"
#include "helpers/sanitizer.hpp"
#include "helpers/shared_page.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::eventually;
using mproc_test::SharedPage;

int sqr(int x) { return x * x; }

// What a child tells the test: a line that explains its exit code.
struct Report {
  char text[4096];
};

// Ends the child at once with `code` (no destructor runs: a Pool that hangs must not hold the
// child up), after writing `why` where the test reads it.
[[noreturn]] void fail(Report* r, int code, const std::string& why) {
  std::snprintf(r->text, sizeof r->text, "%s", why.c_str());
  std::fflush(nullptr);
  _exit(code);
}

void note(Report* r, const std::string& s) {
  std::snprintf(r->text, sizeof r->text, "%s", s.c_str());
}

// The descriptors open in this process.
int open_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n - 1;  // the directory's own descriptor
}

// This process's children (zombies included).
std::size_t children() { return mproc_test::children_of(static_cast<int>(getpid())).size(); }

// The address space this process uses now, in bytes.
std::size_t vm_size() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
  return 0;
}

// Limits this process's address space to what it uses now plus `extra` bytes (soft limit only,
// so that it can be lifted again).
void limit_address_space(std::size_t extra) {
  rlimit rl{};
  getrlimit(RLIMIT_AS, &rl);
  rl.rlim_cur = vm_size() + extra;
  setrlimit(RLIMIT_AS, &rl);
}
void unlimit_address_space() {
  rlimit rl{};
  getrlimit(RLIMIT_AS, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_AS, &rl);
}

// Sets RLIMIT_NOFILE (soft) so that exactly `free_slots` descriptor numbers are free below it.
void leave_free_descriptors(int free_slots) {
  int fd = 0;
  for (int free = 0;; ++fd) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF && ++free > free_slots) break;
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = static_cast<rlim_t>(fd);
  setrlimit(RLIMIT_NOFILE, &rl);
}

// Tasks (threads included) whose real uid is `uid`, system-wide: RLIMIT_NPROC counts them.
int tasks_of_uid(uid_t uid) {
  int n = 0;
  DIR* proc = opendir("/proc");
  if (!proc) return 0;
  while (dirent* p = readdir(proc)) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
    const std::string tasks = std::string("/proc/") + p->d_name + "/task";
    DIR* t = opendir(tasks.c_str());
    if (!t) continue;
    while (dirent* e = readdir(t)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(tasks + "/" + e->d_name + "/status");
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("Uid:", 0) != 0) continue;
        if (std::stoul(line.substr(4)) == uid) ++n;
        break;
      }
    }
    closedir(t);
  }
  closedir(proc);
  return n;
}

// Becomes an unprivileged user allowed `extra` more tasks than it has now (root ignores
// RLIMIT_NPROC). An otherwise unused uid, so that no other process changes the count. First starts
// a Process: the first start() of a process opens a descriptor it keeps (a pidfd of itself), which
// must not count as a leak of the Pool.
void drop_privileges_with_task_limit(Report* r, int extra) {
  mproc::Process warm_up([] {});
  warm_up.start();
  warm_up.join();
  const uid_t uid = static_cast<uid_t>(50000 + getpid() % 10000);
  const int before = tasks_of_uid(uid);
  rlimit rl{};
  getrlimit(RLIMIT_NPROC, &rl);
  rl.rlim_cur = static_cast<rlim_t>(before + 1 + extra);  // + 1: this process
  if (setrlimit(RLIMIT_NPROC, &rl) != 0) fail(r, 90, "setrlimit(RLIMIT_NPROC) failed");
  if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
    fail(r, 91, std::string("cannot drop privileges: ") + std::strerror(errno));
  (void)prctl(PR_SET_DUMPABLE, 1);  // keep /proc/self readable
}
void lift_task_limit() {
  rlimit rl{};
  getrlimit(RLIMIT_NPROC, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NPROC, &rl);
}

// Constructs Pool(`n`) expecting std::system_error; returns its what() (the child fails
// otherwise). Checks that the failed constructor left no process and no descriptor behind.
std::string pool_creation_error(Report* r, int n) {
  const int fds = open_fds();
  std::string what;
  try {
    mproc::Pool pool(n);
    fail(r, 10, "Pool(" + std::to_string(n) + ") did not throw");
  } catch (const std::system_error& e) {
    what = e.what();
  } catch (const std::exception& e) {
    fail(r, 11, std::string("not a std::system_error: ") + e.what());
  }
  if (children() != 0) fail(r, 12, "a process was left behind: " + what);
  if (open_fds() != fds)
    fail(r, 13,
         "descriptors leaked: " + std::to_string(fds) + " -> " + std::to_string(open_fds()) + ": " +
             what);
  return what;
}

void expect_contains(Report* r, int code, const std::string& text,
                     std::initializer_list<const char*> parts) {
  for (const char* p : parts)
    if (text.find(p) == std::string::npos)
      fail(r, code, "no \"" + std::string(p) + "\" in: " + text);
}

// A Pool works (again): a few tasks and a map give the right results.
void expect_working_pool(Report* r, int n) {
  mproc::Pool pool(n);
  for (int i = 0; i < 4; ++i)
    if (pool.apply_async(sqr, i).get(30s) != i * i) fail(r, 20, "wrong result");
  auto v = pool.map(sqr, mproc_test::count(0, 100));
  if (v.size() != 100 || v[99] != 99 * 99) fail(r, 21, "wrong map result");
}

// `n` strings of `len` bytes, made as they are read (the i-th is all 'a' + i % 26), so that a map
// over them holds each one only once. (std::views::transform over a test range does not compile
// with clang 14 and libstdc++ 12.)
class Strings {
 public:
  Strings(int n, std::size_t len) : n_(n), len_(len) {}
  class iterator {
   public:
    using value_type = std::string;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(int i, std::size_t len) : i_(i), len_(len) {}
    std::string operator*() const { return std::string(len_, static_cast<char>('a' + i_ % 26)); }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const iterator& o) const { return i_ == o.i_; }

   private:
    int i_ = 0;
    std::size_t len_ = 0;
  };
  iterator begin() const { return iterator(0, len_); }
  iterator end() const { return iterator(n_, len_); }

 private:
  int n_;
  std::size_t len_;
};

int run(const std::function<int()>& fn, std::chrono::seconds limit = 120s) {
  return mproc_test::run_in_child(fn, limit);
}

// Runs `body` in a child with a shared report page: the test fails with the report's text unless
// the child returns 0; on success the error the case checked is printed.
void run_case(const std::function<int(Report*)>& body) {
  SharedPage<Report> rep;
  Report* r = &*rep;
  const int rc = run([&body, r] { return body(r); });
  EXPECT_EQ(rc, 0) << r->text;
  if (rc == 0 && r->text[0]) std::printf("    error checked: %s\n", r->text);
}

TEST(PoolExhaustion, AResultTooLargeForTheParentFailsWithDecodeErrorAndThePoolGoesOn) {
  MPROC_SKIP_IF_SANITIZED();
  run_case([](Report* r) {
    std::optional<mproc::Pool> pool(std::in_place, 2);
    if (pool->apply(sqr, 3) != 9) fail(r, 2, "wrong result");
    // The workers exist already and are not limited; this process (the result thread) is.
    limit_address_space(std::size_t{512} << 20);
    auto big = pool->apply_async([] { return std::string(std::size_t{1536} << 20, 'x'); });
    std::string what;
    try {
      (void)big.get(60s);
      fail(r, 3, "a 1.5 GiB result was decoded under a 512 MiB limit");
    } catch (const mproc::DecodeError& e) {
      what = e.what();
    } catch (const mproc::TimeoutError&) {
      fail(r, 4, "no outcome for the large result within 60 s");
    } catch (const std::exception& e) {
      fail(r, 5, std::string("not DecodeError: ") + e.what());
    }
    expect_contains(r, 6, what, {"mproc::Pool", "result", "bad_alloc"});
    // The pool goes on.
    for (int i = 0; i < 20; ++i) {
      auto t = pool->apply_async(sqr, i);
      if (!t.wait(30s)) fail(r, 7, "a later task got no outcome within 30 s");
      if (t.get() != i * i) fail(r, 8, "wrong result");
    }
    unlimit_address_space();
    auto again = pool->apply_async([] { return std::string(std::size_t{64} << 20, 'y'); });
    if (!again.wait(60s) || again.get().size() != (std::size_t{64} << 20))
      fail(r, 9, "a large result once memory is back");
    pool->terminate();
    pool.reset();
    note(r, what);
    return 0;
  });
}

TEST(PoolExhaustion, TerminateFromACallbackReturnsWhileTheResultQueueIsFull) {
  struct Board {
    std::atomic<int> streaming_pid{0};
  };
  SharedPage<Report> rep;
  SharedPage<Board> board;
  Report* r = &*rep;
  Board* b = &*board;
  const int rc = run(
      [r, b] {
        std::optional<mproc::Pool> pool(std::in_place, 2);
        std::atomic<bool> terminated{false};
        auto first = pool->apply_async(sqr, std::tuple(3), [&](int) {
          // On the result thread, which therefore reads nothing: a worker streaming an 8 MiB
          // result fills the 4 MiB result queue and waits, holding its producer side.
          if (!eventually([&] { return b->streaming_pid.load() != 0; })) return;
          std::this_thread::sleep_for(300ms);
          // The zygote's report of the other worker's end then cannot enter the queue.
          for (int zygote : mproc_test::children_of(static_cast<int>(getpid())))
            for (int worker : mproc_test::children_of(zygote))
              if (worker != b->streaming_pid.load()) ::kill(worker, SIGKILL);
          std::this_thread::sleep_for(300ms);
          pool->terminate();
          terminated = true;
        });
        auto big = pool->apply_async([b] {
          b->streaming_pid = static_cast<int>(getpid());
          return std::string(std::size_t{8} << 20, 'z');
        });
        if (!first.wait(60s)) fail(r, 2, "terminate() in the callback did not return");
        if (!terminated) fail(r, 3, "the large task did not start");
        try {
          (void)big.get(30s);
          fail(r, 4, "the large task succeeded");
        } catch (const mproc::BrokenPool&) {
        } catch (const std::exception& e) {
          fail(r, 5, std::string("not BrokenPool: ") + e.what());
        }
        pool.reset();  // the destructor returns too
        if (!eventually([] { return children() == 0; }, 10))
          fail(r, 6, "a process was left behind");
        return 0;
      },
      20s);  // terminate() must be prompt: far below the zygote's 30 s grace
  EXPECT_EQ(rc, 0) << r->text;
  if (rc == 0 && r->text[0]) std::printf("    error checked: %s\n", r->text);
}

TEST(PoolExhaustion, TooFewProcessesForTheZygoteNamesForkAndTheErrno) {
  run_case([](Report* r) {
    drop_privileges_with_task_limit(r, 0);
    const std::string what = pool_creation_error(r, 4);
    expect_contains(r, 30, what, {"mproc::Pool", "zygote", "fork", "EAGAIN"});
    lift_task_limit();
    expect_working_pool(r, 4);
    note(r, what);
    return 0;
  });
}

TEST(PoolExhaustion, TooFewProcessesForTheThirdWorkerNamesItAndTheErrno) {
  MPROC_SKIP_IF_THREAD_SANITIZED();
  run_case([](Report* r) {
    drop_privileges_with_task_limit(r, 1 + 2);  // the zygote and two workers
    const std::string what = pool_creation_error(r, 4);
    expect_contains(r, 30, what, {"mproc::Pool", "worker 3 of 4", "fork", "EAGAIN"});
    lift_task_limit();
    expect_working_pool(r, 4);
    note(r, what);
    return 0;
  });
}

TEST(PoolExhaustion, NoThreadForTheResultThreadNamesPthreadCreateAndTheErrno) {
  MPROC_SKIP_IF_THREAD_SANITIZED();
  run_case([](Report* r) {
    drop_privileges_with_task_limit(r, 1 + 4);  // the zygote and four workers, no thread
    const std::string what = pool_creation_error(r, 4);
    expect_contains(r, 30, what, {"mproc::Pool", "result thread", "EAGAIN"});
    lift_task_limit();
    expect_working_pool(r, 4);
    note(r, what);
    return 0;
  });
}

TEST(PoolExhaustion, AReplacementWorkerThatCannotBeStartedBreaksThePoolNamingForkAndTheErrno) {
  MPROC_SKIP_IF_THREAD_SANITIZED();
  run_case([](Report* r) {
    drop_privileges_with_task_limit(r, 1 + 2 + 1);  // the zygote, two workers, the result thread
    std::optional<mproc::Pool> pool(std::in_place, 2);
    auto worker = pool->apply([] { return static_cast<int>(getpid()); });
    // The zygote (this process's only child) may have no more processes than it has now, so the
    // replacement of the worker killed below cannot be forked.
    const auto kids = mproc_test::children_of(static_cast<int>(getpid()));
    if (kids.size() != 1) fail(r, 2, "expected one child, the zygote");
    rlimit rl{};
    getrlimit(RLIMIT_NPROC, &rl);
    rl.rlim_cur = static_cast<rlim_t>(tasks_of_uid(getuid()) - 1);  // one less once it is gone
    if (prlimit(kids[0], RLIMIT_NPROC, &rl, nullptr) != 0) fail(r, 3, "prlimit failed");
    ::kill(worker, SIGKILL);
    std::string what;
    const bool broke = eventually([&] {
      try {
        (void)pool->apply_async(sqr, 2).get(30s);
      } catch (const mproc::BrokenPool& e) {
        what = e.what();
        return true;
      }
      return false;
    });
    if (!broke) fail(r, 4, "the pool did not break");
    expect_contains(r, 5, what, {"mproc::Pool", "of 2", "fork", "EAGAIN"});
    pool.reset();
    if (children() != 0) fail(r, 6, "a process was left behind");
    lift_task_limit();
    expect_working_pool(r, 2);
    note(r, what);
    return 0;
  });
}

TEST(PoolExhaustion, NoMemoryForTheResultQueueNamesItAndTheErrno) {
  MPROC_SKIP_IF_SANITIZED();
  run_case([](Report* r) {
    limit_address_space(std::size_t{1} << 20);  // less than the 4 MiB result queue
    const std::string what = pool_creation_error(r, 2);
    expect_contains(r, 30, what, {"mproc::Pool", "result queue", "ENOMEM"});
    unlimit_address_space();
    expect_working_pool(r, 2);
    note(r, what);
    return 0;
  });
}

TEST(PoolExhaustion, NoDescriptorForAMailboxNamesItAndTheErrno) {
  run_case([](Report* r) {
    rlimit saved{};
    getrlimit(RLIMIT_NOFILE, &saved);
    leave_free_descriptors(2);  // the result queue's memfd and the first mailbox's
    const std::string what = pool_creation_error(r, 2);
    setrlimit(RLIMIT_NOFILE, &saved);
    expect_contains(r, 30, what, {"mproc::Pool", "mailbox of worker 2 of 2", "EMFILE"});
    expect_working_pool(r, 2);
    note(r, what);
    return 0;
  });
}

TEST(PoolExhaustion, AMapOfManyLargeElementsWorksUnderALowDescriptorLimit) {
  run_case([](Report* r) {
    rlimit rl{64, 64};  // ulimit -n 64
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) fail(r, 2, "setrlimit(RLIMIT_NOFILE) failed");
    mproc::Pool pool(2);
    const int fds = open_fds();
    constexpr std::size_t kElem = 300000;
    const Strings input(2000, kElem);
    std::vector<std::size_t> out;
    try {
      out = pool.map(
          [](const std::string& s) {
            return s.size() == kElem && s.find_first_not_of(s[0]) == std::string::npos
                       ? s.size()
                       : std::size_t{0};
          },
          input);
    } catch (const std::exception& e) {
      fail(r, 3, std::string("map failed: ") + e.what());
    }
    if (out.size() != 2000) fail(r, 4, "wrong number of results");
    for (std::size_t v : out)
      if (v != kElem) fail(r, 5, "an element arrived damaged");
    // imap and many apply_async hold no more descriptors either.
    std::size_t n = 0;
    for (std::size_t v : pool.imap([](const std::string& s) { return s.size(); }, input)) {
      if (v != kElem) fail(r, 6, "an imap element arrived damaged");
      ++n;
    }
    if (n != 2000) fail(r, 7, "imap gave " + std::to_string(n) + " results");
    std::vector<mproc::AsyncResult<std::size_t>> rs;
    for (int i = 0; i < 500; ++i)
      rs.push_back(
          pool.apply_async([](const std::string& s) { return s.size(); }, std::string(kElem, 'q')));
    for (auto& t : rs) {
      try {
        if (t.get(60s) != kElem) fail(r, 8, "an apply_async argument arrived damaged");
      } catch (const std::exception& e) {
        fail(r, 9, std::string("apply_async failed: ") + e.what());
      }
    }
    if (!eventually([&] { return open_fds() == fds; }, 10))
      fail(r, 10,
           "descriptors leaked: " + std::to_string(fds) + " -> " + std::to_string(open_fds()));
    return 0;
  });
}

TEST(PoolExhaustion, ALargeArgumentWithoutAddressSpaceFailsOnlyItsTask) {
  MPROC_SKIP_IF_SANITIZED();
  run_case([](Report* r) {
    mproc::Pool pool(2);
    if (pool.apply(sqr, 2) != 4) fail(r, 2, "wrong result");
    const int fds = open_fds();
    constexpr std::size_t kBig = std::size_t{64} << 20;
    // Room for the argument and its encoding (2 x 64 MiB), not for a third copy in a memfd.
    limit_address_space(std::size_t{160} << 20);
    std::string what;
    try {
      auto t =
          pool.apply_async([](const std::string& s) { return s.size(); }, std::string(kBig, 'a'));
      (void)t.get(30s);
      fail(r, 3, "the task succeeded under the limit");
    } catch (const std::system_error& e) {
      what = e.what();
      if (e.code() != std::errc::not_enough_memory) fail(r, 4, "not ENOMEM: " + what);
    } catch (const std::exception& e) {
      fail(r, 5, std::string("not a std::system_error: ") + e.what());
    }
    expect_contains(r, 6, what, {"mproc::Pool", "memfd", "arguments", "ENOMEM"});
    unlimit_address_space();
    if (open_fds() != fds)
      fail(r, 7,
           "descriptors leaked: " + std::to_string(fds) + " -> " + std::to_string(open_fds()));
    // The pool goes on, also with large arguments.
    if (pool.apply(sqr, 5) != 25) fail(r, 8, "wrong result");
    if (pool.apply([](const std::string& s) { return s.size(); }, std::string(kBig, 'b')) != kBig)
      fail(r, 9, "a large argument once memory is back");
    note(r, what);
    return 0;
  });
}

}  // namespace
