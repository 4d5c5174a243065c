// bench/workloads_start.cpp — mproc's rows of the start-method groups (mproc/start_method.hpp).
//
//   process.start_join_spawn       start + join of a noop Process under spawn
//   process.start_join_forkserver  the same under forkserver, the server started outside the clock
//   process.forkserver_first_start the first forkserver start of a program: the server's own spawn
//   pool.lifecycle_<method>        Pool(2) made, one task's result, close() + join()
//
// spawn and forkserver run this program again (/proc/self/exe): main() calls mproc::init first.
// The floors of these groups are in floors_start.cpp, CPython's rows in
// bench/python/anchors_start.py.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <mproc/pool.hpp>
#include <mproc/process.hpp>
#include <mproc/start_method.hpp>
#include <string>
#include <system_error>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

void noop() {}

void start_join(mproc::StartMethod method) {
  mproc::Process p(mproc::ProcessOptions{.start_method = method}, noop);
  p.start();
  p.join();
  check(p.exitcode() == 0, "child did not exit with 0");
}

// A row of start + join under `method`. With forkserver, the runner's making starts (and joins)
// one child, so that the server exists before the clock runs: its start is a one-time cost,
// measured by process.forkserver_first_start.
Workload start_join_workload(const std::string& group, mproc::StartMethod method,
                             const std::string& label) {
  return {
      .name = group + "/mproc",
      .group = group,
      .impl = "mproc",
      .label = label,
      .make =
          [method] {
            if (method == mproc::StartMethod::forkserver) start_join(method);  // warm-up
            return loop_runner([method](std::uint64_t n) {
              for (std::uint64_t i = 0; i < n; ++i) start_join(method);
            });
          },
  };
}

const Registrar kSpawn{
    start_join_workload("process.start_join_spawn", mproc::StartMethod::spawn,
                        "mproc::Process({.start_method = spawn}, noop) start() + join()")};

const Registrar kForkserver{start_join_workload(
    "process.start_join_forkserver", mproc::StartMethod::forkserver,
    "mproc::Process({.start_method = forkserver}, noop) start() + join(), server already running")};

void write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ::_exit(3);
    c += w;
    n -= static_cast<std::size_t>(w);
  }
}

// One first start: a child forked here (a process that has never had a forkserver, as a program
// just started) times start + join of its first forkserver Process, which spawns the server, and
// writes the seconds to a pipe. It then closes its descriptors, the server's control socket among
// them, so that the server ends, and reaps it before it exits: outside the clock, and no process
// is left behind.
double first_forkserver_start() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::system_error(e, std::generic_category(), "fork");
  }
  if (pid == 0) {
    double t = -1;
    try {
      const double t0 = now_seconds();
      start_join(mproc::StartMethod::forkserver);
      t = now_seconds() - t0;
    } catch (...) {
    }
    write_all(fds[1], &t, sizeof t);
    ::close_range(3, ~0u, 0);  // the server ends on its control socket's end of file
    int status = 0;
    while (::waitpid(-1, &status, 0) > 0 || errno == EINTR) {
    }
    ::_exit(t >= 0 ? 0 : 1);
  }
  ::close(fds[1]);
  double t = -1;
  std::size_t got = 0;
  while (got < sizeof t) {
    const ssize_t r = ::read(fds[0], reinterpret_cast<char*>(&t) + got, sizeof t - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  check(got == sizeof t && t >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "process.forkserver_first_start: the child failed");
  return t;
}

const Registrar kFirstStart{{
    .name = "process.forkserver_first_start/mproc",
    .group = "process.forkserver_first_start",
    .impl = "mproc",
    .label = "first mproc::Process({.start_method = forkserver}, noop) start() + join() of a "
             "process: spawns the server",
    .make = [] { return scaled_runner(1, UINT64_MAX, [] { return first_forkserver_start(); }); },
}};

// A row of pool.lifecycle_<method>: Pool(2) under `method` made, the result of one task taken,
// close() + join(), the Pool destroyed. With forkserver the server is started before the clock.
Workload pool_lifecycle_workload(mproc::StartMethod method) {
  const std::string m(mproc::start_method_name(method));
  return {
      .name = "pool.lifecycle_" + m + "/mproc",
      .group = "pool.lifecycle_" + m,
      .impl = "mproc",
      .label = "mproc::Pool({.processes = 2, .start_method = " + m +
               "}), apply(x + 1, 41), close(), join()",
      .make =
          [method] {
            restore_affinity();
            if (method == mproc::StartMethod::forkserver) start_join(method);  // warm-up
            return loop_runner([method](std::uint64_t n) {
              for (std::uint64_t i = 0; i < n; ++i) {
                mproc::Pool pool(mproc::PoolOptions{.processes = 2, .start_method = method});
                const int r = pool.apply([](int x) { return x + 1; }, 41);
                check(r == 42, "pool.lifecycle: wrong result");
                pool.close();
                pool.join();
              }
            });
          },
  };
}

const Registrar kPoolFork{pool_lifecycle_workload(mproc::StartMethod::fork)};
const Registrar kPoolSpawn{pool_lifecycle_workload(mproc::StartMethod::spawn)};
const Registrar kPoolForkserver{pool_lifecycle_workload(mproc::StartMethod::forkserver)};

}  // namespace
}  // namespace mproc_bench
