// Pool shutdown and misuse: terminate() and join() from callbacks and from other threads, imap
// across close()/join(), results the parent cannot take, SIGCHLD ignored by the program, a plain
// fork() of the creator, and a Pool whose creating thread ends.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mproc/pool.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "helpers/count_range.hpp"

namespace {

using namespace std::chrono_literals;

int sqr(int x) { return x * x; }
int forever(int x) {
  std::this_thread::sleep_for(std::chrono::hours(1));
  return x;
}

template <class R>
std::string error_of(const mproc::AsyncResult<R>& r) {
  try {
    (void)r.get(30s);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A result the worker can encode but the parent refuses to decode (as a result too large for the
// parent's memory would be).
struct Refused {
  int v = 0;
  template <class A>
  void serialize(A& ar) {
    ar(v);
    if constexpr (A::is_loading::value) {
      if (v < 0) throw mproc::DecodeError("negative values are refused");
    }
  }
};

TEST(PoolShutdown, TerminateFromACallbackCancelsTheRestAndReturns) {
  std::optional<mproc::Pool> pool(std::in_place, 2);
  auto slow = pool->apply_async(forever, 1);
  std::atomic<bool> terminated{false};
  auto quick = pool->apply_async(sqr, std::tuple(3), [&](int) {
    pool->terminate();  // on the result thread
    terminated = true;
  });
  EXPECT_EQ(quick.get(30s), 9);
  EXPECT_TRUE(terminated.load());
  EXPECT_THROW(slow.get(30s), mproc::BrokenPool);
  EXPECT_THROW(pool->apply_async(sqr, 1), mproc::ValueError);
  pool.reset();  // returns: the result thread is not waited for by itself
}

TEST(PoolShutdown, DestroyingThePoolFromItsCallbackTerminatesIt) {
  auto* pool = new mproc::Pool(2);
  auto slow = pool->apply_async(forever, 1);
  std::atomic<bool> destroyed{false};
  auto quick = pool->apply_async(sqr, std::tuple(5), [&](int) {
    delete pool;  // on the result thread: terminates, and the thread cleans up after itself
    destroyed = true;
  });
  EXPECT_EQ(quick.get(30s), 25);
  EXPECT_TRUE(destroyed.load());
  EXPECT_NE(error_of(slow).find("terminated"), std::string::npos);
  // The result thread ends and frees the pool's state; a new pool works as usual.
  mproc::Pool again(1);
  EXPECT_EQ(again.apply(sqr, 6), 36);
}

TEST(PoolShutdown, TerminateInterruptsAJoinOnAnotherThread) {
  mproc::Pool pool(1);
  auto slow = pool.apply_async(forever, 1);
  pool.close();
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    pool.join();
    joined = true;
  });
  std::this_thread::sleep_for(100ms);  // let join() start waiting for the task
  EXPECT_FALSE(joined.load());
  pool.terminate();
  joiner.join();
  EXPECT_TRUE(joined.load());
  EXPECT_NE(error_of(slow).find("terminated"), std::string::npos);
}

TEST(PoolShutdown, JoinFromACallbackThrowsValueError) {
  std::string message;
  mproc::Pool pool2(1);
  auto r = pool2.apply_async(sqr, std::tuple(4), [&](int) {
    try {
      pool2.join();
    } catch (const mproc::ValueError& e) {
      message = e.what();
    }
  });
  pool2.close();
  EXPECT_EQ(r.get(30s), 16);
  EXPECT_NE(message.find("cannot be called from a callback"), std::string::npos) << message;
}

TEST(PoolShutdown, ImapGoesOnAfterClose) {
  mproc::Pool pool(2);
  auto it = pool.imap(sqr, mproc_test::count(0, 1000), {.chunksize = 1, .max_in_flight = 4});
  pool.close();
  long n = 0;
  while (auto v = it.next(30s)) {
    ASSERT_EQ(*v, static_cast<int>(n * n));
    ++n;
  }
  EXPECT_EQ(n, 1000);
  pool.join();
}

TEST(PoolShutdown, ImapEndsWithValueErrorWhenJoinedBeforeItsInputIsUsedUp) {
  mproc::Pool pool(2);
  auto it = pool.imap(sqr, mproc_test::count_from(0), {.chunksize = 1, .max_in_flight = 4});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(*it.next(30s), i * i);
  pool.close();
  pool.join();  // waits for the chunks in flight only
  int i = 3;
  std::string message;
  try {
    while (auto v = it.next(30s)) {
      ASSERT_EQ(*v, i * i);
      ++i;
    }
  } catch (const mproc::ValueError& e) {
    message = e.what();
  }
  EXPECT_GE(i, 4);  // the chunks in flight at join() were delivered
  EXPECT_NE(message.find("imap's input"), std::string::npos) << message;
  EXPECT_FALSE(it.next(30s));  // then the sequence ends
}

TEST(PoolShutdown, AResultTheParentCannotDecodeFailsOnlyItsTask) {
  mproc::Pool pool(2);
  std::vector<mproc::AsyncResult<Refused>> rs;
  for (int i = -2; i < 8; ++i) rs.push_back(pool.apply_async([](int v) { return Refused{v}; }, i));
  for (int i = -2; i < 8; ++i) {
    auto& r = rs[static_cast<std::size_t>(i + 2)];
    if (i < 0) {
      EXPECT_NE(error_of(r).find("negative values are refused"), std::string::npos);
    } else {
      EXPECT_EQ(r.get(30s).v, i);
    }
  }
  EXPECT_EQ(pool.apply(sqr, 5), 25);
}

TEST(PoolShutdown, IgnoredSigchldDoesNotStopWorkerReplacement) {
  struct sigaction ign {
  }, old{};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ASSERT_EQ(sigaction(SIGCHLD, &ign, &old), 0);
  {
    mproc::Pool pool({.processes = 2, .maxtasksperchild = 1});  // a new worker for every task
    std::vector<int> pids =
        pool.map([](int) { return static_cast<int>(getpid()); }, mproc_test::count(0, 12), 1);
    EXPECT_EQ(pids.size(), 12u);
    // The workers see the program's own SIGCHLD setting.
    bool ignored = pool.apply([] {
      struct sigaction cur {};
      sigaction(SIGCHLD, nullptr, &cur);
      return cur.sa_handler == SIG_IGN;
    });
    EXPECT_TRUE(ignored);
  }
  sigaction(SIGCHLD, &old, nullptr);
}

TEST(PoolShutdown, APlainForkOfTheCreatorLeavesThePoolAlone) {
  std::optional<mproc::Pool> pool(std::in_place, 2);
  EXPECT_EQ(pool->apply(sqr, 2), 4);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    try {
      (void)pool->apply_async(sqr, 3);
      code = 1;  // should have thrown
    } catch (const mproc::ProcessError&) {
    }
    pool.reset();  // the destructor, in the fork: must not stop the creator's workers
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::vector<int> out = pool->map(sqr, mproc_test::count(0, 100));
  EXPECT_EQ(out.size(), 100u);
  EXPECT_EQ(out[99], 99 * 99);
}

TEST(PoolShutdown, APoolOutlivesTheThreadThatCreatedIt) {
  std::optional<mproc::Pool> pool;
  std::thread([&] {
    pool.emplace(2);
    std::this_thread::sleep_for(100ms);  // the zygote is surely up and running by now
  }).join();                             // then the creating thread ends
  std::this_thread::sleep_for(300ms);    // time for a death signal to arrive
  for (int i = 0; i < 20; ++i) EXPECT_EQ(pool->apply(sqr, i), i * i);
  std::vector<int> out = pool->map(sqr, mproc_test::count(0, 100));
  EXPECT_EQ(out[99], 99 * 99);
  pool.reset();  // close + join, from another thread than the creator's
}

TEST(PoolShutdown, AWorkerCannotStartProcessesOfItsOwn) {
  mproc::Pool pool(1);
  std::string message = pool.apply([] {
    try {
      mproc::Pool inner(1);
    } catch (const mproc::ProcessError& e) {
      return std::string(e.what());
    }
    return std::string("created");
  });
  EXPECT_NE(message.find("daemonic processes are not allowed to have children"), std::string::npos)
      << message;
}

}  // namespace
