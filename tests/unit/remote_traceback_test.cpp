// Remote tracebacks (src/stacktrace.hpp, RemoteError::traceback()): the stack of a throw recorded
// where it happens and symbolised when the failure is reported. In this process (the capture, a
// rethrow, an exception made without a throw, the bounds), through a Pool (map and imap elements,
// a registered type, apply) and from a Process child's uncaught exception, under fork and spawn;
// and traces from another process that are too long do not decode.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <mproc/codec.hpp>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/start_method.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "helpers/watchdog.hpp"
#include "pool/protocol.hpp"
#include "stacktrace.hpp"

namespace mproc_test {
namespace {

using namespace std::chrono_literals;
using mproc::StartMethod;
using mproc::detail::current_exception_trace;
using mproc::detail::kMaxTraceBytes;
using mproc::detail::traces_have_lines;

// The functions a traceback must name: never inlined into their callers.
[[gnu::noinline]] int explode_in_named_function(int x) {
  if (x % 2 == 1) throw std::runtime_error("odd: " + std::to_string(x));
  return x;
}

[[gnu::noinline]] void throw_something_else() { throw std::out_of_range("another one"); }

[[gnu::noinline]] int recurse_then_throw(int depth) {
  if (depth == 0) throw std::length_error("bottom");
  volatile int keep = depth;  // read after the call: each level keeps its frame
  const int below = recurse_then_throw(depth - 1);
  return below + keep;
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

// The checks every traceback of a throw in `function` passes; `remote`: it was made in a Pool
// worker or a Process child, and ends at the code that called the user's.
void expect_traceback_of(const std::string& trace, const std::string& function,
                         bool remote = true) {
  SCOPED_TRACE(trace);
  EXPECT_EQ(trace.rfind("Traceback (most recent call last):\n", 0), 0u);
  EXPECT_LE(trace.size(), kMaxTraceBytes);
  // Most recent call last: the last frame is the throwing function's.
  ASSERT_GE(trace.size(), 2u);
  const std::size_t last_line = trace.rfind('\n', trace.size() - 2);
  ASSERT_NE(last_line, std::string::npos);
  EXPECT_NE(trace.find(function, last_line), std::string::npos);
  if (traces_have_lines()) {
    EXPECT_NE(trace.find("remote_traceback_test.cpp\", line "), std::string::npos);
  }
  if (remote) {  // the frames below the code that called the user's (worker loop, main) are not
    EXPECT_EQ(trace.find("__libc_start"), std::string::npos);
    EXPECT_EQ(trace.find("Worker"), std::string::npos);
    EXPECT_EQ(trace.find("mproc::"), std::string::npos);
  }
}

// ---- In this process -----------------------------------------------------------------------

TEST(RemoteTraceback, CurrentExceptionTraceNamesTheThrowingFunction) {
  std::string trace;
  try {
    (void)explode_in_named_function(1);
  } catch (...) {
    trace = current_exception_trace();
  }
  if (!traces_have_lines()) GTEST_SKIP() << "this build symbolises exported functions only";
  expect_traceback_of(trace, "explode_in_named_function(int)", false);
}

TEST(RemoteTraceback, RethrowKeepsTheFirstThrowEvenAfterOtherThrowsInTheHandler) {
  if (!traces_have_lines()) GTEST_SKIP() << "this build symbolises exported functions only";
  std::string trace;
  try {
    try {
      (void)explode_in_named_function(3);
    } catch (...) {
      try {
        throw_something_else();  // a throw and a catch inside the handler
      } catch (const std::out_of_range&) {
      }
      throw;
    }
  } catch (const std::runtime_error&) {
    trace = current_exception_trace();
  }
  expect_traceback_of(trace, "explode_in_named_function(int)", false);
  EXPECT_EQ(trace.find("throw_something_else"), std::string::npos) << trace;
}

TEST(RemoteTraceback, ExceptionMadeWithoutAThrowHasNone) {
  // A thrown object, freed, then one made at what may well be the same address.
  try {
    (void)explode_in_named_function(1);
  } catch (...) {
  }
  std::string trace = "unset";
  try {
    std::rethrow_exception(std::make_exception_ptr(std::runtime_error("odd: 1")));
  } catch (...) {
    trace = current_exception_trace();
  }
  EXPECT_EQ(trace, "");
}

TEST(RemoteTraceback, OutsideAHandlerThereIsNone) { EXPECT_EQ(current_exception_trace(), ""); }

TEST(RemoteTraceback, DeepStackKeepsTheInnermostFramesWithinTheBounds) {
  if (!traces_have_lines()) GTEST_SKIP() << "this build symbolises exported functions only";
  std::string trace;
  try {
    (void)recurse_then_throw(200);
  } catch (...) {
    trace = current_exception_trace();
  }
  expect_traceback_of(trace, "recurse_then_throw(int)", false);
  EXPECT_NE(trace.find("earlier frames left out"), std::string::npos) << trace;
  std::size_t lines = 0;
  for (char c : trace) lines += c == '\n';
  EXPECT_LE(lines, 2u + 64u);
}

// ---- On the wire -----------------------------------------------------------------------------

// A piece whose one error record has `trace` as its trace, with the trace's length written as
// `announced`.
std::vector<std::byte> piece_with_trace(const std::string& trace, std::uint64_t announced) {
  const std::size_t record = mproc::detail::error_record_bytes("E", "w", trace);
  std::vector<std::byte> errors(record);
  mproc::Writer ew(errors.data(), errors.data() + errors.size());
  mproc::detail::write_error_record(ew, 0, "E", "w", trace);
  // The trace's count is the record's last string's: overwrite it.
  const std::size_t at = record - trace.size() - sizeof(std::uint64_t);
  std::memcpy(errors.data() + at, &announced, sizeof announced);
  std::vector<std::byte> out(mproc::detail::TaskContext::piece_bytes(errors.size(), 0));
  mproc::Writer w(out.data(), out.data() + out.size());
  mproc::detail::TaskContext::write_piece(w, errors.data(), errors.size(), nullptr, 0);
  return out;
}

mproc::detail::IndexedErrors decode_errors(const std::vector<std::byte>& bytes) {
  mproc::Reader r(bytes.data(), bytes.size());
  mproc::detail::IndexedErrors errors;
  mproc::detail::decode_piece_errors(r, 10, mproc::detail::Spans{{0, 1}}, 4711, errors);
  return errors;
}

TEST(RemoteTracebackWire, ErrorRecordCarriesTheTraceIntoTheRemoteError) {
  const std::string trace =
      "Traceback (most recent call last):\n  File \"a.cpp\", line 1, in f()\n";
  const auto errors = decode_errors(piece_with_trace(trace, trace.size()));
  ASSERT_EQ(errors.size(), 1u);
  try {
    std::rethrow_exception(errors[0].second);
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.traceback(), trace);
    EXPECT_EQ(e.position(), 10u);
    EXPECT_EQ(std::string(e.what()), "E: w (in worker pid 4711, input element 10)");
  }
}

TEST(RemoteTracebackWire, ErrorRecordWithAHostileTraceLengthIsADecodeError) {
  const std::string trace(100, 't');
  for (std::uint64_t announced :
       {std::uint64_t{101}, std::uint64_t{kMaxTraceBytes + 1}, ~std::uint64_t{0}}) {
    SCOPED_TRACE(announced);
    EXPECT_THROW((void)decode_errors(piece_with_trace(trace, announced)), mproc::DecodeError);
  }
  // A trace longer than the bound, every byte present: corrupt as well.
  const std::string long_trace(kMaxTraceBytes + 1, 't');
  EXPECT_THROW((void)decode_errors(piece_with_trace(long_trace, long_trace.size())),
               mproc::DecodeError);
}

TEST(RemoteTracebackWire, EventCarriesTheTraceAndATooLongOneIsUndecodable) {
  mproc::detail::EventMsg ev;
  ev.kind = mproc::detail::kFailed;
  ev.slot = 0;
  ev.pid = 12;
  ev.id = 3;
  ev.type = "std::runtime_error";
  ev.what = "boom";
  ev.trace = "Traceback (most recent call last):\n  File \"a.cpp\", line 1, in f()\n";
  auto back = mproc::from_bytes<mproc::detail::EventMsg>(mproc::to_bytes(ev));
  EXPECT_EQ(back.kind, mproc::detail::kFailed);
  EXPECT_EQ(back.what, "boom");
  EXPECT_EQ(back.trace, ev.trace);

  ev.trace.assign(kMaxTraceBytes + 1, 't');  // no worker sends one: a corrupt event
  back = mproc::from_bytes<mproc::detail::EventMsg>(mproc::to_bytes(ev));
  EXPECT_EQ(back.kind, mproc::detail::kUndecodable);
  EXPECT_EQ(back.sent_kind, mproc::detail::kFailed);
  EXPECT_EQ(back.type, "mproc::DecodeError");
}

// ---- Through a Pool and a Process, under fork and spawn --------------------------------------

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

// Needs the parent's side to pass EventMsg::trace to remote_error (src/pool/events.cpp).
TEST_P(RemoteTracebackMethods, DISABLED_ApplyTaskErrorNamesTheThrowingFunction) {
  mproc::Pool pool(pool_options());
  try {
    (void)pool.apply_async(explode_in_named_function, 7).get(30s);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_TRUE(e.task().has_value());
    expect_traceback_of(e.traceback(), "explode_in_named_function(int)");
  }
}

// Needs the parent's side to put EventMsg::trace of kInitFailed into the BrokenPool's message
// (src/pool/events.cpp, Slot::init_error).
TEST_P(RemoteTracebackMethods, DISABLED_InitializerFailureNamesTheThrowingFunction) {
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
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  std::fflush(stderr);
  const int saved = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(saved, 0);
  ::dup2(file, STDERR_FILENO);
  ::close(file);
  int code = -1000;
  {
    mproc::Process p({.name = "traced", .start_method = GetParam()}, child_target);
    p.start();
    const bool ended = p.join(30s);
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ASSERT_TRUE(ended);
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
