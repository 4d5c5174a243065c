// soak/leaks.cpp — /proc and /dev/shm snapshots for the end-of-run leak check.
#include "soak/leaks.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <sstream>
#include <thread>

namespace soak {

namespace {

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = opendir(path.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  }
  closedir(d);
  return out;
}

std::string read_link(const std::string& path) {
  char buf[PATH_MAX];
  const ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  return n < 0 ? std::string("?") : std::string(buf, static_cast<std::size_t>(n));
}

// The pid a pidfd refers to (its fdinfo "Pid:" line), or 0.
int pidfd_pid(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  while (in >> key) {
    if (key == "Pid:") {
      int pid = 0;
      in >> pid;
      return pid;
    }
  }
  return 0;
}

}  // namespace

Snapshot take_snapshot() {
  Snapshot s;
  for (const std::string& name : list_dir("/proc/self/fd")) {
    const int fd = std::stoi(name);
    std::string target = read_link("/proc/self/fd/" + name);
    if (target != "?") s.fds.emplace(fd, std::move(target));  // "?": the listing's own fd
  }
  for (const std::string& name : list_dir("/dev/shm")) {
    struct stat st;
    if (stat(("/dev/shm/" + name).c_str(), &st) == 0 && st.st_uid == getuid()) s.shm.insert(name);
  }
  return s;
}

std::vector<std::string> new_fds(const Snapshot& before, const Snapshot& after) {
  std::vector<std::string> out;
  for (const auto& [fd, target] : after.fds) {
    auto it = before.fds.find(fd);
    if (it != before.fds.end() && it->second == target) continue;
    if (target == "anon_inode:[pidfd]" && pidfd_pid(fd) == getpid()) continue;
    if (target.rfind("/proc/", 0) == 0 && target.find("/fd") != std::string::npos) continue;
    out.push_back("fd " + std::to_string(fd) + " -> " + target);
  }
  return out;
}

std::vector<std::string> new_shm(const Snapshot& before, const Snapshot& after) {
  std::vector<std::string> out;
  for (const std::string& name : after.shm)
    if (!before.shm.count(name)) out.push_back("/dev/shm/" + name);
  return out;
}

std::vector<int> children_of(int pid) {
  std::vector<int> out;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task/";
  for (const std::string& tid : list_dir(tasks)) {
    std::ifstream f(tasks + tid + "/children");
    int child;
    while (f >> child) out.push_back(child);
  }
  return out;
}

std::vector<int> children_of_self() { return children_of(getpid()); }

ProcStat proc_stat(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(in, s)) return {};
  const auto close = s.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(s.substr(close + 2));
  ProcStat st;
  rest >> st.state >> st.ppid;
  return st;
}

std::string describe_process(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : cmd)
    if (c == '\0') c = ' ';
  const ProcStat st = proc_stat(pid);
  return "pid " + std::to_string(pid) + " state " + (st.state ? std::string(1, st.state) : "?") +
         " (" + cmd + ")";
}

int reap_orphans(const std::set<int>& known) {
  int n = 0;
  for (int pid : children_of_self()) {
    if (known.count(pid)) continue;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) ++n;
  }
  return n;
}

std::vector<std::string> settle_children(std::chrono::milliseconds settle) {
  const auto end = std::chrono::steady_clock::now() + settle;
  std::vector<int> left;
  for (;;) {
    reap_orphans({});
    left = children_of_self();
    if (left.empty() || std::chrono::steady_clock::now() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<std::string> leaked;
  for (int pid : left) {
    leaked.push_back(describe_process(pid));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
  }
  return leaked;
}

}  // namespace soak
