// process_orphan_parent_main — a parent whose children must not outlive it when it is SIGKILLed.
//
// Starts a daemon child and a non-daemon child; the non-daemon child starts a grandchild. Each of
// the three writes "<role> <pid>\n" to stdout once it runs its target (so its death signal is
// armed), then sleeps for 60 s. The parent sleeps too, waiting to be killed.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mproc/process.hpp>
#include <string>
#include <thread>

namespace {

void announce(const char* role) {
  const std::string line = std::string(role) + " " + std::to_string(getpid()) + "\n";
  (void)!write(STDOUT_FILENO, line.data(), line.size());  // one write: lines never interleave
}

void sleep_long() { std::this_thread::sleep_for(std::chrono::seconds(60)); }

}  // namespace

int main() {
  mproc::Process daemon({.name = "daemon", .daemon = true}, [] {
    announce("daemon");
    sleep_long();
  });
  mproc::Process child({.name = "child"}, [] {
    mproc::Process grandchild([] {
      announce("grandchild");
      sleep_long();
    });
    grandchild.start();
    announce("child");
    sleep_long();
  });
  daemon.start();
  child.start();
  sleep_long();
  daemon.kill();
  child.kill();
  return 0;
}
