// Remote tracebacks through a Pool and a Process, under fork and spawn: a map element's, an imap
// element's and a registered type's RemoteError name the throwing function, as do an apply task's
// and a failed initializer's (the BrokenPool's message carries it), and a Process
// child's uncaught exception prints its traceback on stderr. In-process and wire tests:
// tests/unit/remote_traceback_test.cpp. Every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/start_method.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "helpers/watchdog.hpp"
#include "stacktrace.hpp"

namespace mproc_test {
namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;
using mproc::detail::kMaxTraceBytes;
using mproc::detail::traces_have_lines;

// The functions a traceback must name: never inlined into their callers.
[[gnu::noinline]] int explode_in_named_function(int x) {
  if (x % 2 == 1) throw std::runtime_error("odd: " + std::to_string(x));
  return x;
}

struct TracedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[gnu::noinline]] int throw_registered_type(int x) {
  if (x == 2) throw TracedError("registered");
  return x;
}

[[gnu::noinline]] void init_explodes_here() { throw std::runtime_error("no config"); }

[[gnu::noinline]] int child_explodes_here() { throw std::logic_error("child broke"); }
int child_target() { return child_explodes_here() + 1; }

// The checks every traceback of a throw in `function`, made in a Pool worker or a Process child,
// passes: it ends at the code that called the user's.
void expect_traceback_of(const std::string& trace, const std::string& function) {
  SCOPED_TRACE(trace);
  EXPECT_EQ(trace.rfind("Traceback (most recent call last):\n", 0), 0u);
  EXPECT_LE(trace.size(), kMaxTraceBytes);
  // Most recent call last: the last frame is the throwing function's.
  ASSERT_GE(trace.size(), 2u);
  const std::size_t last_line = trace.rfind('\n', trace.size() - 2);
  ASSERT_NE(last_line, std::string::npos);
  EXPECT_NE(trace.find(function, last_line), std::string::npos);
  EXPECT_NE(trace.find("remote_traceback_methods_test.cpp\", line "), std::string::npos);
  // The frames below the code that called the user's (worker loop, main) are not there.
  EXPECT_EQ(trace.find("__libc_start"), std::string::npos);
  EXPECT_EQ(trace.find("Worker"), std::string::npos);
  EXPECT_EQ(trace.find("mproc::"), std::string::npos);
}

// Points this process's stderr at a file while it lives (a child started meanwhile inherits it),
// then back, whatever happens in between.
class StderrToFile {
 public:
  explicit StderrToFile(const std::string& path) {
    std::fflush(stderr);
    saved_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
    const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (saved_ >= 0 && file >= 0) ::dup2(file, STDERR_FILENO);
    if (file >= 0) ::close(file);
  }
  ~StderrToFile() {
    std::fflush(stderr);
    if (saved_ >= 0) {
      ::dup2(saved_, STDERR_FILENO);
      ::close(saved_);
    }
  }
  StderrToFile(const StderrToFile&) = delete;
  StderrToFile& operator=(const StderrToFile&) = delete;

 private:
  int saved_ = -1;
};

struct MethodName {
  std::string operator()(const ::testing::TestParamInfo<StartMethod>& p) const {
    return std::string(mproc::start_method_name(p.param));
  }
};

class RemoteTracebackMethods : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    if (!traces_have_lines()) GTEST_SKIP() << "this build symbolises exported functions only";
  }
  mproc::PoolOptions pool_options() const {
    return mproc::PoolOptions{.processes = 2, .start_method = GetParam()};
  }
  Watchdog dog_{std::chrono::seconds(120)};
};

TEST_P(RemoteTracebackMethods, MapElementErrorNamesTheThrowingFunction) {
  mproc::Pool pool(pool_options());
  const std::vector<int> xs{0, 2, 4, 5, 6, 8};
  try {
    (void)pool.map(explode_in_named_function, xs);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.position(), 3u);
    EXPECT_EQ(e.remote_what(), "odd: 5");
    EXPECT_EQ(std::string(e.what()).find("Traceback"), std::string::npos);  // what() stays short
    expect_traceback_of(e.traceback(), "explode_in_named_function(int)");
  }
}

