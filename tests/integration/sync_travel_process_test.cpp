// sync_travel_process_test.cpp — locks, Semaphore, Condition, Event, Barrier, Value, Array and
// SharedMemory reach a process that could not have inherited them, and work there against the
// sender: each child is forked BEFORE the handle exists and receives it through
// helpers/travel_pipe.hpp (bytes, then the descriptors over SCM_RIGHTS), as a forkserver child
// receives its arguments; one test executes a fresh program (tests/helpers/travel_receiver_main)
// that receives them on an inherited socket, as a spawned child does.
//
// Parent and child also exchange one-byte messages on the same socket to order their steps; every
// wait is bounded (poll timeouts, Child::wait, the watchdog).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>
#include <set>
#include <string>
#include <tuple>

#include "helpers/child.hpp"
#include "helpers/travel_pipe.hpp"
#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::Child;
using mproc_test::recv_value;
using mproc_test::send_value;
using mproc_test::Watchdog;

// A SOCK_SEQPACKET pair: [0] the parent's end, [1] the child's.
struct Channel {
  int fd[2] = {-1, -1};
  Channel() {
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fd) != 0) std::abort();
  }
  ~Channel() {
    for (int f : fd) {
      if (f >= 0) close(f);
    }
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  int parent() const { return fd[0]; }
  int child() const { return fd[1]; }
};

bool readable(int fd, std::chrono::milliseconds timeout = 20s) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

void say(int fd, char c) { (void)send(fd, &c, 1, MSG_NOSIGNAL); }

// The next one-byte message, or 0 when none came within the timeout.
char hear(int fd, std::chrono::milliseconds timeout = 20s) {
  char c = 0;
  if (!readable(fd, timeout) || recv(fd, &c, 1, 0) != 1) return 0;
  return c;
}

// As send_value, for several values in one message, encoded one after the other: what a
// std::tuple of them encodes to (the members in order, no framing), without copying them into a
// tuple (SharedMemory is move-only).
template <class... Ts>
void send_values(int sock, const Ts&... vs) {
  mproc::detail::Descriptors fds;
  std::vector<std::byte> bytes;
  {
    mproc::detail::TravelOut scope(fds);
    bytes.resize((mproc::encoded_size(vs) + ...));
    mproc::Writer w(bytes.data(), bytes.data() + bytes.size());
    (mproc::encode(w, vs), ...);
  }
  const std::uint64_t count = fds.size();
  std::vector<std::byte> msg(sizeof count + bytes.size());
  std::memcpy(msg.data(), &count, sizeof count);
  std::memcpy(msg.data() + sizeof count, bytes.data(), bytes.size());
  ASSERT_EQ(send(sock, msg.data(), msg.size(), MSG_NOSIGNAL), static_cast<ssize_t>(msg.size()));
  for (std::size_t i = 0; i < fds.size(); ++i) {
    ASSERT_FALSE(mproc::detail::send_fd(sock, i, fds.fds()[i]));
  }
}

// In a child: waits (bounded) for the value to arrive, then receives it.
template <class T>
T receive_in_child(int sock) {
  if (!readable(sock)) std::_Exit(90);
  return recv_value<T>(sock);
}

TEST(HandleTravelAcrossProcesses, ALockTakenByAChildThatReceivedItIsHeldForTheParent) {
  Watchdog dog;
  Channel ch;
  Child child([&] {
    auto lock = receive_in_child<mproc::Lock>(ch.child());
    if (!lock.acquire(10s)) return 1;
    say(ch.child(), 'a');  // holding it
    if (hear(ch.child()) != 'r') return 2;
    lock.release();
    say(ch.child(), 'b');
    return 0;
  });
  mproc::Lock lock;  // made after the fork: the child can only have it by receiving it
  send_value(ch.parent(), lock);
  ASSERT_EQ(hear(ch.parent()), 'a');
  EXPECT_FALSE(lock.try_acquire());
  say(ch.parent(), 'r');
  EXPECT_EQ(hear(ch.parent()), 'b');
  EXPECT_TRUE(lock.try_acquire());
  EXPECT_FALSE(lock.owner_died());
  lock.release();
  EXPECT_EQ(child.wait(), 0);
}

