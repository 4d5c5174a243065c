// Resource exhaustion: every mproc object made while a resource runs out — open files
// (RLIMIT_NOFILE), processes (RLIMIT_NPROC), address space (RLIMIT_AS), room in /dev/shm — fails
// with a clear exception, leaves nothing behind, and works again once the resource is back.
//
// "Clear" means: std::system_error carrying the errno, whose what() names the operation (the mproc
// object or call), the resource, and the errno (its symbolic name, or its message and number).
// "Nothing behind" means: no new fd (/proc/self/fd), no child and no zombie, no extra thread, no
// new /dev/shm entry.
//
// Each case runs in a forked child (helpers/child.hpp) that lowers a limit of its own, so the test
// process keeps its limits; the child writes its findings into a shared page that the test prints.
// Most cases sweep the limit upwards from "nothing left" until the operation succeeds, so that
// every point where a multi-step creation can fail is tried once, each followed by a leak check.
//
// RLIMIT_NPROC is ignored for root, and counts per real uid: those children drop to an unused uid
// of their own first. The small /dev/shm lives in a private mount namespace (needs root).
#include <cxxabi.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mproc/mproc.hpp>
#include <new>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/proc_state.hpp"
#include "helpers/sanitizer.hpp"
#include "helpers/shared_page.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMiB = std::size_t{1} << 20;

// ---------------------------------------------------------------------------------------------
// Findings of a case, written by its child into a page shared with the test.

struct Findings {
  int failures;
  std::size_t len;
  char step[512];    // what the child was doing last (shows where a hang or a crash happened)
  char text[60000];  // one line per failure
};

Findings* g_findings = nullptr;

void append(const std::string& line) {
  Findings& f = *g_findings;
  const std::size_t room = sizeof f.text - 1 - f.len;
  const std::size_t n = std::min(room, line.size() + 1);
  if (n == 0) return;
  std::memcpy(f.text + f.len, (line + "\n").data(), n);
  f.len += n;
  f.text[f.len] = '\0';
}

void fail(const std::string& msg) {
  ++g_findings->failures;
  append(msg);
}

void step(const std::string& s) {
  std::snprintf(g_findings->step, sizeof g_findings->step, "%s", s.c_str());
}

#define CASE_CHECK(cond, msg)                                                          \
  do {                                                                                 \
    if (!(cond)) fail(std::string("line ") + std::to_string(__LINE__) + ": " + (msg)); \
  } while (0)

// Runs `body` in a forked child and fails the test with the child's findings. A body that
// returns kSkip skips the test (the environment lacks a permission the case needs).
constexpr int kSkip = 77;

void run_case(const std::function<int()>& body, std::chrono::seconds limit = 100s) {
  mproc_test::SharedPage<Findings> page;
  const int rc = mproc_test::run_in_child(
      [&] {
        g_findings = &*page;
        int r = body();
        if (r == 0 && page->failures > 0) r = 1;
        return r;
      },
      limit);
  if (std::getenv("MPROC_TEST_VERBOSE")) std::printf("%s", page->text);  // every error seen
  if (rc == kSkip) GTEST_SKIP() << page->text;
  EXPECT_EQ(rc, 0) << (rc == mproc_test::kTimedOut ? "the case timed out" : "the case failed")
                   << " (last step: " << page->step << ")\n"
                   << page->text;
}

// ---------------------------------------------------------------------------------------------
// What the process holds.

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::map<int, std::string> open_fds() {
  std::map<int, std::string> out;
  DIR* d = opendir("/proc/self/fd");
  if (!d) {
    fail(std::string("cannot list /proc/self/fd: ") + std::strerror(errno));
    return out;
  }
  const int self = dirfd(d);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == self) continue;
    char buf[512];
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = readlink(link.c_str(), buf, sizeof buf);
    out[fd] = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
  }
  closedir(d);
  return out;
}

int count_threads() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

// Entries of /dev/shm named by this test (or all of them, in a private /dev/shm).
std::string g_shm_prefix;
bool g_all_shm = false;

std::set<std::string> shm_entries() {
  std::set<std::string> out;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      if (g_all_shm || n.rfind(g_shm_prefix, 0) == 0) out.insert(n);
    }
    closedir(d);
  }
  return out;
}

