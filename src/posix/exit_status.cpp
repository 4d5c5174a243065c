#include "posix/exit_status.hpp"

#include <string.h>
#include <sys/wait.h>

#include "posix/error.hpp"

namespace mproc::detail {

int exitcode_from_siginfo(const siginfo_t& info) noexcept {
  return info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
}

int exitcode_from_wait_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;  // stopped or continued: never asked for (no WUNTRACED/WCONTINUED here)
}

std::string describe_exitcode(int exitcode) {
  if (exitcode >= 0) return "exited with code " + std::to_string(exitcode);
  std::string s = "killed by signal " + std::to_string(-exitcode);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = sigabbrev_np(-exitcode)) s += std::string(" (SIG") + abbrev + ")";
#endif
  return s;
}

std::error_code reap_blocking(pid_t pid, int& exitcode) noexcept {
  int status = 0;
  if (retry_on_eintr([&] { return ::waitpid(pid, &status, 0); }) < 0) return last_error();
  exitcode = exitcode_from_wait_status(status);
  return {};
}

}  // namespace mproc::detail
