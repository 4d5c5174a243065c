// Queues and Connections that travel to a process which could not have inherited them: a child
// forked before the handle existed receives it over a socket (bytes, then descriptors by
// SCM_RIGHTS, tests/helpers/travel_pipe.hpp) and uses it against the parent; a freshly executed
// program (tests/helpers/channel_travel_main.cpp) does the same with a socket it inherited, as a
// spawned child does; and the handles as arguments of a mproc::Process under each start method.
// Every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mproc/detail/travel.hpp>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <mproc/start_method.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/queue_access.hpp"
#include "helpers/travel_pipe.hpp"
#include "helpers/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_test::Child;

// A SOCK_SEQPACKET pair (close-on-exec), closed at the end of the test.
struct SocketPair {
  SocketPair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fd), 0); }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) close(f);
  }
  int fd[2] = {-1, -1};
};

// Exit codes of a child: 0 success, 10+ a failed step.
constexpr int kOk = 0;

TEST(ChannelTravel, QueueReachesAChildForkedBeforeItExisted) {
  mproc_test::Watchdog dog;
  SocketPair sp;
  constexpr int kItems = 2000;
  Child child([&] {
    auto q = mproc_test::recv_value<mproc::Queue<int>>(sp.fd[1]);
    for (int i = 0; i < kItems; ++i) q.put(i);
    // And the other way: what the parent puts once it has taken every item (it says so first,
    // so that this get cannot take one of the child's own items).
    char go = 0;
    if (recv(sp.fd[1], &go, 1, 0) != 1) return 11;
    return q.get(30s) == -1 ? kOk : 10;
  });
  mproc::Queue<int> q(0, {.capacity = 4096});  // small: the child blocks while the parent drains
  mproc_test::send_value(sp.fd[0], q);
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(q.get(30s), i);
  q.put(-1);
  ASSERT_EQ(send(sp.fd[0], "g", 1, MSG_NOSIGNAL), 1);
  EXPECT_EQ(child.wait(30s), kOk);
  EXPECT_EQ(q.qsize(), 0u);
}

TEST(ChannelTravel, SimpleQueueReachesAChildForkedBeforeItExisted) {
  mproc_test::Watchdog dog;
  SocketPair sp;
  Child child([&] {
    auto q = mproc_test::recv_value<mproc::SimpleQueue<std::string>>(sp.fd[1]);
    const std::string got = q.get(30s);
    q.put(got + " back");
    return kOk;
  });
  mproc::SimpleQueue<std::string> q;
  mproc_test::send_value(sp.fd[0], q);
  q.put("there");
  EXPECT_EQ(child.wait(30s), kOk);  // one get, one put: the reply waits for us
  EXPECT_EQ(q.get(5s), "there back");
  EXPECT_TRUE(q.empty());
}

TEST(ChannelTravel, JoinableQueueJoinReturnsAfterTheChildsTaskDone) {
  mproc_test::Watchdog dog;
  SocketPair sp;
  constexpr int kItems = 50;
  Child child([&] {
    auto q = mproc_test::recv_value<mproc::JoinableQueue<int>>(sp.fd[1]);
    int sum = 0;
    for (int i = 0; i < kItems; ++i) {
      sum += q.get(30s);
      q.task_done();
    }
    return sum == kItems * (kItems - 1) / 2 ? kOk : 10;
  });
  mproc::JoinableQueue<int> q;
  for (int i = 0; i < kItems; ++i) q.put(i);
  EXPECT_FALSE(q.join(0s));
  mproc_test::send_value(sp.fd[0], q);
  EXPECT_TRUE(q.join(30s));
  EXPECT_EQ(child.wait(30s), kOk);
  EXPECT_THROW(q.task_done(), mproc::ValueError);
}

