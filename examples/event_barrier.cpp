// Coordination: workers wait for a start Event, meet at a Barrier after each phase, and the last
// one to arrive at each phase runs the barrier's action.
//
// Python:
//   start = Event(); barrier = Barrier(4, action=report)
//   def worker(i): start.wait(); for phase in range(3): work(); barrier.wait()
#include <cstdio>
#include <mproc/mproc.hpp>
#include <vector>

int main() {
  constexpr int kWorkers = 4;
  constexpr int kPhases = 3;

  mproc::Event start;
  mproc::Value<int> phases_done(0);
  mproc::Barrier barrier(kWorkers, [&] {
    // Runs once per phase, in whichever process arrives last.
    int done = phases_done.get() + 1;
    phases_done.set(done);
    std::printf("  all %d workers finished phase %d\n", kWorkers, done);
    std::fflush(stdout);
  });

  std::vector<mproc::Process> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back(
        [&](int id) {
          start.wait();
          for (int phase = 1; phase <= kPhases; ++phase) {
            int index = barrier.wait();  // distinct arrival index in [0, kWorkers)
            if (index == 0) {
              std::printf("  worker %d arrived first at the end of phase %d\n", id, phase);
              std::fflush(stdout);
            }
          }
        },
        i);
    workers.back().start();
  }

  std::printf("starting %d workers\n", kWorkers);
  std::fflush(stdout);
  start.set();
  for (auto& p : workers) p.join();
  std::printf("phases completed: %d (expected %d)\n", phases_done.get(), kPhases);
  return phases_done.get() == kPhases ? 0 : 1;
}
