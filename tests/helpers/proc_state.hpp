// helpers/proc_state.hpp — what /proc says about a process, for tests that check a pid's fate.
#pragma once

#include <dirent.h>

#include <fstream>
#include <string>
#include <vector>

namespace mproc_test {

// The process state letter from /proc/<pid>/stat ('R', 'S', 'Z', ...), or 0 if it is gone.
inline char proc_state(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(in, s)) return 0;
  auto close = s.rfind(')');
  if (close == std::string::npos || close + 2 >= s.size()) return 0;
  return s[close + 2];
}

// True while `pid` exists and is not a zombie.
inline bool running(int pid) {
  const char st = proc_state(pid);
  return st != 0 && st != 'Z';
}

// The children of process `pid` (of all its threads), zombies included.
inline std::vector<int> children_of(int pid) {
  std::vector<int> out;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task/";
  DIR* d = opendir(tasks.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(tasks + e->d_name + "/children");
    int child;
    while (f >> child) out.push_back(child);
  }
  closedir(d);
  return out;
}

}  // namespace mproc_test
