// Supervised pipeline: three stages in three processes, joined by Queues — source -> square -> sum.
// Each stage blocks in `mproc::wait({in, upstream})`, on its input queue *and* on the process that
// feeds it, so when a stage crashes the next one notices at once: no `get(100ms)` loop checking
// `exitcode()`, no waiting forever for an end marker that will never come. Here the middle stage
// crashes on input 37 (abort(), as a failed assertion would); the last stage sees its upstream end
// without the end marker, stops cleanly and says so, and the parent, which waits on all three
// processes the same way, reports how each one ended.
//
// Python has the same pattern through the queue's pipe end:
//   ready = multiprocessing.connection.wait([in_q._reader, upstream.sentinel])
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <mproc/mproc.hpp>
#include <optional>
#include <string>
#include <vector>

using Item = std::optional<long>;  // std::nullopt: the end marker

// A stage's exit code when its upstream ended without sending the end marker.
constexpr int kUpstreamLost = 3;

// Runs one stage: hands every item of `in` to `handle` until the end marker (exit code 0), or
// until `upstream` has ended and nothing is left in `in` (kUpstreamLost). Blocks in mproc::wait
// between items: it wakes for an item or for the upstream process's end, whichever comes first.
template <class Handle, class Finish>
int run_stage(const char* name, mproc::Queue<Item>& in, const mproc::Process& upstream,
              mproc::Queue<std::string>& reports, Handle handle, Finish finish) {
  long count = 0;
  for (;;) {
    const std::vector<std::size_t> ready = mproc::wait({in, upstream});
    if (std::optional<Item> item = in.try_get()) {  // drain what upstream sent before anything else
      if (!*item) {
        reports.put(std::string(name) + ": end marker after " + std::to_string(count) + " items; " +
                    finish(true));
        return 0;
      }
      handle(**item);
      ++count;
      continue;
    }
    if (!ready.empty() && ready.back() == 1) {  // upstream ended, and its queue is empty
      reports.put(std::string(name) + ": upstream ended without the end marker after " +
                  std::to_string(count) + " items; " + finish(false) + "; stopping");
      return kUpstreamLost;
    }
  }
}

int main() {
  constexpr long kNumbers = 100;
  constexpr long kPoison = 37;

  mproc::Queue<Item> numbers;
  mproc::Queue<Item> squares;
  mproc::Queue<std::string> reports;  // each stage's last word, for the parent to print
  mproc::Queue<long> total;

  // Stages are started upstream first: a child can wait on a process that existed when it started.
  mproc::Process source([&] {
    for (long i = 1; i <= kNumbers; ++i) numbers.put(i);
    numbers.put(std::nullopt);
    reports.put("source: sent " + std::to_string(kNumbers) + " numbers and the end marker");
  });
  source.set_name("source");
  source.start();

  mproc::Process square([&] {
    return run_stage(
        "square", numbers, source, reports,
        [&](long x) {
          if (x == kPoison) {
            std::fprintf(stderr, "square: input %ld is poison, aborting\n", x);
            std::abort();
          }
          squares.put(x * x);
        },
        [&](bool complete) {
          if (complete) squares.put(std::nullopt);  // pass the end marker on
          return std::string(complete ? "passed it on" : "no end marker to pass on");
        });
  });
  square.set_name("square");
  square.start();

  mproc::Process sum([&] {
    long s = 0;
    return run_stage(
        "sum", squares, square, reports, [&](long x) { s += x; },
        [&](bool complete) {
          total.put(s);
          return std::string(complete ? "total " : "partial total ") + std::to_string(s);
        });
  });
  sum.set_name("sum");
  sum.start();

  // The supervisor: wait on the stages still running, report each end as it happens.
  std::vector<mproc::Process*> running{&source, &square, &sum};
  while (!running.empty()) {
    std::vector<mproc::Waitable> waitables;
    for (mproc::Process* p : running) waitables.emplace_back(*p);
    const std::vector<std::size_t> ready = mproc::wait(waitables, std::chrono::seconds(30));
    if (ready.empty()) {
      std::fprintf(stderr, "supervisor: no stage ended in 30 s\n");
      for (mproc::Process* p : running) p->kill();
      return 1;
    }
    for (auto i = ready.rbegin(); i != ready.rend(); ++i) {  // from the back: erase keeps indices
      mproc::Process& p = *running[*i];
      p.join();
      const int code = p.exitcode().value_or(-1);
      if (code < 0)
        std::printf("supervisor: %s was killed by signal %d (SIG%s)\n", p.name().c_str(), -code,
                    sigabbrev_np(-code));
      else
        std::printf("supervisor: %s exited with %d%s\n", p.name().c_str(), code,
                    code == kUpstreamLost ? " (its upstream was lost)" : "");
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(*i));
    }
  }
  while (std::optional<std::string> line = reports.try_get()) std::printf("%s\n", line->c_str());

  // Squares of 1..36 reached the sum before the square stage crashed.
  const long want = (kPoison - 1) * kPoison * (2 * kPoison - 1) / 6;
  const std::optional<long> got = total.try_get();
  std::printf("sum of the squares that got through: %ld (expected %ld)\n", got.value_or(-1), want);
  const bool as_expected = source.exitcode() == 0 && square.exitcode() == -SIGABRT &&
                           sum.exitcode() == kUpstreamLost && got == want;
  return as_expected ? 0 : 1;
}
