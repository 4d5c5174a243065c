// helpers/leak_check.cpp — see leak_check.hpp.
#include "helpers/leak_check.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "start/start.hpp"

namespace mproc_test::leak {
namespace {

bool all_digits(const char* s) {
  if (*s == 0) return false;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

std::string read_link(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Parses /proc/<pid>/stat; false if the process is gone or the line is not understood.
bool read_stat(int pid, ProcInfo& out) {
  const std::string s = read_all("/proc/" + std::to_string(pid) + "/stat");
  const auto open = s.find('(');
  const auto close = s.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  out.pid = pid;
  out.comm = s.substr(open + 1, close - open - 1);
  std::istringstream rest(s.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state) of proc(5)
  std::string tok;
  while (f.size() < 20 && rest >> tok) f.push_back(tok);
  if (f.size() < 20) return false;
  out.state = f[0][0];
  out.ppid = std::atoi(f[1].c_str());
  out.pgid = std::atoi(f[2].c_str());
  out.start = std::strtoull(f[19].c_str(), nullptr, 10);  // field 22, starttime
  return true;
}

std::string cmdline_of(const ProcInfo& p) {
  std::string c = read_all("/proc/" + std::to_string(p.pid) + "/cmdline");
  while (!c.empty() && c.back() == '\0') c.pop_back();
  for (char& ch : c) {
    if (ch == '\0') ch = ' ';
  }
  if (c.empty()) return "[" + p.comm + "]";
  return c;
}

// Every process on the machine that /proc lets us read.
std::vector<ProcInfo> all_processes() {
  std::vector<ProcInfo> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (!all_digits(e->d_name)) continue;
    ProcInfo p;
    if (read_stat(std::atoi(e->d_name), p)) out.push_back(p);
  }
  ::closedir(d);
  return out;
}

// The descendants of this process: the parent-chain closure, plus the members of its process
// group when it leads one (orphaned grandchildren keep the group).
std::vector<ProcInfo> descendants() {
  const int self = ::getpid();
  const bool own_group = ::getpgrp() == self;
  std::vector<ProcInfo> procs = all_processes();
  std::set<int> tree{self};
  for (bool grew = true; grew;) {
    grew = false;
    for (const ProcInfo& p : procs) {
      if (tree.count(p.pid)) continue;
      if (tree.count(p.ppid) || (own_group && p.pgid == self)) {
        tree.insert(p.pid);
        grew = true;
      }
    }
  }
  std::vector<ProcInfo> out;
  for (const ProcInfo& p : procs) {
    if (p.pid != self && tree.count(p.pid)) out.push_back(p);
  }
  return out;
}

// The pid a pidfd refers to, from the "Pid:" line of its fdinfo (-1 once reaped); 0 if unknown.
int pidfd_pid(int fd) {
  std::istringstream info(read_all("/proc/self/fdinfo/" + std::to_string(fd)));
  std::string line;
  while (std::getline(info, line)) {
    if (line.rfind("Pid:", 0) == 0) return std::atoi(line.c_str() + 4);
  }
  return 0;
}

// mproc's pidfd of the calling process (see the header).
bool is_pidfd_of_self(const Snapshot& s, int fd) {
  auto it = s.pidfd_pids.find(fd);
  return it != s.pidfd_pids.end() && it->second == ::getpid();
}

// Processes that hold /dev/shm/<name> open or mapped.
std::set<int> holders_of(const std::string& name) {
  const std::string path = "/dev/shm/" + name;
  std::set<int> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (!all_digits(e->d_name)) continue;
    const std::string base = std::string("/proc/") + e->d_name;
    const int pid = std::atoi(e->d_name);
    if (DIR* fds = ::opendir((base + "/fd").c_str())) {
      while (dirent* f = ::readdir(fds)) {
        if (all_digits(f->d_name) && read_link(base + "/fd/" + f->d_name) == path) {
          out.insert(pid);
          break;
        }
      }
      ::closedir(fds);
    }
    if (out.count(pid)) continue;
    std::istringstream maps(read_all(base + "/maps"));
    std::string line;
    while (std::getline(maps, line)) {
      if (line.size() >= path.size() &&
          line.compare(line.size() - path.size(), path.size(), path) == 0) {
        out.insert(pid);
        break;
      }
    }
  }
  ::closedir(d);
  return out;
}

// True for this process and its descendants in `s`.
bool in_tree(const Snapshot& s, int pid) {
  if (pid == ::getpid()) return true;
  for (const auto& [key, p] : s.descendants) {
    if (key.first == pid) return true;
  }
  return false;
}

std::string describe_proc(const ProcInfo& p) {
  std::ostringstream s;
  s << "pid " << p.pid << " (state " << p.state << ", parent " << p.ppid << "): " << cmdline_of(p);
  return s.str();
}

}  // namespace

std::string Leaks::describe() const {
  std::ostringstream s;
  s << "leak check: the test left behind";
  for (const auto& f : fds) s << "\n  fd " << f;
  for (const auto& p : processes) s << "\n  a running descendant: " << p;
  for (const auto& z : zombies) s << "\n  a zombie: " << z;
  for (const auto& m : shm) s << "\n  a /dev/shm entry: " << m;
  return s.str();
}

void own_process_group() {
  if (::getpgrp() == ::getpid()) return;
  if (::isatty(STDIN_FILENO) || ::isatty(STDOUT_FILENO) || ::isatty(STDERR_FILENO)) return;
  (void)::setpgid(0, 0);  // EPERM for a session leader: then the parent chain alone is used
}

Snapshot take_snapshot() {
  Snapshot s;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
      if (!all_digits(e->d_name)) continue;
      const int fd = std::atoi(e->d_name);
      if (fd == own) continue;
      s.fds[fd] = read_link(std::string("/proc/self/fd/") + e->d_name);
      if (s.fds[fd] == "anon_inode:[pidfd]") s.pidfd_pids[fd] = pidfd_pid(fd);
    }
    ::closedir(d);
  }
  for (const ProcInfo& p : descendants()) {
    s.descendants[{p.pid, p.start}] = p;
    if (p.comm != "llvm-symbolizer") continue;
    const std::string dir = "/proc/" + std::to_string(p.pid) + "/fd";
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (all_digits(e->d_name)) s.symbolizer_targets.insert(read_link(dir + "/" + e->d_name));
      }
      ::closedir(d);
    }
  }
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      struct stat st {};
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          st.st_uid == ::geteuid()) {
        s.shm.insert(e->d_name);
      }
    }
    ::closedir(d);
  }
  return s;
}

