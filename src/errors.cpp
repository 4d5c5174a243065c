// Out-of-line anchors for the exception types (one vtable/typeinfo per type).
#include <mproc/errors.hpp>
#include <system_error>

#include "posix/error.hpp"

namespace mproc::detail {

[[noreturn]] void throw_system_error(std::error_code ec, const char* what) {
  throw std::system_error(ec, what);
}

[[noreturn]] void throw_errno(int err, const char* what) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace mproc::detail
