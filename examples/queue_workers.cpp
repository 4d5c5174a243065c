// Work queues: the parent sends tasks to four worker processes over one Queue and collects the
// results from another; each worker stops at a sentinel. The values are plain C++ types, encoded
// by mproc::codec (strings, vectors, and a struct with a serialize member).
//
// Python:
//   tasks, results = Queue(), Queue()
//   def worker(): for t in iter(tasks.get, None): results.put((t.id, sum(t.numbers), os.getpid()))
#include <cstdio>
#include <map>
#include <mproc/mproc.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

struct Task {
  int id = 0;
  std::string label;
  std::vector<long> numbers;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, label, numbers);
  }
};

struct Result {
  int id;
  long sum;
  int worker_pid;
};

int main() {
  constexpr int kWorkers = 4;
  constexpr int kTasks = 100;

  mproc::Queue<std::optional<Task>> tasks;  // std::nullopt: "no more work"
  mproc::Queue<Result> results;

  std::vector<mproc::Process> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (std::optional<Task> t = tasks.get()) {
        long sum = 0;
        constexpr int kRepeat = 20000;  // some CPU work, so that the tasks spread over the workers
        for (int rep = 0; rep < kRepeat; ++rep)
          sum += std::accumulate(t->numbers.begin(), t->numbers.end(), 0L);
        sum /= kRepeat;
        results.put(Result{t->id, sum, mproc::current_process().pid()});
      }
    });
    workers.back().start();
  }

  long expected = 0;
  for (int i = 0; i < kTasks; ++i) {
    Task t{i, "task-" + std::to_string(i), std::vector<long>(static_cast<std::size_t>(i) + 1)};
    std::iota(t.numbers.begin(), t.numbers.end(), 1L);  // 1 + 2 + ... + (i + 1)
    expected += static_cast<long>(i + 1) * (i + 2) / 2;
    tasks.put(t);
  }
  for (int w = 0; w < kWorkers; ++w) tasks.put(std::nullopt);

  long total = 0;
  std::map<int, int> per_worker;
  for (int i = 0; i < kTasks; ++i) {
    Result r = results.get(std::chrono::seconds(30));
    total += r.sum;
    ++per_worker[r.worker_pid];
  }
  for (auto& w : workers) w.join();

  std::printf("%d tasks done by %zu workers:", kTasks, per_worker.size());
  for (auto [pid, n] : per_worker) std::printf(" pid %d did %d;", pid, n);
  std::printf("\nsum of results = %ld (expected %ld)\n", total, expected);
  return total == expected ? 0 : 1;
}
