// The OS boundary's helpers (src/posix/): EINTR retries with a signal arriving during the wait,
// to_timespec's saturation, poll_until's deadline, exit-status decoding, socket pairs, demangling
// and the reader of a robust mutex's lock word.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>

#include "helpers/child.hpp"
#include "helpers/shared_page.hpp"
#include "posix/demangle.hpp"
#include "posix/error.hpp"
#include "posix/exit_status.hpp"
#include "posix/fd_io.hpp"
#include "posix/pidfd.hpp"
#include "posix/poll.hpp"
#include "posix/process_self.hpp"
#include "posix/region.hpp"
#include "posix/robust_mutex.hpp"
#include "posix/socket.hpp"
#include "posix/thread_id.hpp"
#include "posix/timespec.hpp"

using namespace std::chrono_literals;
using mproc::detail::Clock;
using mproc::detail::Expiry;

namespace {

// ---- to_timespec ---------------------------------------------------------------------------

TEST(ToTimespec, SplitsSecondsAndNanoseconds) {
  const timespec ts = mproc::detail::to_timespec(std::chrono::nanoseconds(3'000'000'007));
  EXPECT_EQ(ts.tv_sec, 3);
  EXPECT_EQ(ts.tv_nsec, 7);
}

TEST(ToTimespec, SaturatesNegativeDurationsToZero) {
  for (auto d : {std::chrono::nanoseconds(-1), std::chrono::nanoseconds(-2'500'000'000),
                 std::chrono::nanoseconds::min()}) {
    const timespec ts = mproc::detail::to_timespec(d);
    EXPECT_EQ(ts.tv_sec, 0);
    EXPECT_EQ(ts.tv_nsec, 0);
  }
}

TEST(ToTimespec, KeepsTheLargestDurationWithoutWrapping) {
  const timespec ts = mproc::detail::to_timespec(std::chrono::nanoseconds::max());
  if constexpr (sizeof(time_t) >= 8) {
    EXPECT_EQ(ts.tv_sec, std::numeric_limits<std::int64_t>::max() / 1'000'000'000);
    EXPECT_EQ(ts.tv_nsec, std::numeric_limits<std::int64_t>::max() % 1'000'000'000);
  } else {
    EXPECT_EQ(ts.tv_sec, std::numeric_limits<time_t>::max());
    EXPECT_EQ(ts.tv_nsec, 999'999'999);
  }
}

TEST(ToTimespec, AbsoluteTimeIsItsTimeSinceTheClocksEpoch) {
  const Clock::time_point t{std::chrono::seconds(12) + std::chrono::nanoseconds(34)};
  const timespec ts = mproc::detail::to_timespec(t);
  EXPECT_EQ(ts.tv_sec, 12);
  EXPECT_EQ(ts.tv_nsec, 34);
}

TEST(ToTimespec, TimeoutLeftIsNullWithoutDeadlineAndZeroAfterIt) {
  timespec storage{1, 1};
  EXPECT_EQ(mproc::detail::timeout_left(Expiry(), storage), nullptr);
  EXPECT_EQ(mproc::detail::timeout_left(Expiry(Clock::time_point::max()), storage), nullptr);
  const timespec* past = mproc::detail::timeout_left(Expiry(Clock::now() - 1s), storage);
  ASSERT_EQ(past, &storage);
  EXPECT_EQ(past->tv_sec, 0);
  EXPECT_EQ(past->tv_nsec, 0);
  const timespec* later = mproc::detail::timeout_left(Expiry(Clock::now() + 100s), storage);
  ASSERT_EQ(later, &storage);
  EXPECT_GT(later->tv_sec, 90);
  EXPECT_LE(later->tv_sec, 100);
}

// ---- EINTR ---------------------------------------------------------------------------------

std::atomic<int> g_signals{0};
extern "C" void count_signal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

// Installs a SIGUSR1 handler without SA_RESTART (so blocking calls fail with EINTR), and a pipe.
class InterruptedWait : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction sa {};
    sa.sa_handler = &count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &saved_), 0);
    ASSERT_EQ(pipe2(fds_, O_CLOEXEC), 0);
    g_signals.store(0);
  }
  void TearDown() override {
    sigaction(SIGUSR1, &saved_, nullptr);
    close(fds_[0]);
    close(fds_[1]);
  }

  // Sends SIGUSR1 to `thread` up to `count` times, 20 ms apart, so that most arrive while it waits
  // (fewer once `done`: the thread is gone), then waits until at least one has been handled.
  static void interrupt(pthread_t thread, int count, const std::atomic<bool>& done) {
    for (int i = 0; i < count && !done.load(); ++i) {
      std::this_thread::sleep_for(20ms);
      if (!done.load()) pthread_kill(thread, SIGUSR1);
    }
    ASSERT_TRUE(mproc_test::eventually([&] { return g_signals.load() >= 1; }, 10.0));
  }

  int fds_[2] = {-1, -1};
  struct sigaction saved_ {};
};

// The control case: the same setup makes a plain read fail with EINTR, so the next test's read
// did face interruptions.
TEST_F(InterruptedWait, PlainReadFailsWithEintr) {
  std::atomic<long> result{0};
  std::atomic<int> err{0};
  std::atomic<bool> done{false};
  std::thread reader([&] {
    char c;
    const long r = ::read(fds_[0], &c, 1);
    err = errno;
    result = r;
    done = true;
  });
  interrupt(reader.native_handle(), 5, done);
  ASSERT_EQ(write(fds_[1], "x", 1), 1);  // in case no signal hit the read
  reader.join();
  EXPECT_EQ(result.load(), -1);
  EXPECT_EQ(err.load(), EINTR);
}

TEST_F(InterruptedWait, RetryOnEintrResumesTheReadUntilDataArrives) {
  std::atomic<long> result{0};
  std::atomic<char> got{0};
  std::atomic<bool> done{false};
  std::thread reader([&] {
    char c = 0;
    result = mproc::detail::retry_on_eintr([&] { return ::read(fds_[0], &c, 1); });
    got = c;
    done = true;
  });
  interrupt(reader.native_handle(), 5, done);
  ASSERT_EQ(write(fds_[1], "x", 1), 1);
  reader.join();
  EXPECT_EQ(result.load(), 1);
  EXPECT_EQ(got.load(), 'x');
  EXPECT_GE(g_signals.load(), 5);
}

TEST_F(InterruptedWait, PollUntilKeepsWaitingUntilItsDeadlineThroughSignals) {
  std::atomic<int> ready{-1};
  std::atomic<int> err{-1};
  std::atomic<bool> after_deadline{false};
  std::atomic<bool> done{false};
  std::thread poller([&] {
    const auto deadline = Clock::now() + 300ms;
    pollfd p{fds_[0], POLLIN, 0};
    int n = -1;
    err = mproc::detail::poll_until(&p, 1, Expiry(deadline), n).value();
    after_deadline = Clock::now() >= deadline;
    ready = n;
    done = true;
  });
  interrupt(poller.native_handle(), 5, done);
  poller.join();
  EXPECT_EQ(err.load(), 0);
  EXPECT_EQ(ready.load(), 0);  // timed out: nothing was written
  EXPECT_TRUE(after_deadline.load()) << "a signal ended the wait before its deadline";
}

TEST_F(InterruptedWait, WaitReadableReportsDataThatArrivesAfterSignals) {
  std::atomic<bool> ready{false};
  std::atomic<int> err{-1};
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    bool r = false;
    err = mproc::detail::wait_readable(fds_[0], Expiry(Clock::now() + 30s), r).value();
    ready = r;
    done = true;
  });
  interrupt(waiter.native_handle(), 5, done);
  ASSERT_EQ(write(fds_[1], "x", 1), 1);
  waiter.join();
  EXPECT_EQ(err.load(), 0);
  EXPECT_TRUE(ready.load());
}

