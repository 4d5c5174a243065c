// A parallel word count, two ways: shipping the text to the workers, and shipping only indices
// into text the workers already have. A Pool's workers are forked when the Pool is created, so
// whatever the program held at that moment is already in every worker (copy-on-write, nothing
// copied until written): passing a range of line numbers instead of the lines themselves saves
// encoding, copying and decoding the whole text. Both totals are checked against a serial count;
// the times are measured and printed, not asserted (they depend on the machine).
//
// Python:
//   LINES = load()                          # before the Pool: inherited by the forked workers
//   def count_range(lo, hi):                # ships two integers per task
//       return sum(len(line.split()) for line in LINES[lo:hi])
//   with Pool() as pool:
//       by_text = sum(pool.map(count_words, blocks_of_text))           # ships the text
//       by_index = sum(pool.starmap(count_range, ranges))             # ships indices
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mproc/pool.hpp>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace {

// Words are runs of characters other than spaces and newlines.
long count_words(const std::string& text) {
  long words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

// A deterministic text of `lines` lines of 4 to 15 words taken from a small vocabulary.
std::vector<std::string> make_text(std::size_t lines) {
  static const char* const kWords[] = {"the",    "queue",   "process", "pool",   "fork",
                                       "worker", "message", "lock",    "shared", "memory",
                                       "result", "signal",  "python",  "codec",  "pipe"};
  std::uint64_t x = 12345;
  auto next = [&x] {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::size_t>(x >> 33);
  };
  std::vector<std::string> text(lines);
  for (auto& line : text) {
    const std::size_t n = 4 + next() % 12;
    for (std::size_t w = 0; w < n; ++w) {
      if (w) line += ' ';
      line += kWords[next() % std::size(kWords)];
    }
  }
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  constexpr std::size_t kLines = 400'000;  // about 24 MB of text
  constexpr std::size_t kBlock = 4'000;    // lines per task: 100 tasks

  // The data exists before the Pool: every worker gets it with the fork.
  const std::vector<std::string> lines = make_text(kLines);
  std::size_t bytes = 0;
  long serial = 0;
  for (const auto& line : lines) {
    bytes += line.size() + 1;
    serial += count_words(line);
  }

  mproc::Pool pool;  // forks the workers now: they hold `lines` from here on
  (void)pool.map([](int x) { return x; }, std::vector<int>(64));  // warm up, for fair timings

  // 1. Ship the text: each task carries its block of lines, encoded into the task and decoded in
  //    the worker (what a Pool must do for data the workers do not have).
  std::vector<std::string> blocks;
  for (std::size_t lo = 0; lo < kLines; lo += kBlock) {
    std::string block;
    for (std::size_t i = lo; i < lo + kBlock && i < kLines; ++i) block.append(lines[i]) += '\n';
    blocks.push_back(std::move(block));
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<long> counts = pool.map(count_words, blocks);
  const long by_text = std::accumulate(counts.begin(), counts.end(), 0L);
  const double t_text = seconds_since(t0);

  // 2. Ship indices: each task carries two numbers; the worker reads the lines it inherited. The
  //    lambda captures a pointer (trivially copyable), which means the same thing in a worker
  //    because the worker is a fork of this process made after `lines` was filled. (Data created
  //    or changed after the Pool was created is not in the workers: ship that.)
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  for (std::size_t lo = 0; lo < kLines; lo += kBlock)
    ranges.emplace_back(lo, lo + kBlock < kLines ? lo + kBlock : kLines);
  const std::vector<std::string>* text = &lines;
  auto count_range = [text](std::size_t lo, std::size_t hi) {
    long words = 0;
    for (std::size_t i = lo; i < hi; ++i) words += count_words((*text)[i]);
    return words;
  };
  t0 = std::chrono::steady_clock::now();
  counts = pool.starmap(count_range, ranges);
  const long by_index = std::accumulate(counts.begin(), counts.end(), 0L);
  const double t_index = seconds_since(t0);

  std::printf("%zu lines, %.1f MB, %ld words (serial count); %d workers, %zu tasks\n", kLines,
              static_cast<double>(bytes) / 1e6, serial, pool.processes(), blocks.size());
  std::printf("  shipping the text:  %ld words in %.3f s\n", by_text, t_text);
  std::printf("  shipping indices:   %ld words in %.3f s (%.2fx)\n", by_index, t_index,
              t_index > 0 ? t_text / t_index : 0.0);
  return by_text == serial && by_index == serial ? 0 : 1;
}
