// Timeouts and deadlines that must not compile (mproc/timeout.hpp), one per MPROC_CASE; case 0 is
// the control that must. Run by expect_compile_error.cmake, which checks the compiler's message:
// an int is not a timeout (2 is not 2s), and a duration is not a deadline.
#include <chrono>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
#include <mproc/sync.hpp>
#include <mutex>
#include <vector>

using namespace std::chrono_literals;

void use(mproc::Queue<int>& q, mproc::Lock& lock, mproc::Semaphore& sem, mproc::Event& e,
         mproc::Process& p, mproc::Connection& c, std::vector<mproc::Connection>& conns) {
#if MPROC_CASE == 0
  // Every duration and every clock's time point is accepted.
  q.put(1, 2s);
  q.put_until(1, std::chrono::system_clock::now() + 2s);
  (void)q.get(std::chrono::duration<double>(0.5));
  (void)q.get_until(std::chrono::steady_clock::now() + 500ms);
  (void)q.get_many_until(4, std::chrono::system_clock::now());
  (void)lock.acquire(true);
  (void)lock.acquire(250ms);
  (void)lock.acquire_until(std::chrono::system_clock::now() + 1s);
  {
    std::unique_lock<mproc::Lock> g(lock, 1s);  // TimedLockable: try_lock_for(duration)
    (void)g.try_lock_until(std::chrono::system_clock::now());
  }
  (void)sem.acquire(false);
  (void)e.wait_until(std::chrono::system_clock::now() + 1s);
  (void)p.join(std::chrono::duration<double>(1.5));
  (void)c.poll_until(std::chrono::system_clock::now());
  (void)c.recv<int>(1s, 64);
  (void)mproc::wait(conns, 10ms);
  (void)mproc::wait_until({c, p}, std::chrono::system_clock::now() + 1s);
#elif MPROC_CASE == 1
  (void)q.get(2);  // an int is not a timeout
#elif MPROC_CASE == 2
  (void)q.get_until(2s);  // a duration is not a deadline
#elif MPROC_CASE == 3
  (void)lock.acquire(2);  // neither a bool (block) nor a timeout
#elif MPROC_CASE == 4
  (void)e.wait_until(500ms);
#elif MPROC_CASE == 5
  (void)p.join(3);
#elif MPROC_CASE == 6
  (void)mproc::wait(conns, 5);
#elif MPROC_CASE == 7
  (void)sem.acquire(1);
#elif MPROC_CASE == 8
  (void)c.poll_until(1s);
#endif
}

int main() {}