struct Held {
  std::map<int, std::string> fds;
  std::vector<int> children;  // zombies included
  int threads = 0;
  std::set<std::string> shm;
};

Held held_now() {
  Held h;
  h.fds = open_fds();
  h.children = mproc_test::children_of(getpid());
  std::sort(h.children.begin(), h.children.end());
  h.threads = count_threads();
  h.shm = shm_entries();
  return h;
}

void check_nothing_leaked(const Held& before, const std::string& when) {
  Held now;
  // A child or thread on its way out leaves /proc a moment after it was reaped or joined.
  (void)mproc_test::eventually(
      [&] {
        now = held_now();
        return now.children == before.children && now.threads == before.threads;
      },
      5.0);
  for (const auto& [fd, what] : now.fds) {
    auto it = before.fds.find(fd);
    if (it == before.fds.end() || it->second != what) {
      fail(when + ": leaked fd " + std::to_string(fd) + " -> " + what);
    }
  }
  for (const auto& [fd, what] : before.fds) {
    if (!now.fds.count(fd)) fail(when + ": closed fd " + std::to_string(fd) + " (" + what + ")");
  }
  for (int c : now.children) {
    if (!std::binary_search(before.children.begin(), before.children.end(), c)) {
      const char st = mproc_test::proc_state(c);
      fail(when + ": left child " + std::to_string(c) +
           (st == 'Z' ? " (a zombie)" : std::string(" (state ") + (st ? st : '?') + ")"));
    }
  }
  if (now.threads != before.threads) {
    fail(when + ": " + std::to_string(now.threads) + " threads, " + std::to_string(before.threads) +
         " before");
  }
  for (const auto& n : now.shm) {
    if (!before.shm.count(n)) fail(when + ": left /dev/shm/" + n);
  }
}

// Opens /dev/null into every hole of the fd table, so that a limit of (highest fd + 1 + k) leaves
// exactly k descriptors to take. The fillers stay open for the whole case.
void fill_fd_holes() {
  const auto fds = open_fds();
  if (fds.empty()) return;
  const int top = fds.rbegin()->first;
  for (int fd = 0; fd < top; ++fd) {
    if (fds.count(fd)) continue;
    const int f = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (f != fd) {
      fail("fill_fd_holes: expected fd " + std::to_string(fd) + ", got " + std::to_string(f));
      if (f >= 0) ::close(f);
      return;
    }
  }
}

int highest_fd() {
  const auto fds = open_fds();
  return fds.empty() ? -1 : fds.rbegin()->first;
}

std::size_t vm_size() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmSize:", 0) == 0) return std::stoul(line.substr(7)) * 1024;
  }
  fail("no VmSize in /proc/self/status");
  return 0;
}

void set_soft_limit(int resource, rlim_t value) {
  rlimit r{};
  if (getrlimit(resource, &r) != 0 || (value > r.rlim_max && r.rlim_max != RLIM_INFINITY)) {
    fail("cannot read the limit " + std::to_string(resource));
    return;
  }
  r.rlim_cur = value;
  if (setrlimit(resource, &r) != 0) {
    fail("setrlimit(" + std::to_string(resource) + ", " + std::to_string(value) +
         "): " + std::strerror(errno));
  }
}

rlim_t hard_limit(int resource) {
  rlimit r{};
  (void)getrlimit(resource, &r);
  return r.rlim_max;
}

rlim_t soft_limit(int resource) {
  rlimit r{};
  (void)getrlimit(resource, &r);
  return r.rlim_cur;
}

// ---------------------------------------------------------------------------------------------
// What a clear error is.

struct Expect {
  std::vector<int> errnos;             // the code() must be one of these
  std::vector<std::string> operation;  // what() names one of these (case-insensitive)
  std::vector<std::string> resource;   // and one of these
  bool bad_alloc_ok = false;           // running out of address space may also be std::bad_alloc
};

std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "errno " + std::to_string(e);
}

std::string any_of(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "\"" : " | \"") + w + "\"";
  return s;
}

