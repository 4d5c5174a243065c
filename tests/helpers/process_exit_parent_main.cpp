// process_exit_parent_main <dir> — a parent that returns from main with three children running:
//   * a daemon child sleeping (it should be terminated: exit code -15),
//   * a daemon child that ignores SIGTERM (it should be killed after the grace period: -9),
//   * a non-daemon child that waits until the stubborn daemon is gone, writes <dir>/worker_done and
//     returns 5 (it should be joined: had the parent not waited for it after dealing with the
//     daemons, the child would have died with the parent before writing).
// It writes the children's pids to <dir>/pids, and from an atexit handler that runs after mproc's
// own (registered before the first start) the children's exit codes to <dir>/result.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mproc/process.hpp>
#include <string>
#include <thread>

namespace {

std::string g_dir;
mproc::Process* g_daemon = nullptr;
mproc::Process* g_stubborn = nullptr;
mproc::Process* g_worker = nullptr;

// True while `pid` exists and is not a zombie (/proc/<pid>/stat).
bool running(int pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return false;
  char buf[512] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* close = std::strrchr(buf, ')');
  return n > 0 && close && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
}

int code_of(mproc::Process* p) {
  auto c = p->exitcode();
  return c ? *c : 1000;
}

void report() {
  std::FILE* f = std::fopen((g_dir + "/result").c_str(), "w");
  if (!f) return;
  std::fprintf(f, "daemon=%d stubborn=%d worker=%d\n", code_of(g_daemon), code_of(g_stubborn),
               code_of(g_worker));
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <dir>\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  std::atexit(report);  // before the first start(): runs after mproc's exit handler

  int ready[2];
  if (pipe(ready) != 0) return 3;

  g_daemon = new mproc::Process({.name = "daemon", .daemon = true}, [] {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 40;
  });
  g_stubborn = new mproc::Process({.name = "stubborn", .daemon = true}, [w = ready[1]] {
    signal(SIGTERM, SIG_IGN);
    (void)!write(w, "r", 1);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 41;
  });
  g_worker = new mproc::Process({.name = "worker"}, [] {
    // Finish only after the parent has dealt with its daemons at exit (the stubborn one is gone,
    // at most 30 s), so that finishing proves the parent still waits for this child afterwards.
    const int stubborn = *g_stubborn->pid();
    for (int i = 0; i < 3000 && running(stubborn); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::FILE* f = std::fopen((g_dir + "/worker_done").c_str(), "w");
    if (!f) return 10;
    std::fclose(f);
    return 5;
  });
  g_daemon->start();
  g_stubborn->start();
  g_worker->start();

  char c;
  if (read(ready[0], &c, 1) != 1) return 4;  // SIGTERM is ignored from now on

  std::FILE* f = std::fopen((g_dir + "/pids").c_str(), "w");
  if (!f) return 5;
  std::fprintf(f, "%d %d %d\n", *g_daemon->pid(), *g_stubborn->pid(), *g_worker->pid());
  std::fclose(f);
  return 0;
}