TEST(ChannelTravel, ConnectionReachesAChildAndWorksBothWays) {
  mproc_test::Watchdog dog;
  SocketPair sp;
  Child child([&] {
    auto conn = mproc_test::recv_value<mproc::Connection>(sp.fd[1]);
    const auto v = conn.recv<std::vector<int>>();
    conn.send(static_cast<int>(v.size()));
    conn.send_bytes(std::as_bytes(std::span(v)));
    return kOk;
  });
  auto [mine, theirs] = mproc::Pipe();
  mproc_test::send_value(sp.fd[0], theirs);
  EXPECT_FALSE(theirs.closed());  // the sender keeps its end (Python's semantics)
  theirs.close();                 // as a start method does once the child has it
  const std::vector<int> v{1, 2, 3, 4};
  mine.send(v);
  EXPECT_EQ(mine.recv<int>(), 4);
  EXPECT_EQ(mine.recv_bytes().size(), 4 * sizeof(int));
  EXPECT_EQ(child.wait(30s), kOk);
  // The child's copy went with it, ours is closed: the peer is gone.
  EXPECT_THROW((void)mine.recv<int>(), mproc::EOFError);
}

TEST(ChannelTravel, SeveralHandlesInOneValue) {
  mproc_test::Watchdog dog;
  SocketPair sp;
  Child child([&] {
    auto [jobs, results, conn] = mproc_test::recv_value<
        std::tuple<mproc::JoinableQueue<int>, mproc::Queue<long>, mproc::Connection>>(sp.fd[1]);
    for (;;) {
      const int x = jobs.get(30s);
      jobs.task_done();
      if (x < 0) break;
      results.put(static_cast<long>(x) * x);
    }
    conn.send(std::string("done"));
    return kOk;
  });
  mproc::JoinableQueue<int> jobs;
  mproc::Queue<long> results;
  auto [mine, theirs] = mproc::Pipe();
  mproc_test::send_value(sp.fd[0], std::make_tuple(jobs, results, std::move(theirs)));
  theirs.close();
  for (int i = 0; i < 10; ++i) jobs.put(i);
  jobs.put(-1);
  EXPECT_TRUE(jobs.join(30s));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(results.get(30s), static_cast<long>(i) * i);
  EXPECT_EQ(mine.recv<std::string>(), "done");
  EXPECT_EQ(child.wait(30s), kOk);
}

std::string helper(const std::string& name) {
  namespace fs = std::filesystem;
  const char* dir = std::getenv("MPROC_TEST_HELPERS");
  fs::path base = dir && *dir ? fs::path(dir) : fs::read_symlink("/proc/self/exe").parent_path();
  return (base / name).string();
}

TEST(ChannelTravel, QueueAndConnectionReachAFreshlyExecutedProgram) {
  mproc_test::Watchdog dog;
  const std::string exe = helper("channel_travel_main");
  ASSERT_EQ(access(exe.c_str(), X_OK), 0) << exe;
  SocketPair sp;
  Child child([&] {
    // The helper inherits only its end of the socket, as descriptor 3 (dup2 clears CLOEXEC).
    if (sp.fd[1] == 3 ? fcntl(3, F_SETFD, 0) != 0 : dup2(sp.fd[1], 3) < 0) return 20;
    execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
    return 21;
  });
  close(sp.fd[1]);
  sp.fd[1] = -1;
  mproc::Queue<int> q(0, {.capacity = 4096});
  auto [mine, theirs] = mproc::Pipe();
  mproc_test::send_value(sp.fd[0], std::make_tuple(q, std::move(theirs)));
  theirs.close();
  constexpr int kItems = 500;
  mine.send(kItems);
  for (int i = 0; i < kItems; ++i) ASSERT_EQ(q.get(30s), i);
  EXPECT_EQ(mine.recv<std::string>(), "ok");
  EXPECT_EQ(child.wait(30s), 0);
}