TEST_P(RemoteTracebackMethods, ImapElementErrorNamesTheThrowingFunction) {
  mproc::Pool pool(pool_options());
  const std::vector<int> xs{0, 2, 7, 4};
  std::vector<int> got;
  try {
    for (int y : pool.imap(explode_in_named_function, xs)) got.push_back(y);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(got, (std::vector<int>{0, 2}));
    EXPECT_EQ(e.position(), 2u);
    expect_traceback_of(e.traceback(), "explode_in_named_function(int)");
  }
}

TEST_P(RemoteTracebackMethods, RegisteredTypeNestsARemoteErrorWithTheTraceback) {
  mproc::register_remote_exception<TracedError>();
  mproc::Pool pool(pool_options());
  try {
    (void)pool.map(throw_registered_type, std::vector<int>{1, 2, 3});
    FAIL() << "no exception";
  } catch (const TracedError& e) {
    EXPECT_STREQ(e.what(), "registered");
    try {
      std::rethrow_if_nested(e);
      FAIL() << "no RemoteError nested";
    } catch (const mproc::RemoteError& info) {
      expect_traceback_of(info.traceback(), "throw_registered_type(int)");
    }
  }
}

TEST_P(RemoteTracebackMethods, ApplyTaskErrorNamesTheThrowingFunction) {
  mproc::Pool pool(pool_options());
  try {
    (void)pool.apply_async(explode_in_named_function, 7).get(30s);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_TRUE(e.task().has_value());
    expect_traceback_of(e.traceback(), "explode_in_named_function(int)");
  }
}

// The BrokenPool's message names the initializer's exception, then its traceback.
TEST_P(RemoteTracebackMethods, InitializerFailureNamesTheThrowingFunction) {
  mproc::Pool pool({.processes = 1, .initializer = init_explodes_here, .start_method = GetParam()});
  try {
    (void)pool.apply_async(explode_in_named_function, 2).get(30s);
    FAIL() << "no exception";
  } catch (const mproc::BrokenPool& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("std::runtime_error: no config"), std::string::npos) << what;
    EXPECT_NE(what.find("Traceback (most recent call last):\n"), std::string::npos) << what;
    EXPECT_NE(what.find("init_explodes_here()"), std::string::npos) << what;
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST_P(RemoteTracebackMethods, ProcessChildUncaughtExceptionPrintsItsTraceback) {
  // The child's stderr is this process's, pointed at a file while the child runs (a spawned child
  // inherits it as a fork does).
  const std::string path =
      ::testing::TempDir() + "/mproc_traceback_" + std::to_string(::getpid()) + ".txt";
  int code = -1000;
  {
    StderrToFile redirect(path);
    mproc::Process p({.name = "traced", .start_method = GetParam()}, child_target);
    p.start();
    ASSERT_TRUE(p.join(30s));
    code = p.exitcode().value_or(-1000);
  }
  const std::string err = read_file(path);
  ::unlink(path.c_str());
  EXPECT_EQ(code, 1);
  EXPECT_EQ(err.rfind("Process traced:\nTraceback (most recent call last):\n", 0), 0u) << err;
  const std::string last = "std::logic_error: child broke\n";
  ASSERT_GE(err.size(), last.size()) << err;
  EXPECT_EQ(err.substr(err.size() - last.size()), last) << err;
  expect_traceback_of(
      err.substr(std::string("Process traced:\n").size(),
                 err.size() - last.size() - std::string("Process traced:\n").size()),
      "child_explodes_here()");
  EXPECT_NE(err.find("child_target"), std::string::npos) << err;
}

INSTANTIATE_TEST_SUITE_P(, RemoteTracebackMethods,
                         ::testing::Values(StartMethod::fork, StartMethod::spawn), MethodName{});

}  // namespace
}  // namespace mproc_test