bool mentions_any(const std::string& what, const std::vector<std::string>& words) {
  const std::string w = lower(what);
  return std::any_of(words.begin(), words.end(),
                     [&](const std::string& x) { return w.find(lower(x)) != std::string::npos; });
}

// Checks that `e` is a clear error of the kind `expect` describes.
void check_clear(const std::string& label, const std::system_error& e, const Expect& expect) {
  const std::string what = e.what();
  const int code = e.code().value();
  const bool posix = e.code().category() == std::generic_category() ||
                     e.code().category() == std::system_category();
  const std::string seen = label + ": std::system_error " + errno_name(code) + " \"" + what + "\"";
  CASE_CHECK(posix && std::count(expect.errnos.begin(), expect.errnos.end(), code) > 0,
             seen + ": unexpected errno (category " + e.code().category().name() + ")");
  CASE_CHECK(mentions_any(what, expect.operation),
             seen + ": does not name the operation (" + any_of(expect.operation) + ")");
  CASE_CHECK(mentions_any(what, expect.resource),
             seen + ": does not name the resource (" + any_of(expect.resource) + ")");
  const bool named = what.find(errno_name(code)) != std::string::npos;
  const bool message_and_number = what.find(std::strerror(code)) != std::string::npos &&
                                  what.find(std::to_string(code)) != std::string::npos;
  CASE_CHECK(named || message_and_number, seen + ": does not name the errno (" + errno_name(code) +
                                              ", or its message and number)");
}

std::string current_exception_type() {
  const std::type_info* ti = abi::__cxa_current_exception_type();
  if (!ti) return "?";
  int status = -1;
  char* d = abi::__cxa_demangle(ti->name(), nullptr, nullptr, &status);
  std::string out = (d && status == 0) ? d : ti->name();
  std::free(d);
  return out;
}

// Calls `attempt`; true when it returned. What it throws is checked against `expect`.
bool attempt_checked(const std::string& label, const std::function<void()>& attempt,
                     const Expect& expect) {
  step(label);
  try {
    attempt();
    return true;
  } catch (const std::system_error& e) {
    append("  " + label + ": " + e.what());
    check_clear(label, e, expect);
  } catch (const std::bad_alloc& e) {
    append("  " + label + ": std::bad_alloc");
    CASE_CHECK(expect.bad_alloc_ok, label + ": std::bad_alloc");
  } catch (const std::exception& e) {
    fail(label + ": " + current_exception_type() + " \"" + e.what() + "\" (expected a " +
         "std::system_error with " + any_of([&] {
           std::vector<std::string> v;
           for (int x : expect.errnos) v.push_back(errno_name(x));
           return v;
         }()) +
         ")");
  } catch (...) {
    fail(label + ": " + current_exception_type());
  }
  return false;
}

// Calls `f`, which must throw std::system_error with exactly `what` (the format of every OS
// error: "<mproc call>: <step>: <system call>: <message> (<errno name>)"). The exception is a
// plain std::system_error (a Pool reports a task's exception by its type name), and its copies
// keep the text.
void check_exact_os_error(const std::string& label, const std::function<void()>& f,
                          const std::string& what) {
  step(label);
  try {
    f();
    fail(label + ": no exception; expected \"" + what + "\"");
  } catch (const std::system_error& e) {
    CASE_CHECK(e.what() == what, label + ": \"" + e.what() + "\", expected \"" + what + "\"");
    CASE_CHECK(typeid(e) == typeid(std::system_error),
               label + ": thrown as " + current_exception_type() + ", not std::system_error");
    const std::system_error copy = e;
    CASE_CHECK(copy.what() == std::string(e.what()), label + ": a copy reads " + copy.what());
  } catch (...) {
    fail(label + ": " + current_exception_type());
  }
}