TEST(PollUntil, DeadlineThatHasPassedPollsOnce) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  pollfd p{fds[0], POLLIN, 0};
  int n = -1;
  EXPECT_FALSE(mproc::detail::poll_until(&p, 1, Expiry(Clock::now() - 1s), n));
  EXPECT_EQ(n, 0);
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  EXPECT_FALSE(mproc::detail::poll_until(&p, 1, Expiry(Clock::now() - 1s), n));
  EXPECT_EQ(n, 1);
  close(fds[0]);
  close(fds[1]);
}

TEST(PollUntil, WaitReadableOnAClosedDescriptorIsEbadf) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  close(fds[0]);
  close(fds[1]);
  bool ready = true;
  EXPECT_EQ(mproc::detail::wait_readable(fds[0], Expiry(Clock::now() + 1s), ready),
            std::errc::bad_file_descriptor);
  EXPECT_FALSE(ready);
}

// ---- exit status ---------------------------------------------------------------------------

// Forks a child that runs `body` (which ends it) and returns its pid.
template <class Body>
pid_t fork_child(Body body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) body();
  return pid;
}

TEST(ExitStatus, ReapBlockingDecodesAnExitCode) {
  const pid_t pid = fork_child([] { _exit(3); });
  ASSERT_GT(pid, 0);
  int code = -100;
  ASSERT_FALSE(mproc::detail::reap_blocking(pid, code));
  EXPECT_EQ(code, 3);
}

