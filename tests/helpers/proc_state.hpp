// helpers/proc_state.hpp — what /proc says about a process, for tests that check a pid's fate.
#pragma once

#include <fstream>
#include <string>

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

}  // namespace mproc_test