// Runs `attempt` once with the resource plentiful (so that what a first use caches, such as the
// calling process's own pidfd, is in the "before" picture), then under `limit(k)` for k = first,
// first + 1, ... until it succeeds (at most `max_k`), restoring the resource and checking for leaks
// after each try; then once more with the resource plentiful. Fails the case if the limit never
// bit, or if the attempt never succeeded.
void sweep(const std::string& label, const std::function<void(int)>& limit,
           const std::function<void()>& restore, const std::function<void()>& attempt,
           const Expect& expect, int max_k, int first_k = 0) {
  CASE_CHECK(attempt_checked(label + " (warm-up)", attempt, expect), label + ": warm-up failed");
  const Held before = held_now();
  int failures = 0;
  bool ok = false;
  int k = first_k;
  for (; k <= max_k && !ok; ++k) {
    const std::string try_label = label + " [k=" + std::to_string(k) + "]";
    limit(k);
    ok = attempt_checked(try_label, attempt, expect);
    restore();
    if (!ok) ++failures;
    check_nothing_leaked(before, try_label);
  }
  CASE_CHECK(failures > 0, label + ": the limit never made it fail");
  CASE_CHECK(ok, label + ": still failing at k=" + std::to_string(max_k));
  append(label + ": " + std::to_string(failures) +
         " failing tries, succeeded at k=" + std::to_string(k - 1));
  CASE_CHECK(attempt_checked(label + " (limit restored)", attempt, expect),
             label + ": does not work again once the limit is restored");
  check_nothing_leaked(before, label + " (limit restored)");
}

// ---------------------------------------------------------------------------------------------
// The attempts: create an object and use it a little.

int sqr(int x) { return x * x; }

void use_lock() {
  mproc::Lock l;
  l.acquire();
  l.release();
}

void use_event() {
  mproc::Event e;
  e.set();
  CASE_CHECK(e.is_set(), "Event: not set after set()");
}

void use_value() {
  mproc::Value<long> v(41);
  v.set(v.get() + 1);
  CASE_CHECK(v.get() == 42, "Value: wrong value");
}

void use_array() {
  mproc::Array<int> a(1000);
  a[999] = 7;
  CASE_CHECK(a.at(999) == 7 && a[0] == 0, "Array: wrong elements");
}

void use_queue() {
  mproc::Queue<std::string> q;
  q.put("hello");
  CASE_CHECK(q.get(5s) == "hello", "Queue: wrong item");
}

void use_anonymous_shm() {
  auto s = mproc::SharedMemory::anonymous(64 * 1024);
  s.buf()[0] = std::byte{1};
  CASE_CHECK(s.size() == 64 * 1024, "SharedMemory::anonymous: wrong size");
}

void use_named_shm() {
  auto s = mproc::SharedMemory::create(g_shm_prefix + "named", 64 * 1024);
  s.buf()[0] = std::byte{1};
}

void use_pipe() {
  auto [a, b] = mproc::Pipe();
  a.send(41);
  CASE_CHECK(b.recv<int>() == 41, "Pipe: wrong value");
}

void use_process() {
  mproc::Process p([] { return 3; });
  p.start();
  CASE_CHECK(p.join(30s), "Process: did not exit within 30 s");
  CASE_CHECK(p.exitcode() == 3, "Process: wrong exit code");
}

void use_pool() {
  mproc::Pool pool(2);
  const std::vector<int> xs = {1, 2, 3, 4};
  const std::vector<int> want = {1, 4, 9, 16};
  CASE_CHECK(pool.map(sqr, xs) == want, "Pool: wrong results");
}

const std::vector<std::string> kSharedMemory = {"shared memory", "memfd", "mmap", "ring", "region"};
const std::vector<std::string> kProcessResources = {"fork", "clone", "pidfd", "process", "child"};
const std::vector<std::string> kPoolResources = {"worker", "thread",  "process", "fork",
                                                 "pidfd",  "socket",  "memfd",   "shared memory",
                                                 "queue",  "mailbox", "mmap"};

// ---------------------------------------------------------------------------------------------
// RLIMIT_NOFILE

void sweep_nofile(const std::string& label, const std::function<void()>& attempt,
                  std::vector<std::string> operation, std::vector<std::string> resource,
                  int max_k) {
  g_shm_prefix = "mproc_exhaust_" + std::to_string(getpid()) + "_";
  fill_fd_holes();
  const rlim_t normal = soft_limit(RLIMIT_NOFILE);
  sweep(
      label,
      [](int k) { set_soft_limit(RLIMIT_NOFILE, static_cast<rlim_t>(highest_fd() + 1 + k)); },
      [normal] { set_soft_limit(RLIMIT_NOFILE, normal); }, attempt,
      Expect{{EMFILE, ENFILE}, std::move(operation), std::move(resource)}, max_k);
}