Leaks compare(const Snapshot& before, const Snapshot& after) {
  Leaks l;
  // The forkserver (src/start/forkserver.cpp) is process-lifetime state, started on first use.
  const int server_pid = static_cast<int>(mproc::detail::forkserver_pid());
  int server_ctl = -1;
  int server_pidfd = -1;
  mproc::detail::forkserver_fds(server_ctl, server_pidfd);
  bool had_self_pidfd = false;
  for (const auto& [fd, target] : before.fds) {
    if (is_pidfd_of_self(before, fd)) had_self_pidfd = true;
  }
  for (const auto& [fd, target] : after.fds) {
    auto it = before.fds.find(fd);
    if (it != before.fds.end() && it->second == target) continue;
    if (target.rfind("pipe:", 0) == 0 && after.symbolizer_targets.count(target)) continue;
    if (fd == server_ctl || fd == server_pidfd) continue;
    if (!had_self_pidfd && is_pidfd_of_self(after, fd)) {
      had_self_pidfd = true;  // the library's one process-lifetime pidfd
      continue;
    }
    std::string line = std::to_string(fd) + " -> " + target;
    if (auto p = after.pidfd_pids.find(fd); p != after.pidfd_pids.end()) {
      line += p->second > 0 ? " (of pid " + std::to_string(p->second) + ")"
                            : " (of a process already reaped)";
    }
    l.fds.push_back(line);
  }
  for (const auto& [key, p] : after.descendants) {
    if (before.descendants.count(key)) {
      // Present before the test; a new zombie among them is still the test's doing.
      if (p.state != 'Z' || before.descendants.at(key).state == 'Z') continue;
    }
    if (p.comm == "llvm-symbolizer") continue;            // the sanitizer runtime's, see the header
    if (p.pid == server_pid && p.state != 'Z') continue;  // the forkserver, see above
    // A dead orphan waiting for init (or another reaper outside the tree) is not the test's to
    // reap; a zombie whose parent is the test process or one of its descendants is.
    if (p.state == 'Z' && !in_tree(after, p.ppid)) continue;
    if (p.state == 'Z') {
      l.zombies.push_back(describe_proc(p));
    } else {
      l.processes.push_back(describe_proc(p));
      l.pids.push_back(p.pid);
    }
  }
  for (const std::string& name : after.shm) {
    if (before.shm.count(name)) continue;
    const std::set<int> holders = holders_of(name);
    bool ours = holders.empty();
    for (int pid : holders) ours = ours || in_tree(after, pid);
    if (!ours) continue;  // another test's live segment (ctest -j)
    std::string line = "/dev/shm/" + name;
    if (!holders.empty()) {
      line += " (held by pid";
      for (int pid : holders) line += " " + std::to_string(pid);
      line += ")";
    }
    l.shm.push_back(line);
  }
  return l;
}

Leaks wait_for_no_leaks(const Snapshot& before, std::chrono::milliseconds settle) {
  const auto deadline = std::chrono::steady_clock::now() + settle;
  auto pause = std::chrono::milliseconds(2);
  for (;;) {
    Leaks l = compare(before, take_snapshot());
    if (l.empty() || std::chrono::steady_clock::now() >= deadline) return l;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
}

void Listener::OnTestStart(const ::testing::TestInfo&) {
  const char* env = std::getenv("MPROC_LEAK_CHECK");
  active_ = !(env && std::strcmp(env, "0") == 0);
  if (!active_) return;
  pid_ = ::getpid();
  before_ = take_snapshot();
}

void Listener::OnTestEnd(const ::testing::TestInfo&) {
  if (!active_ || ::getpid() != pid_) return;
  active_ = false;
  const Leaks l = wait_for_no_leaks(before_);
  if (l.empty()) return;
  ADD_FAILURE() << l.describe()
                << (l.pids.empty() ? "" : "\n  (the running descendants were killed with SIGKILL)");
  for (int pid : l.pids) ::kill(pid, SIGKILL);
  // Until they are dead (zombies or gone), so that the next test does not see them die.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (int pid : l.pids) {
    ProcInfo p;
    while (read_stat(pid, p) && p.state != 'Z' && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

void install() { ::testing::UnitTest::GetInstance()->listeners().Append(new Listener); }

}  // namespace mproc_test::leak
