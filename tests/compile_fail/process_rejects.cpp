// Uses of mproc::Process that must not compile, one per MPROC_CASE; case 0 is the control that
// must. Run by expect_compile_error.cmake, which checks the compiler's message.
#include <functional>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>
#include <string>
#include <utility>

namespace {

// The Python habit: a pipeline stage taking its queues by (non-const) reference.
[[maybe_unused]] void stage(mproc::Queue<int>& in, mproc::Queue<int>& out) {
  out.put(in.get() + 1);
}

// The same stage written as mproc expects: handles by value (copies share the queue).
[[maybe_unused]] void stage_by_value(mproc::Queue<int> in, mproc::Queue<int> out) {
  out.put(in.get() + 1);
}

[[maybe_unused]] int count_by_ref(int& n) { return ++n; }

}  // namespace

int main() {
  mproc::Queue<int> q1, q2;
#if MPROC_CASE == 0  // the control: the same targets, written the way that works
  mproc::Process a(stage_by_value, q1, q2);
  mproc::Lock lock;
  mproc::Event event;
  mproc::Process b(
      {.name = "worker"},
      [](mproc::Lock l, mproc::Event e, const std::string& s) {
        l.acquire();
        l.release();
        if (!s.empty()) e.set();
      },
      lock, event, std::string("x"));  // const& binds too
  auto [parent_end, child_end] = mproc::Pipe();
  mproc::Process c([](mproc::Connection conn) { conn.send(1); }, std::move(child_end));
  mproc::Process d([](mproc::Queue<int>&& q) { q.put(1); }, q1);  // rvalue reference: the copy
  int n = 0;
  mproc::Process e(count_by_ref, std::ref(n));  // std::ref still binds a reference parameter
  mproc::Process f([](auto q) { q.put(1); }, q1);
#elif MPROC_CASE == 1
  mproc::Process p(stage, q1, q2);
#elif MPROC_CASE == 2  // the form with options; the second parameter is the reference
  mproc::Lock lock;
  mproc::Process p(
      {.name = "worker"}, [](int, mproc::Lock& l) { l.acquire(); }, 1, lock);
#elif MPROC_CASE == 3  // a generic lambda deducing `auto&`
  mproc::Event event;
  mproc::Process p([](auto& e) { e.set(); }, event);
#elif MPROC_CASE == 4  // not a handle: any non-const lvalue reference parameter
  int n = 0;
  mproc::Process p(count_by_ref, n);
#else
#error "unknown MPROC_CASE"
#endif
}