TEST(ExhaustionFds, LockFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("Lock", use_lock, {"lock"}, kSharedMemory, 8);
    return 0;
  });
}

TEST(ExhaustionFds, EventFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("Event", use_event, {"event"}, kSharedMemory, 8);
    return 0;
  });
}

TEST(ExhaustionFds, ValueFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    // A Value makes its RLock first: failing there, the error may name the lock.
    sweep_nofile("Value", use_value, {"value", "lock"}, kSharedMemory, 8);
    return 0;
  });
}

TEST(ExhaustionFds, ArrayFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("Array", use_array, {"array", "lock"}, kSharedMemory, 8);
    return 0;
  });
}

TEST(ExhaustionFds, QueueFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("Queue", use_queue, {"queue"}, kSharedMemory, 16);
    return 0;
  });
}

TEST(ExhaustionFds, AnonymousSharedMemoryFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("SharedMemory::anonymous", use_anonymous_shm, {"SharedMemory"}, kSharedMemory, 8);
    return 0;
  });
}

TEST(ExhaustionFds, NamedSharedMemoryFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("SharedMemory::create", use_named_shm, {"SharedMemory"},
                 {"shm_open", "segment", "/dev/shm", "shared memory"}, 8);
    return 0;
  });
}

TEST(ExhaustionFds, PipeFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("Pipe", use_pipe, {"Pipe"}, {"socket"}, 8);
    return 0;
  });
}

TEST(ExhaustionFds, ProcessStartFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    sweep_nofile("Process::start", use_process, {"Process::start"}, kProcessResources, 8);
    mproc::Process p([] { return 0; });
    const rlim_t normal = soft_limit(RLIMIT_NOFILE);
    set_soft_limit(RLIMIT_NOFILE, static_cast<rlim_t>(highest_fd() + 1));
    check_exact_os_error(
        "Process::start without a free fd", [&] { p.start(); },
        "mproc::Process::start: cannot open a pidfd for the new process: "
        "pidfd_open: Too many open files (EMFILE)");
    set_soft_limit(RLIMIT_NOFILE, normal);
    return 0;
  });
}

TEST(ExhaustionFds, FirstProcessStartWithoutAFdForItsOwnPidfdFailsClearly) {
  run_case([] {
    // The first start() of a process opens a pidfd for the process itself.
    fill_fd_holes();
    const rlim_t normal = soft_limit(RLIMIT_NOFILE);
    const Held before = held_now();
    mproc::Process p([] { return 4; });
    set_soft_limit(RLIMIT_NOFILE, static_cast<rlim_t>(highest_fd() + 1));
    check_exact_os_error(
        "first Process::start", [&] { p.start(); },
        "mproc::Process::start: cannot open a pidfd for the calling process: "
        "pidfd_open: Too many open files (EMFILE)");
    set_soft_limit(RLIMIT_NOFILE, normal);
    check_nothing_leaked(before, "first Process::start");
    CASE_CHECK(attempt_checked(
                   "Process::start again", [&] { p.start(); },
                   Expect{{}, {"Process::start"}, kProcessResources}),
               "the same Process does not start once fds are back");
    CASE_CHECK(p.join(30s) && p.exitcode() == 4, "wrong exit code after the restart");
    return 0;
  });
}

TEST(ExhaustionFds, PoolFailsClearlyLeaksNothingAndWorksAgain) {
  run_case(
      [] {
        sweep_nofile("Pool", use_pool, {"Pool"}, kPoolResources, 200);
        return 0;
      },
      110s);
}

// ---------------------------------------------------------------------------------------------
// RLIMIT_NPROC

// Drops root for an unused uid of this process's own (root ignores RLIMIT_NPROC, and the count
// is per real uid, so two cases running at once must not share one). Returns false if refused.
bool drop_privileges() {
  const uid_t id = static_cast<uid_t>(40000 + getpid() % 20000);
  if (setgroups(0, nullptr) != 0 || setresgid(id, id, id) != 0 || setresuid(id, id, id) != 0) {
    append(std::string("cannot drop privileges: ") + std::strerror(errno));
    return false;
  }
  // Changing credentials clears both; /proc/self/fd needs the process to be dumpable.
  (void)prctl(PR_SET_DUMPABLE, 1);
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  return true;
}

