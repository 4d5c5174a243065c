// The throwers of OS errors declared in posix/error.hpp: one std::system_error whose what() names
// the operation, the resource and the errno by name ("shm_open /mproc-1: ... (EACCES)").
#include "posix/error.hpp"

#include <string.h>

#include <mproc/errors.hpp>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mproc::detail {

namespace {

// "<what>: <message> (<errno name>)"; no name for a category other than generic/system.
std::string os_error_text(std::error_code ec, const char* what) {
  std::string s = what ? what : "";
  if (!s.empty()) s += ": ";
  s += ec.message();
  if (ec.category() == std::generic_category() || ec.category() == std::system_category()) {
    s += " (" + errno_name(ec.value()) + ")";
  }
  return s;
}

// A plain std::system_error (its dynamic type matters: a Pool reports and rethrows a task's
// exception by its type name) whose what() is `text`. std::system_error keeps its text in its
// std::runtime_error base (libstdc++ and libc++ alike), so that part is replaced; copies share it
// and never throw. Where a library composes what() otherwise, its own text stands.
[[noreturn]] void throw_os_error(std::error_code ec, const char* what) {
  std::system_error e(ec, what ? what : "");
  std::string text = os_error_text(ec, what);
  static_cast<std::runtime_error&>(e) = std::runtime_error(text);
  if (text != e.what()) throw std::system_error(ec, what ? what : "");
  throw e;
}

}  // namespace

std::string errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* name = strerrorname_np(err)) return name;
#endif
  return "errno " + std::to_string(err);
}

[[noreturn]] void throw_system_error(std::error_code ec, const char* what) {
  throw_os_error(ec, what);
}

[[noreturn]] void throw_system_error(std::error_code ec, const std::string& what) {
  throw_os_error(ec, what.c_str());
}

[[noreturn]] void throw_errno(int err, const char* what) {
  throw_os_error(std::error_code(err, std::generic_category()), what);
}

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw_os_error(std::error_code(err, std::generic_category()), what.c_str());
}

}  // namespace mproc::detail
