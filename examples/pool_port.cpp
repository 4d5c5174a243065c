// A typical Python Pool script, ported line by line: each Python line (or block) is the comment
// above its C++ counterpart. The script counts words over some lines of text with map, sums
// squares with imap, runs a task with apply_async and a callback, raises with starmap, and binds
// an argument with functools.partial.
//
// Differences worth knowing (see <mproc/pool.hpp>): a task is a function or a lambda whose
// captures are trivially copyable, never a closure over a std::string (bind such data with
// mproc::partial, as Python binds what a lambda cannot carry); imap's default chunksize is
// adaptive rather than 1; leaving the scope of a Pool waits for the submitted tasks (close +
// join), where Python's `with Pool()` terminates.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mproc/mproc.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

// def count_words(line):
//     return len(line.split())
int count_words(std::string line) {
  std::istringstream in(line);
  std::string word;
  int n = 0;
  while (in >> word) ++n;
  return n;
}

// def square(x):
//     return x * x
long square(long x) { return x * x; }

// def power(base, exp):
//     return base ** exp
long power(long base, int exp) {
  long r = 1;
  for (int i = 0; i < exp; ++i) r *= base;
  return r;
}

// def tag(prefix, n):
//     return f"{prefix}-{n}"
std::string tag(const std::string& prefix, long n) { return prefix + "-" + std::to_string(n); }

// if __name__ == "__main__":
// Python's range(lo, hi), as a vector (any input range works with the Pool).
std::vector<long> range(long lo, long hi) {
  std::vector<long> v;
  for (long i = lo; i < hi; ++i) v.push_back(i);
  return v;
}

int main() {
  int failures = 0;
  auto expect = [&failures](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "pool_port: wrong result: %s\n", what);
      ++failures;
    }
  };
  {
    //     lines = ["the quick brown fox", "jumps over", "the lazy dog", ""]
    const std::vector<std::string> lines = {"the quick brown fox", "jumps over", "the lazy dog",
                                            ""};
    //     with Pool(processes=2) as pool:
    mproc::Pool pool(2);

    //         counts = pool.map(count_words, lines)
    std::vector<int> counts = pool.map(count_words, lines);
    //         print("words per line:", counts, "total:", sum(counts))
    std::printf("words per line:");
    for (int c : counts) std::printf(" %d", c);
    const int total = std::accumulate(counts.begin(), counts.end(), 0);
    std::printf("  total: %d\n", total);
    expect(counts == std::vector<int>{4, 2, 3, 0} && total == 9, "map(count_words)");

    //         total = 0
    //         for sq in pool.imap(square, range(1, 101), chunksize=10):
    //             total += sq
    long sum_sq = 0;
    for (long sq : pool.imap(square, range(1, 101), 10)) sum_sq += sq;
    //         print("sum of squares 1..100:", total)
    std::printf("sum of squares 1..100: %ld\n", sum_sq);
    expect(sum_sq == 338350, "imap(square)");

    //         done = []
    //         r = pool.apply_async(power, (2, 20), callback=done.append)
    //         print("2 ** 20 =", r.get(timeout=10), "callback ran:", bool(done))
    std::vector<long> done;  // the callback runs in this process (the pool's result thread)
    auto r = pool.apply_async(power, std::tuple(2L, 20), [&done](long v) { done.push_back(v); });
    const long p = r.get(std::chrono::seconds(10));
    std::printf("2 ** 20 = %ld, callback ran: %s\n", p, done.empty() ? "False" : "True");
    expect(p == 1048576 && done == std::vector<long>{1048576}, "apply_async(power)");

    //         print(pool.starmap(power, [(2, 3), (3, 2), (10, 4)]))
    const std::vector<std::tuple<long, int>> pairs = {{2, 3}, {3, 2}, {10, 4}};
    std::vector<long> powers = pool.starmap(power, pairs);
    for (long v : powers) std::printf("%ld ", v);
    std::printf("\n");
    expect(powers == std::vector<long>{8, 9, 10000}, "starmap(power)");

    //         print(sorted(pool.imap_unordered(square, range(5))))
    std::vector<long> unordered;
    for (long v : pool.imap_unordered(square, range(0, 5))) unordered.push_back(v);
    std::sort(unordered.begin(), unordered.end());
    for (long v : unordered) std::printf("%ld ", v);
    std::printf("\n");
    expect(unordered == std::vector<long>{0, 1, 4, 9, 16}, "imap_unordered(square)");

    //         print(pool.map(partial(tag, "row"), range(3)))
    std::vector<std::string> tags = pool.map(mproc::partial(tag, std::string("row")), range(0, 3));
    for (const auto& t : tags) std::printf("%s ", t.c_str());
    std::printf("\n");
    expect(tags == std::vector<std::string>{"row-0", "row-1", "row-2"}, "map(partial(tag))");
  }  // the pool's destructor: close() + join()
  return failures == 0 ? 0 : 1;
}