void sweep_nproc(const std::string& label, const std::function<void()>& attempt,
                 std::vector<std::string> operation, std::vector<std::string> resource, int max_k) {
  const rlim_t normal = hard_limit(RLIMIT_NPROC);
  sweep(
      label,
      [](int k) {
        // The uid runs this process's threads and children (all dropped with it), nothing else.
        const Held h = held_now();
        set_soft_limit(RLIMIT_NPROC, static_cast<rlim_t>(h.threads + h.children.size() + k));
      },
      [normal] { set_soft_limit(RLIMIT_NPROC, normal); }, attempt,
      Expect{{EAGAIN}, std::move(operation), std::move(resource)}, max_k);
}

TEST(ExhaustionProcesses, ProcessStartFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    if (!drop_privileges()) return kSkip;
    sweep_nproc("Process::start", use_process, {"Process::start"}, kProcessResources, 4);
    mproc::Process p([] { return 0; });
    set_soft_limit(RLIMIT_NPROC, 1);
    check_exact_os_error(
        "Process::start at RLIMIT_NPROC", [&] { p.start(); },
        "mproc::Process::start: cannot create the process: fork: Resource temporarily unavailable "
        "(EAGAIN)");
    set_soft_limit(RLIMIT_NPROC, hard_limit(RLIMIT_NPROC));
    return 0;
  });
}

TEST(ExhaustionProcesses, PoolFailsClearlyLeaksNothingAndWorksAgain) {
  run_case([] {
    if (!drop_privileges()) return kSkip;
    sweep_nproc("Pool", use_pool, {"Pool"}, kPoolResources, 12);
    return 0;
  });
}

// ---------------------------------------------------------------------------------------------
// RLIMIT_AS

// Sanitizers reserve terabytes of shadow memory and abort when an allocation fails: limits on
// the address space test them, not mproc.
#define SKIP_IF_SANITIZED() MPROC_SKIP_IF_SANITIZED()

void sweep_as(const std::string& label, const std::function<void()>& attempt,
              std::vector<std::string> operation, std::vector<std::string> resource,
              std::size_t step_bytes, int max_k, int first_k = 1) {
  sweep(
      label,
      [step_bytes](int k) {
        const std::size_t extra = static_cast<std::size_t>(k) * step_bytes;
        set_soft_limit(RLIMIT_AS, static_cast<rlim_t>(vm_size() + extra));
      },
      [] { set_soft_limit(RLIMIT_AS, RLIM_INFINITY); }, attempt,
      Expect{{ENOMEM, EAGAIN}, std::move(operation), std::move(resource), true}, max_k, first_k);
}

TEST(ExhaustionMemory, QueueWithALargeRingFailsClearlyLeaksNothingAndWorksAgain) {
  SKIP_IF_SANITIZED();
  run_case([] {
    sweep_as(
        "Queue(64 MiB ring)",
        [] {
          mproc::Queue<std::string> q(0, mproc::QueueOptions{.capacity = 64 * kMiB});
          q.put(std::string(100000, 'x'));
          CASE_CHECK(q.get(5s).size() == 100000, "Queue: wrong item");
        },
        {"queue"}, kSharedMemory, 16 * kMiB, 12);
    return 0;
  });
}

TEST(ExhaustionMemory, LargeArrayFailsClearlyLeaksNothingAndWorksAgain) {
  SKIP_IF_SANITIZED();
  run_case([] {
    sweep_as(
        "Array<char>(64 MiB)",
        [] {
          mproc::Array<char> a(64 * kMiB, mproc::no_lock);
          a[a.size() - 1] = 'x';
        },
        {"array"}, kSharedMemory, 16 * kMiB, 12);
    return 0;
  });
}

