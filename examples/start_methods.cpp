// start_methods — the three start methods in a program that has threads, with a Queue handed to
// Pool tasks and to a spawned Process.
//
// Mirrors Python:
//
//   if __name__ == "__main__":                      # mproc::init(argc, argv)
//       ctx = multiprocessing.get_context("forkserver")
//       with ctx.Manager() as m:                    # mproc: no Manager needed
//           q = m.Queue(); ...
//
// A logger thread runs the whole time: forking now could copy a lock it holds. With init() called,
// the default start method is then the forkserver; spawn and forkserver children are fresh images
// of this program, so their targets are functions (or lambdas without captures, or partials).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mproc/mproc.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

// Runs in a worker: squares x and reports on the queue it was given.
int square_and_report(mproc::Queue<std::string> log, int x) {
  log.put("worker " + std::to_string(mproc::current_process().pid()) + " squared " +
          std::to_string(x));
  return x * x;
}

// Runs in a spawned child: drains nothing, just says where it runs.
void hello(mproc::Queue<std::string> log, const std::string& who) {
  log.put("hello " + who + " from a spawned " + mproc::current_process().name());
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // spawn and forkserver children become their target here

  std::atomic<bool> stop{false};
  std::thread logger([&] {
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });

  std::printf(
      "start methods: %s; the default now: %s\n",
      [] {
        std::string all;
        for (const auto& m : mproc::get_all_start_methods()) all += m + " ";
        return all;
      }()
          .c_str(),
      mproc::get_start_method()->c_str());

  mproc::Queue<std::string> log;
  int sum = 0;
  {
    mproc::Pool pool({.processes = 2});  // threads exist and init ran: forkserver
    std::printf("pool start method: %s\n",
                std::string(mproc::start_method_name(pool.start_method())).c_str());
    std::vector<int> xs = {1, 2, 3, 4};
    std::vector<mproc::AsyncResult<int>> rs;
    for (int x : xs) rs.push_back(pool.apply_async(square_and_report, log, x));
    for (auto& r : rs) sum += r.get(std::chrono::seconds(30));
  }
  for (int i = 0; i < 4; ++i) std::printf("  %s\n", log.get(std::chrono::seconds(30)).c_str());

  mproc::Process p = mproc::get_context("spawn").process(hello, log, std::string("bob"));
  p.start();
  std::printf("  %s\n", log.get(std::chrono::seconds(30)).c_str());
  p.join();

  stop = true;
  logger.join();
  std::printf("sum of squares %d, spawned child exit code %d\n", sum, *p.exitcode());
  return sum == 30 && p.exitcode() == 0 ? 0 : 1;
}
