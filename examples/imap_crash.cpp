// imap over 1000 inputs where one input crashes its worker: every other input still yields its
// result, in order, and the crash is reported at the input that caused it.
//
// Python (where the crash would make the Pool hang instead):
//   with Pool() as pool:
//       for i, r in enumerate(pool.imap(work, range(1000))): ...
//
// Prints "999 results, 1 error: WorkerLost at input element 537: ..." and exits 0 only if exactly
// that happened: 999 results, each the right one for its input, and one WorkerLost whose
// position() is 537.
#include <signal.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <mproc/pool.hpp>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr int kInputs = 1000;
constexpr int kBad = 537;

// What the work returns for input x.
long expected(int x) { return 3L * x + 1; }

// The work: input 537 crashes its worker (abort(), as a failed assertion would).
long work(int x) {
  if (x == kBad) {
    ::signal(SIGABRT, SIG_DFL);  // no sanitizer's handler: a plain crash
    std::abort();
  }
  return expected(x);
}

}  // namespace

int main() {
  std::vector<int> inputs;
  for (int i = 0; i < kInputs; ++i) inputs.push_back(i);

  mproc::Pool pool;                        // default options: one worker per CPU
  auto results = pool.imap(work, inputs);  // adaptive chunks, results in input order

  std::size_t index = 0;  // the input the next outcome belongs to
  std::size_t right = 0, wrong = 0;
  struct Failure {
    std::string kind;
    std::optional<std::size_t> position;
    std::string what;
  };
  std::vector<Failure> errors;
  for (;;) {
    try {
      // A bound on each wait, so that a stuck pool ends this program instead of hanging it.
      const std::optional<long> r = results.next(std::chrono::seconds(30));
      if (!r) break;  // the end of the input
      (*r == expected(static_cast<int>(index)) ? right : wrong) += 1;
    } catch (const mproc::WorkerLost& e) {  // the worker died while running this input
      errors.push_back({"WorkerLost", e.position(), e.what()});
    } catch (const mproc::RemoteError& e) {  // this input's call threw
      errors.push_back({"RemoteError", e.position(), e.what()});
    } catch (const mproc::TimeoutError&) {
      std::printf("no result for 30 s after %zu outcomes: stuck\n", index);
      return 1;
    }
    ++index;
  }

  std::printf("%zu results, %zu error%s", right, errors.size(), errors.size() == 1 ? "" : "s");
  for (const Failure& f : errors) {
    std::printf(": %s at input element %s: %s", f.kind.c_str(),
                f.position ? std::to_string(*f.position).c_str() : "?", f.what.c_str());
  }
  std::printf("\n");
  if (wrong != 0) std::printf("%zu results did not match their input\n", wrong);

  const bool as_expected = index == kInputs && right == kInputs - 1 && wrong == 0 &&
                           errors.size() == 1 && errors[0].kind == "WorkerLost" &&
                           errors[0].position == std::optional<std::size_t>(kBad);
  if (!as_expected) {
    std::printf(
        "expected: %d results, 1 error: WorkerLost at input element %d (got %zu outcomes)\n",
        kInputs - 1, kBad, index);
    return 1;
  }
  return 0;
}