TEST(HandleTravelAcrossProcesses, AReceiverKilledHoldingALockLeavesItToTheSenderWithOwnerDied) {
  Watchdog dog;
  Channel ch;
  Child child([&] {
    auto lock = receive_in_child<mproc::RLock>(ch.child());
    lock.acquire();
    lock.acquire();
    say(ch.child(), 'a');
    (void)hear(ch.child(), 60s);  // killed here
    return 0;
  });
  mproc::RLock lock;
  send_value(ch.parent(), lock);
  ASSERT_EQ(hear(ch.parent()), 'a');
  EXPECT_FALSE(lock.try_acquire());
  child.kill(SIGKILL);
  EXPECT_EQ(child.wait(), -SIGKILL);
  ASSERT_TRUE(lock.acquire(10s));
  EXPECT_TRUE(lock.owner_died());
  EXPECT_EQ(lock.depth(), 1u);
  lock.release();
  EXPECT_FALSE(lock.is_owned());
}

TEST(HandleTravelAcrossProcesses, ConditionNotifyWakesAChildThatReceivedIt) {
  Watchdog dog;
  Channel ch;
  Child child([&] {
    auto [cond, flag] =
        receive_in_child<std::tuple<mproc::Condition, mproc::Value<int>>>(ch.child());
    cond.acquire();
    say(ch.child(), 'w');  // in wait() (and so past the lock) once the parent holds the lock
    const bool notified = cond.wait(20s);
    const int seen = flag.get();
    cond.release();
    return notified && seen == 7 ? 0 : 1;
  });
  mproc::Condition cond{mproc::Lock()};
  mproc::Value<int> flag(0, mproc::no_lock);
  send_value(ch.parent(), std::make_tuple(cond, flag));
  ASSERT_EQ(hear(ch.parent()), 'w');
  ASSERT_TRUE(cond.acquire(10s));  // the child released it in wait()
  flag.set(7);
  cond.notify();
  cond.release();
  EXPECT_EQ(child.wait(), 0);
}

TEST(HandleTravelAcrossProcesses, SemaphoreCountsAreShared) {
  Watchdog dog;
  Channel ch;
  Child child([&] {
    auto [sem, bounded] =
        receive_in_child<std::tuple<mproc::Semaphore, mproc::BoundedSemaphore>>(ch.child());
    if (!sem.acquire(10s)) return 1;  // blocks until the parent releases
    sem.release(3);
    if (!bounded.try_acquire()) return 2;
    bounded.release();
    try {
      bounded.release();  // above its bound, which travelled in the shared state
      return 3;
    } catch (const mproc::ValueError&) {
    }
    if (!bounded.try_acquire()) return 4;
    return 0;
  });
  mproc::Semaphore sem(0);
  mproc::BoundedSemaphore bounded(1);
  send_value(ch.parent(), std::make_tuple(sem, bounded));
  sem.release();
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(sem.get_value(), 3);
  EXPECT_EQ(bounded.get_value(), 0);
}

TEST(HandleTravelAcrossProcesses, AnEventSetInEitherProcessWakesTheOther) {
  Watchdog dog;
  Channel ch;
  Child child([&] {
    auto [to_parent, to_child] =
        receive_in_child<std::tuple<mproc::Event, mproc::Event>>(ch.child());
    to_parent.set();
    return to_child.wait(20s) ? 0 : 1;
  });
  mproc::Event to_parent;
  mproc::Event to_child;
  send_value(ch.parent(), std::make_tuple(to_parent, to_child));
  EXPECT_TRUE(to_parent.wait(20s));
  to_child.set();
  EXPECT_EQ(child.wait(), 0);
}

TEST(HandleTravelAcrossProcesses, ABarrierPassesWithThreeProcessesThatReceivedIt) {
  Watchdog dog;
  Channel a;
  Channel b;
  auto party = [](int sock) {
    return [sock] {
      auto barrier = receive_in_child<mproc::Barrier>(sock);
      const int index = barrier.wait(20s);
      return 10 + index;
    };
  };
  Child first(party(a.child()));
  Child second(party(b.child()));
  mproc::Barrier barrier(3);
  send_value(a.parent(), barrier);
  send_value(b.parent(), barrier);
  std::set<int> indices;
  indices.insert(barrier.wait(20s));
  indices.insert(first.wait() - 10);
  indices.insert(second.wait() - 10);
  EXPECT_EQ(indices, (std::set<int>{0, 1, 2}));
  EXPECT_FALSE(barrier.broken());
}

