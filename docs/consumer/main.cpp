// Uses an installed mproc: a child process increments a shared Value under its lock.
#include <cstdio>
#include <mproc/mproc.hpp>
#include <mutex>

int main() {
  mproc::Value<long> counter(0);
  mproc::Process p([counter]() mutable {
    for (int i = 0; i < 1000; ++i) {
      std::scoped_lock g(counter.get_lock());
      counter.set(counter.get() + 1);
    }
  });
  p.start();
  p.join();
  std::printf("child exit code %d, counter %ld\n", p.exitcode().value_or(-1), counter.get());
  return counter.get() == 1000 && p.exitcode() == 0 ? 0 : 1;
}