TEST(ChannelTravel, ReceiverKilledMidPutLeavesTheQueueToTheSender) {
  mproc_test::Watchdog dog;
  SocketPair sp;
  Child child([&] {
    auto q = mproc_test::recv_value<mproc::Queue<std::string>>(sp.fd[1]);
    q.put("whole");
    // A message larger than a quarter of the ring streams; with nobody reading it blocks
    // half-way, holding the producer lock, until the parent kills this process.
    q.put(std::string(256 * 1024, 'x'));
    return 10;  // never reached
  });
  mproc::Queue<std::string> q(0, {.capacity = 4096});
  mproc_test::send_value(sp.fd[0], q);
  EXPECT_EQ(q.get(30s), "whole");
  auto* shared =
      mproc::detail::QueueCoreTestAccess::shared(mproc::detail::QueueCoreTestAccess::core(q));
  // Wait (bounded) until the stream has begun and filled the ring.
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (__atomic_load_n(&shared->put_stream_open, __ATOMIC_RELAXED) == 0 ||
         shared->tail.load() - shared->head.load() < 2048) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "the child never started streaming";
    std::this_thread::sleep_for(1ms);
  }
  child.kill();
  EXPECT_EQ(child.wait(30s), -SIGKILL);
  // The half-sent message is never counted, and never delivered: the sender's get receives what
  // there is of it, finds its producer dead and drops it (then times out: nothing else came).
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_THROW((void)q.get(500ms), mproc::Empty);
  q.put("after");
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get(30s), "after");
  EXPECT_FALSE(q.try_get().has_value());
}

// ---- as Process arguments under each start method ----------------------------------------------

// Set by the parent before start(): a forked child sees it, a fresh image (spawn, forkserver)
// does not, which tells that the handle really travelled.
int g_marker = 0;

int put_range(mproc::Queue<int> q, int n) {
  for (int i = 0; i < n; ++i) q.put(i);
  return g_marker;
}

int work_off(mproc::JoinableQueue<int> q, int n) {
  for (int i = 0; i < n; ++i) {
    (void)q.get(30s);
    q.task_done();
  }
  return 0;
}

int echo_simple(mproc::SimpleQueue<std::string> in, mproc::SimpleQueue<std::string> out) {
  out.put(in.get(30s) + "!");
  return 0;
}

int echo_connection(mproc::Connection conn) {
  const int x = conn.recv<int>();
  conn.send(x + 1);
  return 0;
}

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<mproc::StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

class ChannelArguments : public ::testing::TestWithParam<mproc::StartMethod> {
 protected:
  mproc::ProcessOptions opts() const { return {.start_method = GetParam()}; }
  mproc_test::Watchdog dog_{std::chrono::seconds(90)};
};

TEST_P(ChannelArguments, QueueItemsPutByTheChildArriveInOrder) {
  mproc::Queue<int> q(0, {.capacity = 4096});
  mproc::Process p(opts(), put_range, q, 1000);
  g_marker = 7;
  p.start();
  g_marker = 0;
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(q.get(30s), i);
  ASSERT_TRUE(p.join(30s));
  EXPECT_EQ(p.exitcode(), GetParam() == mproc::StartMethod::fork ? 7 : 0);
}

TEST_P(ChannelArguments, JoinableQueueJoinsAfterTheChildsTaskDone) {
  mproc::JoinableQueue<int> q;
  for (int i = 0; i < 20; ++i) q.put(i);
  mproc::Process p(opts(), work_off, q, 20);
  p.start();
  EXPECT_TRUE(q.join(30s));
  ASSERT_TRUE(p.join(30s));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(q.qsize(), 0u);
}

TEST_P(ChannelArguments, SimpleQueuesBothWays) {
  mproc::SimpleQueue<std::string> in;
  mproc::SimpleQueue<std::string> out;
  mproc::Process p(opts(), echo_simple, in, out);
  p.start();
  in.put("hello");
  EXPECT_EQ(out.get(30s), "hello!");
  ASSERT_TRUE(p.join(30s));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ChannelArguments, ConnectionWorksBothWaysAndStartDropsTheParentsCopy) {
  auto [mine, theirs] = mproc::Pipe();
  mproc::Process p(opts(), echo_connection, std::move(theirs));
  p.start();
  mine.send(41);
  EXPECT_EQ(mine.recv<int>(), 42);
  ASSERT_TRUE(p.join(30s));
  EXPECT_EQ(p.exitcode(), 0);
  // The child's end is gone with the child, and start() dropped the parent's copy (pipe.hpp).
  ASSERT_TRUE(mine.poll(30s));
  EXPECT_THROW((void)mine.recv<int>(), mproc::EOFError);
}

INSTANTIATE_TEST_SUITE_P(, ChannelArguments,
                         ::testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                           mproc::StartMethod::forkserver),
                         MethodName{});

}  // namespace