TEST(ExitStatus, ReapBlockingDecodesADeathBySignal) {
  const pid_t pid = fork_child([] {
    raise(SIGKILL);
    _exit(0);
  });
  ASSERT_GT(pid, 0);
  int code = 0;
  ASSERT_FALSE(mproc::detail::reap_blocking(pid, code));
  EXPECT_EQ(code, -SIGKILL);
}

TEST(ExitStatus, TryReapDecodesTheSameWayThroughAPidfd) {
  const pid_t pid = fork_child([] { _exit(42); });
  ASSERT_GT(pid, 0);
  int pidfd = -1;
  ASSERT_FALSE(mproc::detail::open_pidfd(pid, pidfd));
  bool ready = false;
  ASSERT_FALSE(mproc::detail::wait_readable(pidfd, Expiry(Clock::now() + 30s), ready));
  ASSERT_TRUE(ready);
  bool exited = false;
  int code = 0;
  for (int i = 0; i < 1000 && !exited; ++i) {  // readable a moment before it is waitable
    ASSERT_FALSE(mproc::detail::try_reap(pidfd, exited, code));
    if (!exited) std::this_thread::sleep_for(1ms);
  }
  mproc::detail::close_fd(pidfd);
  ASSERT_TRUE(exited);
  EXPECT_EQ(code, 42);
}

TEST(ExitStatus, ReapBlockingOfANonChildIsEchild) {
  int code = 7;
  EXPECT_EQ(mproc::detail::reap_blocking(getpid(), code), std::errc::no_child_process);
  EXPECT_EQ(code, 7);
}

TEST(ExitStatus, DecodesSiginfo) {
  siginfo_t info{};
  info.si_code = CLD_EXITED;
  info.si_status = 5;
  EXPECT_EQ(mproc::detail::exitcode_from_siginfo(info), 5);
  info.si_code = CLD_KILLED;
  info.si_status = SIGTERM;
  EXPECT_EQ(mproc::detail::exitcode_from_siginfo(info), -SIGTERM);
  info.si_code = CLD_DUMPED;
  info.si_status = SIGSEGV;
  EXPECT_EQ(mproc::detail::exitcode_from_siginfo(info), -SIGSEGV);
}

TEST(ExitStatus, DescribesExitCodesAndSignals) {
  EXPECT_EQ(mproc::detail::describe_exitcode(0), "exited with code 0");
  EXPECT_EQ(mproc::detail::describe_exitcode(3), "exited with code 3");
  EXPECT_EQ(mproc::detail::describe_exitcode(-SIGKILL), "killed by signal 9 (SIGKILL)");
}

// ---- sockets -------------------------------------------------------------------------------

