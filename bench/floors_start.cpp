// bench/floors_start.cpp — the floors of the start-method groups (bench/workloads_start.cpp).
//
//   process.start_join_spawn/floor       posix_spawn of a C++ program that exits at once
//                                        (bench/exit_at_once.cpp) + waitpid: an exec's floor
//   process.start_join_spawn/floor.bench posix_spawn of this program, `bench --info` (stdout to
//                                        /dev/null) + waitpid: the same for the image spawn runs,
//                                        with its libraries and static initialisers
//   process.start_join_forkserver/floor  fork + _exit(0) + waitpid (as process.start_join's floor):
//                                        a forkserver's child is a fork, so this is its floor
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "harness.hpp"
#include "protocols.hpp"

#ifndef MPROC_BENCH_EXIT_AT_ONCE
#error "MPROC_BENCH_EXIT_AT_ONCE (the path of bench/exit_at_once.cpp's program) is not defined"
#endif

extern char** environ;

namespace mproc_bench {
namespace {

void wait_exit0(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
  }
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child did not exit with 0");
}

// posix_spawn of `argv` (argv[0] the path), stdout to /dev/null, then waitpid, `n` times.
std::unique_ptr<Runner> spawn_runner(std::vector<std::string> args) {
  return loop_runner([args = std::move(args)](std::uint64_t n) {
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    for (std::uint64_t i = 0; i < n; ++i) {
      pid_t pid = 0;
      const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
      if (rc != 0) {
        ::posix_spawn_file_actions_destroy(&actions);
        throw std::system_error(rc, std::generic_category(), "posix_spawn " + args[0]);
      }
      wait_exit0(pid);
    }
    ::posix_spawn_file_actions_destroy(&actions);
  });
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) throw std::system_error(errno, std::generic_category(), "readlink /proc/self/exe");
  return std::string(buf, static_cast<std::size_t>(n));
}

const Registrar kSpawnFloor{{
    .name = "process.start_join_spawn/floor",
    .group = "process.start_join_spawn",
    .impl = "floor",
    .label = "posix_spawn of a C++ program that exits at once + waitpid",
    .make = [] { return spawn_runner({MPROC_BENCH_EXIT_AT_ONCE}); },
}};

const Registrar kSpawnBench{{
    .name = "process.start_join_spawn/floor.bench",
    .group = "process.start_join_spawn",
    .impl = "floor",
    .label = "posix_spawn of this bench program (--info, stdout to /dev/null) + waitpid",
    .primary = false,
    .make =
        [] {
          return spawn_runner({self_exe(), "--info"});
        },
}};

const Registrar kForkFloor{{
    .name = "process.start_join_forkserver/floor",
    .group = "process.start_join_forkserver",
    .impl = "floor",
    .label = "fork + _exit(0) + waitpid",
    .make =
        [] {
          return loop_runner([](std::uint64_t n) {
            for (std::uint64_t i = 0; i < n; ++i) {
              const pid_t pid = ::fork();
              if (pid == 0) ::_exit(0);
              if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
              wait_exit0(pid);
            }
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
