// Uses of mproc::Pool that must not compile, one per MPROC_CASE; case 0 is the control that must.
// Run by expect_compile_error.cmake, which checks the compiler's message.
#include <chrono>
#include <functional>
#include <memory>
#include <mproc/pool.hpp>
#include <string>
#include <vector>

namespace {
int twice(int x) { return 2 * x; }
void nothing(int) {}
struct Scale {
  std::vector<int> factors;
  int operator()(int x) const { return x * factors.at(0); }
  template <class A>
  void serialize(A& ar) {
    ar(factors);
  }
};
}  // namespace

int main() {
  mproc::Pool pool(1);
  std::vector<int> xs = {1, 2, 3};
#if MPROC_CASE == 0
  // Functions, captureless lambdas and lambdas with trivially copyable captures are accepted.
  int k = 3;
  (void)pool.map(twice, xs);
  (void)pool.apply_async([](int x) { return x + 1; }, 1);
  (void)pool.apply_async([k](int x) { return x * k; }, 1);
  // So are partials binding encodable values, and function objects with serialize().
  std::string prefix = "n";
  (void)pool.map(
      mproc::partial([](const std::string& p, int x) { return p + std::to_string(x); }, prefix),
      xs);
  (void)pool.map(Scale{{1, 2}}, xs);
  // Every timeout form takes any duration and a time point of any clock.
  auto r = pool.apply_async(twice, 1);
  (void)r.get(std::chrono::seconds(1));
  (void)r.get(std::chrono::duration<double>(1.5));
  (void)r.get_until(std::chrono::system_clock::now() + std::chrono::seconds(1));
  (void)r.wait_until(std::chrono::steady_clock::now());
  auto it = pool.imap(twice, xs);
  (void)it.next(std::chrono::milliseconds(5));
  (void)it.next_until(std::chrono::system_clock::now());
#elif MPROC_CASE == 1
  // A capture that is not trivially copyable cannot travel to a worker.
  std::string s = "text";
  (void)pool.apply_async([s](int x) { return x + static_cast<int>(s.size()); }, 1);
#elif MPROC_CASE == 2
  std::function<int(int)> f = twice;
  (void)pool.map(f, xs);
#elif MPROC_CASE == 3
  (void)pool.map(nothing, xs);
#elif MPROC_CASE == 4
  // A bound argument must be encodable: a pointer is not.
  int k = 3;
  (void)pool.map(mproc::partial([](const int* p, int x) { return *p + x; }, &k), xs);
#elif MPROC_CASE == 5
  // Arguments go through the codec: a type it cannot encode cannot be sent.
  struct Opaque {
    std::unique_ptr<int> v;  // not trivially copyable, no serialize()
  };
  (void)pool.apply_async([](const Opaque& o) { return *o.v; }, Opaque{std::make_unique<int>(1)});
#elif MPROC_CASE == 6
  // A timeout is a std::chrono duration, never a bare number (2 what? seconds? milliseconds?).
  (void)pool.apply_async(twice, 1).get(2);
#elif MPROC_CASE == 7
  // A deadline is a time point, never a duration or a number.
  auto it = pool.imap(twice, xs);
  (void)it.next_until(5);
#endif
  return 0;
}