TEST(SocketPair, IsCloseOnExecAndConnected) {
  int fds[2] = {-1, -1};
  ASSERT_FALSE(mproc::detail::socket_pair(SOCK_SEQPACKET, fds));
  EXPECT_NE(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(fcntl(fds[1], F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(send(fds[0], "ab", 2, 0), 2);
  ASSERT_EQ(send(fds[0], "c", 1, 0), 1);
  char buf[8];
  EXPECT_EQ(recv(fds[1], buf, sizeof buf, 0), 2);  // SEQPACKET keeps each message's boundary
  EXPECT_EQ(recv(fds[1], buf, sizeof buf, 0), 1);
  ASSERT_FALSE(mproc::detail::shutdown_socket(fds[0], SHUT_WR));
  EXPECT_EQ(recv(fds[1], buf, sizeof buf, 0), 0);
  close(fds[0]);
  close(fds[1]);
}

TEST(SocketPair, AnUnknownTypeIsAnErrorAndLeavesTheArray) {
  int fds[2] = {-7, -7};
  EXPECT_TRUE(mproc::detail::socket_pair(12345, fds));
  EXPECT_EQ(fds[0], -7);
  EXPECT_EQ(fds[1], -7);
}

TEST(SocketPair, SendAllAndRecvAllMoveWholeMessagesAndReportEof) {
  int fds[2] = {-1, -1};
  ASSERT_FALSE(mproc::detail::socket_pair(SOCK_STREAM, fds));
  const char msg[6] = "hello";
  ASSERT_FALSE(mproc::detail::send_all(fds[0], msg, sizeof msg));
  char in[6] = {};
  std::size_t got = 0;
  mproc::detail::recv_all(fds[1], in, sizeof in, got);
  EXPECT_EQ(got, sizeof in);
  EXPECT_STREQ(in, "hello");
  ASSERT_FALSE(mproc::detail::send_all(fds[0], "ab", 2));
  close(fds[0]);
  mproc::detail::recv_all(fds[1], in, sizeof in, got);  // 2 bytes, then EOF
  EXPECT_EQ(got, 2u);
  EXPECT_EQ(mproc::detail::send_all(fds[1], "x", 1), std::errc::broken_pipe);  // peer gone: EPIPE
  close(fds[1]);
}

TEST(FdIo, WriteAllWritesEverythingAndReportsAClosedReader) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  ASSERT_FALSE(mproc::detail::write_all(fds[1], "abc", 3));
  char in[4] = {};
  std::size_t got = 0;
  ASSERT_FALSE(mproc::detail::read_some(fds[0], in, sizeof in, got));
  EXPECT_EQ(got, 3u);
  EXPECT_STREQ(in, "abc");
  EXPECT_FALSE(mproc::detail::is_terminal(fds[0]));
  std::size_t columns = 0;
  EXPECT_FALSE(mproc::detail::terminal_columns(fds[0], columns));
  close(fds[0]);
  {
    mproc::detail::SigpipeGuard guard;
    const auto ec = mproc::detail::write_all(fds[1], "x", 1);
    EXPECT_EQ(ec, std::errc::broken_pipe);
    if (ec == std::errc::broken_pipe) guard.raised();
  }
  close(fds[1]);
}

// ---- the process itself --------------------------------------------------------------------

TEST(ProcessSelf, ParentDeathSignalIsSetInTheChildAndParentPidIsOurs) {
  const pid_t self = getpid();
  mproc_test::Child child([self] {
    // (the helper's Child has set SIGKILL already)
    mproc::detail::set_parent_death_signal(0);
    if (mproc::detail::parent_death_signal() != 0) return 1;
    mproc::detail::set_parent_death_signal(SIGTERM);
    if (mproc::detail::parent_death_signal() != SIGTERM) return 2;
    mproc::detail::set_parent_death_signal(SIGKILL);
    if (mproc::detail::parent_pid() != self) return 3;
    mproc::detail::exit_group(7);
  });
  EXPECT_EQ(child.wait(), 7);
}

TEST(ProcessSelf, CpuCountsArePositiveAndTheAffinityFitsTheMachine) {
  EXPECT_GE(mproc::detail::online_cpu_count(), 1);
  int n = 0;
  ASSERT_FALSE(mproc::detail::affinity_cpu_count(n));
  EXPECT_GE(n, 1);
  EXPECT_LE(n, static_cast<int>(sysconf(_SC_NPROCESSORS_CONF)));
}

TEST(ProcessSelf, SharedAnonymousMemoryIsSharedWithAForkedChild) {
  void* at = nullptr;
  ASSERT_FALSE(mproc::detail::map_shared_anonymous(4096, at));
  auto* word = static_cast<std::atomic<int>*>(at);
  EXPECT_EQ(word->load(), 0);  // zero-filled
  mproc_test::Child child([word] {
    word->store(42);
    return 0;
  });
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(word->load(), 42);
  mproc::detail::unmap(at, 4096);
}

// ---- demangling ----------------------------------------------------------------------------

TEST(Demangle, GivesTheSourceNameOfAType) {
  EXPECT_EQ(mproc::detail::demangle(typeid(std::invalid_argument).name()), "std::invalid_argument");
  EXPECT_EQ(mproc::detail::demangle("not a mangled name"), "not a mangled name");
}

TEST(Demangle, NamesTheExceptionBeingHandled) {
  EXPECT_EQ(mproc::detail::current_exception_type_name(), "unknown exception");
  try {
    throw std::out_of_range("x");
  } catch (...) {
    EXPECT_EQ(mproc::detail::current_exception_type_name(), "std::out_of_range");
  }
}

// ---- the robust mutex's lock word ----------------------------------------------------------

struct SharedMutex {
  pthread_mutex_t m;
};

TEST(RobustMutexWord, NamesTheOwnerWhileHeldAndNobodyWhenFree) {
  mproc_test::SharedPage<SharedMutex> page;
  mproc::detail::robust_mutex_init(page->m);
  EXPECT_EQ(mproc::detail::robust_mutex_word(page->m).owner, 0);
  ASSERT_EQ(mproc::detail::robust_mutex_trylock(page->m), 0);
  EXPECT_EQ(mproc::detail::robust_mutex_word(page->m).owner, mproc::detail::this_thread_id());
  EXPECT_FALSE(mproc::detail::robust_mutex_word(page->m).owner_died);
  EXPECT_TRUE(mproc::detail::thread_alive_in_this_process(mproc::detail::this_thread_id()));
  ASSERT_EQ(mproc::detail::robust_mutex_unlock(page->m), 0);
  EXPECT_EQ(mproc::detail::robust_mutex_word(page->m).owner, 0);
}

TEST(RobustMutexWord, SaysOwnerDiedAfterItsHolderIsKilled) {
  mproc_test::SharedPage<SharedMutex> page;
  mproc::detail::robust_mutex_init(page->m);
  mproc_test::Child child([&] {
    if (mproc::detail::robust_mutex_trylock(page->m) != 0) return 1;
    raise(SIGKILL);
    return 2;
  });
  EXPECT_EQ(child.wait(), -SIGKILL);
  const auto word = mproc::detail::robust_mutex_word(page->m);
  EXPECT_TRUE(word.owner_died);
  EXPECT_EQ(word.owner, 0);
  ASSERT_EQ(mproc::detail::robust_mutex_trylock(page->m), EOWNERDEAD);
  EXPECT_EQ(mproc::detail::robust_mutex_word(page->m).owner, mproc::detail::this_thread_id());
  mproc::detail::robust_mutex_make_consistent(page->m);
  EXPECT_EQ(mproc::detail::robust_mutex_unlock(page->m), 0);
}

TEST(RobustMutexWord, TimedLockGivesUpAtItsDeadline) {
  mproc_test::SharedPage<SharedMutex> page;
  mproc::detail::robust_mutex_init(page->m);
  ASSERT_EQ(mproc::detail::robust_mutex_trylock(page->m), 0);
  int r = -1;
  std::thread other(
      [&] { r = mproc::detail::robust_mutex_lock_until(page->m, Clock::now() + 50ms); });
  other.join();
  EXPECT_EQ(r, ETIMEDOUT);
  EXPECT_EQ(mproc::detail::robust_mutex_unlock(page->m), 0);
}

}  // namespace
