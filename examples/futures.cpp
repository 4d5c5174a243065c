// Control of work in flight: a stuck task stopped by its time limit, a queued one cancelled, a
// running one cancelled by killing its worker, and the rest consumed as they complete.
//
// Python (concurrent.futures; no per-task limit, and a running task cannot be cancelled):
//   with ProcessPoolExecutor() as ex:
//       fs = [ex.submit(work, n) for n in range(100)]
//       fs[-1].cancel()
//       for f in as_completed(fs): ...
//
// Prints one line per kind of outcome and exits 0 only if each is what it must be: 97 results,
// one TaskTimeout, one cancelled while queued (it never ran), one cancelled while running.
#include <chrono>
#include <cstdio>
#include <mproc/mproc.hpp>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr int kTasks = 100;
constexpr int kStuck = 7;     // never returns: stopped by its limit
constexpr int kRunaway = 13;  // never returns: cancelled by killing its worker

long work(int n) {
  if (n == kStuck || n == kRunaway)
    for (;;) std::this_thread::sleep_for(1h);
  long s = 0;
  for (long x = n + 1; x != 1; x = x % 2 ? 3 * x + 1 : x / 2) ++s;  // Collatz steps of n + 1
  std::this_thread::sleep_for(2ms);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool pool(2);
  std::vector<mproc::AsyncResult<long>> fs;
  for (int n = 0; n < kTasks; ++n) {
    mproc::SubmitOptions limit;
    if (n == kStuck) limit.timeout = 300ms;
    fs.push_back(pool.submit(limit, work, n));
  }
  const bool queued_cancelled = fs.back().cancel();  // still queued: withdrawn, never runs
  while (!fs[kRunaway].running()) std::this_thread::sleep_for(1ms);
  const bool runaway_cancelled = fs[kRunaway].cancel(mproc::CancelMode::kill_running);

  int results = 0, timeouts = 0, cancelled = 0;
  for (const auto& f : mproc::as_completed(fs, 60s)) {
    try {
      (void)f.get();
      ++results;
    } catch (const mproc::TaskTimeout& e) {
      ++timeouts;
      std::printf("timeout: %s\n", e.what());
    } catch (const mproc::CancelledError&) {
      ++cancelled;
    }
  }
  std::printf("%d results, %d timeout, %d cancelled (queued: %s, running: %s)\n", results, timeouts,
              cancelled, queued_cancelled ? "yes" : "no", runaway_cancelled ? "yes" : "no");
  const bool ok = results == kTasks - 3 && timeouts == 1 && cancelled == 2 && queued_cancelled &&
                  runaway_cancelled && fs[kTasks - 1].cancelled() && fs[kRunaway].cancelled();
  return ok ? 0 : 1;
}