TEST(ExhaustionMemory, ProcessStartsUnderATightAddressSpaceLimit) {
  SKIP_IF_SANITIZED();
  run_case([] {
    // fork needs no new address space: start() works; the child inherits the limit, and a target
    // that runs out of memory ends with the uncaught-exception exit code.
    use_process();
    const Held before = held_now();
    set_soft_limit(RLIMIT_AS, static_cast<rlim_t>(vm_size() + 16 * kMiB));
    const bool ok = attempt_checked(
        "Process::start under RLIMIT_AS",
        [] {
          mproc::Process big([] {
            std::vector<char> v(512 * kMiB, 'x');
            return v.back() == 'x' ? 0 : 2;
          });
          big.start();
          CASE_CHECK(big.join(30s), "the child did not exit");
          CASE_CHECK(big.exitcode() == 1, "a child out of memory: exit code " +
                                              std::to_string(big.exitcode().value_or(-1000)));
          use_process();
        },
        Expect{{ENOMEM, EAGAIN}, {"Process::start"}, kProcessResources, true});
    set_soft_limit(RLIMIT_AS, RLIM_INFINITY);
    CASE_CHECK(ok, "Process::start failed under a tight RLIMIT_AS");
    check_nothing_leaked(before, "Process::start under RLIMIT_AS");
    return 0;
  });
}

// Grows the stack by `kStackReserve`, so that code run under an address-space limit that allows
// no new mapping does not need the stack to grow (that would be SIGSEGV).
constexpr std::size_t kStackReserve = 256 * 1024;
[[gnu::noinline]] void touch_stack() {
  volatile char pad[kStackReserve];
  for (std::size_t i = 0; i < sizeof pad; i += 1024) pad[i] = 0;
}

// A heap with nothing left to give: every free chunk taken, the address space at its limit.
class ExhaustedHeap {
 public:
  ExhaustedHeap() {
    touch_stack();
    set_soft_limit(RLIMIT_AS, static_cast<rlim_t>(vm_size()));
    for (std::size_t size = 4 * kMiB; size >= 1; size /= 2) {
      while (void* p = std::malloc(size < sizeof(void*) ? sizeof(void*) : size)) {
        *static_cast<void**>(p) = head_;
        head_ = p;
      }
    }
  }
  ~ExhaustedHeap() { release(); }
  void release() {
    while (head_) {
      void* next = *static_cast<void**>(head_);
      std::free(head_);
      head_ = next;
    }
    set_soft_limit(RLIMIT_AS, RLIM_INFINITY);
  }

 private:
  void* head_ = nullptr;
};

TEST(ExhaustionMemory, ProcessStartWithoutHeapThrowsAndTheProcessStartsLater) {
  SKIP_IF_SANITIZED();
  run_case([] {
    // A running child, so that registering the next one must grow the registry.
    mproc::Process sleeper([] {
      std::this_thread::sleep_for(60s);
      return 0;
    });
    sleeper.start();
    mproc::Process p([] { return 7; });
    const Held before = held_now();
    bool started = false;
    enum { kNone, kSystemError, kBadAlloc, kOther } thrown = kNone;
    int code = 0;
    static char what[512];
    {
      ExhaustedHeap heap;
      try {
        p.start();
        started = true;
      } catch (const std::system_error& e) {
        thrown = kSystemError;
        code = e.code().value();
        std::snprintf(what, sizeof what, "%s", e.what());
      } catch (const std::bad_alloc&) {
        thrown = kBadAlloc;
      } catch (const std::exception& e) {
        thrown = kOther;
        std::snprintf(what, sizeof what, "%s", e.what());
      }
    }
    append(std::string("Process::start without heap: ") + (started               ? "started"
                                                           : thrown == kBadAlloc ? "std::bad_alloc"
                                                                                 : what));
    if (!started) {
      CASE_CHECK(thrown == kBadAlloc || (thrown == kSystemError && code == ENOMEM),
                 std::string("Process::start without heap threw: ") + what);
      check_nothing_leaked(before, "Process::start without heap");
      CASE_CHECK(attempt_checked(
                     "Process::start with the heap back", [&] { p.start(); },
                     Expect{{}, {"Process::start"}, kProcessResources}),
                 "the Process does not start once memory is back");
    }
    CASE_CHECK(attempt_checked(
                   "join", [&] { CASE_CHECK(p.join(30s) && p.exitcode() == 7, "wrong exit code"); },
                   Expect{}),
               "cannot join the process started once memory is back");
    sleeper.kill();
    CASE_CHECK(sleeper.join(30s), "the sleeper did not die");
    return 0;
  });
}