TEST(HandleTravelAcrossProcesses, ValueAndArrayWritesAreSeenBothWaysAndTheLockIsShared) {
  Watchdog dog;
  Channel ch;
  Child child([&] {
    auto [v, a] =
        receive_in_child<std::tuple<mproc::Value<long>, mproc::Array<double>>>(ch.child());
    if (v.get() != 5 || a.size() != 4 || a[0] != 1.5) return 1;
    v.set(6);
    a[3] = 2.5;
    v.get_lock().acquire();
    say(ch.child(), 'l');
    if (hear(ch.child()) != 'r') return 2;
    v.get_lock().release();
    return 0;
  });
  mproc::Value<long> v(5);
  mproc::Array<double> a(4, mproc::no_lock);
  a[0] = 1.5;
  send_value(ch.parent(), std::make_tuple(v, a));
  ASSERT_EQ(hear(ch.parent()), 'l');
  EXPECT_EQ(v.get_obj(), 6);  // without the lock: the child holds it
  EXPECT_EQ(a[3], 2.5);
  EXPECT_FALSE(v.get_lock().try_acquire());
  say(ch.parent(), 'r');
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(v.get(), 6);
}

TEST(HandleTravelAcrossProcesses, SharedMemoryBytesAreSharedAndTheReceiverNeverUnlinks) {
  Watchdog dog;
  Channel ch;
  Child child([&] {
    auto [anon, named] =
        receive_in_child<std::tuple<mproc::SharedMemory, mproc::SharedMemory>>(ch.child());
    if (anon.buf()[0] != std::byte{1} || named.buf()[0] != std::byte{2}) return 1;
    if (named.owns_name() || !anon.name().empty()) return 2;
    anon.buf()[1] = std::byte{3};
    named.buf()[1] = std::byte{4};
    // the name, as the parent reports it
    const std::string& n = named.name();
    if (send(ch.child(), n.data(), n.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(n.size()))
      return 3;
    return 0;  // the handles go here: nothing is unlinked
  });
  auto anon = mproc::SharedMemory::anonymous(64);
  auto named = mproc::SharedMemory::create(64);
  anon.buf()[0] = std::byte{1};
  named.buf()[0] = std::byte{2};
  send_values(ch.parent(), anon, named);
  ASSERT_TRUE(readable(ch.parent()));
  char name[300] = {};
  const ssize_t n = recv(ch.parent(), name, sizeof name - 1, 0);
  EXPECT_EQ(std::string(name, n > 0 ? static_cast<std::size_t>(n) : 0), named.name());
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(anon.buf()[1], std::byte{3});
  EXPECT_EQ(named.buf()[1], std::byte{4});
  auto again = mproc::SharedMemory::attach(named.name());  // still there
  EXPECT_EQ(again.buf()[1], std::byte{4});
}

std::string helper(const std::string& name) {
  namespace fs = std::filesystem;
  const char* dir = std::getenv("MPROC_TEST_HELPERS");
  fs::path base = dir && *dir ? fs::path(dir) : fs::read_symlink("/proc/self/exe").parent_path();
  return (base / name).string();
}

TEST(HandleTravelAcrossProcesses, AFreshlyExecutedProgramReceivesALockAnEventAndSharedMemory) {
  Watchdog dog;
  Channel ch;
  const std::string exe = helper("travel_receiver_main");
  mproc::Lock lock;
  mproc::Event ready;
  auto shm = mproc::SharedMemory::anonymous(4096);
  Child child([&] {
    // The child's end, without close-on-exec, at a number of its own.
    const int sock = fcntl(ch.child(), F_DUPFD, 10);
    if (sock < 0) return 120;
    const std::string arg = std::to_string(sock);
    execl(exe.c_str(), exe.c_str(), arg.c_str(), static_cast<char*>(nullptr));
    return 127;
  });
  send_values(ch.parent(), lock, ready, shm);
  ASSERT_TRUE(ready.wait(20s)) << "the helper exited with " << child.wait(1s);
  EXPECT_EQ(std::memcmp(shm.buf().data(), "hello", 5), 0);
  EXPECT_FALSE(lock.try_acquire());  // the helper holds it
  say(ch.parent(), 'r');
  EXPECT_EQ(hear(ch.parent()), 'k');
  EXPECT_EQ(child.wait(), 0);
  EXPECT_TRUE(lock.try_acquire());
  lock.release();
}

}  // namespace
