// Prints the descriptors this program was started with, one "fd -> target" per line, in order
// (the directory stream it reads them through excluded). Used by cloexec_test: whatever a parent
// leaves without close-on-exec shows up here.
#include <dirent.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

int main() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 2;
  std::set<int> fds;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd != dirfd(d)) fds.insert(fd);
  }
  closedir(d);
  for (int fd : fds) {
    char target[PATH_MAX] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    std::printf("%d -> %s\n", fd, n > 0 ? target : "?");
  }
  return 0;
}