TEST(ExhaustionMemory, PoolFailsClearlyLeaksNothingAndWorksAgain) {
  SKIP_IF_SANITIZED();
  run_case(
      [] {
        // From no room at all, a MiB at a time: every mapping and thread stack of the Pool.
        sweep_as("Pool", use_pool, {"Pool"}, kPoolResources, kMiB, 128, 0);
        return 0;
      },
      110s);
}

// ---------------------------------------------------------------------------------------------
// A small /dev/shm

// Gives this process a private mount namespace with a tmpfs of `size` on /dev/shm.
bool private_dev_shm(const char* size) {
  if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
            (std::string("size=") + size + ",mode=1777").c_str()) != 0) {
    append(std::string("cannot mount a private /dev/shm: ") + std::strerror(errno));
    return false;
  }
  g_all_shm = true;
  return true;
}

bool resize_dev_shm(const char* size) {
  if (mount("tmpfs", "/dev/shm", "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV,
            (std::string("size=") + size + ",mode=1777").c_str()) != 0) {
    fail(std::string("cannot resize /dev/shm: ") + std::strerror(errno));
    return false;
  }
  return true;
}

void check_shm_too_large(const std::string& label,
                         const std::function<mproc::SharedMemory()>& create) {
  const Held before = held_now();
  const Expect expect{{ENOSPC, ENOMEM},
                      {"SharedMemory"},
                      {"/dev/shm", "shared memory", "segment", "space", "fallocate"}};
  const bool created = attempt_checked(
      label + " larger than the free space of /dev/shm",
      [&] {
        mproc::SharedMemory s = create();
        // Writing to it would be SIGBUS: leave the pages alone, let the destructor unlink it.
        fail(label + " of " + std::to_string(s.size()) + " bytes succeeded on a 1 MiB /dev/shm");
      },
      expect);
  (void)created;  // a creation that succeeded has failed the case already
  check_nothing_leaked(before, label + " larger than /dev/shm");
}

TEST(ExhaustionDevShm, NamedSharedMemoryLargerThanTheFreeSpaceFailsClearlyAndWorksAgain) {
  run_case([] {
    if (!private_dev_shm("1m")) return kSkip;
    const std::string name = "mproc_exhaust_big";
    check_shm_too_large("SharedMemory::create(name)",
                        [&] { return mproc::SharedMemory::create(name, 4 * kMiB); });
    check_shm_too_large("SharedMemory::create(size)",
                        [] { return mproc::SharedMemory::create(4 * kMiB); });
    // A segment that fits goes on working when the space of another is missing.
    const Held before = held_now();
    step("fits, then does not");
    try {
      auto small = mproc::SharedMemory::create(name + "_small", 512 * 1024);
      std::memset(small.buf().data(), 1, small.size());
      check_shm_too_large("SharedMemory::create beside a segment",
                          [&] { return mproc::SharedMemory::create(name, 768 * 1024); });
      CASE_CHECK(small.buf()[small.size() - 1] == std::byte{1}, "the first segment changed");
    } catch (const std::exception& e) {
      fail(std::string("a segment that fits: ") + e.what());
    }
    check_nothing_leaked(before, "segments that fit");
    // The space comes back: the same creation works, and every byte can be written.
    if (!resize_dev_shm("16m")) return 1;
    step("after resizing /dev/shm");
    try {
      auto s = mproc::SharedMemory::create(name, 4 * kMiB);
      std::memset(s.buf().data(), 7, s.size());
      CASE_CHECK(s.buf()[s.size() - 1] == std::byte{7}, "the segment does not hold its bytes");
    } catch (const std::exception& e) {
      fail(std::string("SharedMemory::create once /dev/shm has room: ") + e.what());
    }
    check_nothing_leaked(before, "SharedMemory::create once /dev/shm has room");
    return 0;
  });
}

}  // namespace
