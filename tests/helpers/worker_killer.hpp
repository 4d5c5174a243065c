// helpers/worker_killer.hpp — a thread that SIGKILLs a random worker of a Pool every 0 to
// `max_pause_us` microseconds, for the kill stress tests. The workers are the children of the
// pool's zygote, the calling process's only child when the Pool was just made.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "helpers/proc_state.hpp"

namespace mproc_test {

class WorkerKiller {
 public:
  WorkerKiller(int zygote, std::uint32_t seed, std::uint32_t max_pause_us)
      : thread_([this, zygote, seed, max_pause_us] {
          std::mt19937 rng(seed);
          while (!stop_.load()) {
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % (max_pause_us + 1)));
            auto ws = children_of(zygote);  // the workers
            if (ws.empty()) continue;
            if (::kill(ws[rng() % ws.size()], SIGKILL) == 0) kills_.fetch_add(1);
          }
        }) {}
  WorkerKiller(const WorkerKiller&) = delete;
  WorkerKiller& operator=(const WorkerKiller&) = delete;
  ~WorkerKiller() { stop(); }

  // Stops killing (idempotent); returns how many workers were killed.
  std::uint64_t stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return kills_.load();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> kills_{0};
  std::thread thread_;
};

}  // namespace mproc_test
