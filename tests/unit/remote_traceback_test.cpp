// Remote tracebacks (src/stacktrace.hpp, RemoteError::traceback()): the stack of a throw recorded
// where it happens and symbolised when the failure is reported, in this process (the capture, a
// rethrow, an exception made without a throw, the bounds); traces from another process that are
// too long do not decode. Through a Pool and a Process, under fork and spawn:
// tests/integration/remote_traceback_methods_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <exception>
#include <mproc/codec.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "pool/protocol.hpp"
#include "posix/stacktrace.hpp"
#include "stacktrace.hpp"

namespace mproc_test {
namespace {

using mproc::detail::current_exception_trace;

// The program records no throw (only its children and workers do): these in-process tests make
// this process record, as a Process child or a Pool worker does from its start.
class RemoteTraceback : public ::testing::Test {
 protected:
  void SetUp() override { mproc::detail::record_throw_stacks(); }
};
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

TEST_F(RemoteTraceback, CurrentExceptionTraceNamesTheThrowingFunction) {
  std::string trace;
  try {
    (void)explode_in_named_function(1);
  } catch (...) {
    trace = current_exception_trace();
  }
  if (!traces_have_lines()) GTEST_SKIP() << "this build symbolises exported functions only";
  expect_traceback_of(trace, "explode_in_named_function(int)", false);
}

TEST_F(RemoteTraceback, RethrowKeepsTheFirstThrowEvenAfterOtherThrowsInTheHandler) {
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

TEST_F(RemoteTraceback, ExceptionMadeWithoutAThrowHasNone) {
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

TEST_F(RemoteTraceback, OutsideAHandlerThereIsNone) { EXPECT_EQ(current_exception_trace(), ""); }

TEST_F(RemoteTraceback, DeepStackKeepsTheInnermostFramesWithinTheBounds) {
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

}  // namespace
}  // namespace mproc_test
