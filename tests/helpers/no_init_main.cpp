// helpers/no_init_main.cpp — a program that does NOT call mproc::init, run by
// integration/start_method_kill_test.cpp. It starts a spawn Process, a forkserver Process, a spawn
// Pool and a forkserver Pool; each must throw ProcessError naming the fix (`mproc::init(argc,
// argv)`) rather than run a second copy of this main. It prints one line per entry into main ("main
// <pid>"), so the test can count them, and one line per attempt:
//   "<what> ProcessError <message>"  the expected error
//   "<what> <other type> <message>"  another error
//   "<what> started"                 no error (the defect this program exists to catch)
// Exit code: 0 when all four threw ProcessError naming mproc::init(argc, argv), 1 otherwise.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <mproc/errors.hpp>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <string>

namespace {

int square(int x) { return x * x; }
int seven() { return 7; }

// Runs `attempt`, prints how it ended; true when it threw ProcessError naming the fix.
template <class F>
bool expect_init_error(const char* what, F attempt) {
  try {
    attempt();
  } catch (const mproc::ProcessError& e) {
    std::printf("%s ProcessError %s\n", what, e.what());
    return std::string(e.what()).find("mproc::init(argc, argv)") != std::string::npos;
  } catch (const std::exception& e) {
    std::printf("%s other-exception %s\n", what, e.what());
    return false;
  }
  std::printf("%s started\n", what);
  return false;
}

}  // namespace

int main() {
  std::printf("main %d\n", static_cast<int>(::getpid()));
  std::fflush(stdout);
  bool ok = true;
  ok &= expect_init_error("spawn-process", [] {
    mproc::Process p({.start_method = mproc::StartMethod::spawn}, seven);
    p.start();
    (void)p.join(std::chrono::seconds(30));
  });
  ok &= expect_init_error("forkserver-process", [] {
    mproc::Process p({.start_method = mproc::StartMethod::forkserver}, seven);
    p.start();
    (void)p.join(std::chrono::seconds(30));
  });
  ok &= expect_init_error("spawn-pool", [] {
    mproc::Pool pool({.processes = 1, .start_method = mproc::StartMethod::spawn});
    (void)pool.apply_async(square, 3).get(std::chrono::seconds(30));
  });
  ok &= expect_init_error("forkserver-pool", [] {
    mproc::Pool pool({.processes = 1, .start_method = mproc::StartMethod::forkserver});
    (void)pool.apply_async(square, 3).get(std::chrono::seconds(30));
  });
  std::fflush(stdout);
  return ok ? 0 : 1;
}
