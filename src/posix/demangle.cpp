#include "posix/demangle.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace mproc::detail {

std::string demangle(const char* mangled) {
  if (mangled == nullptr) return "unknown exception";
  int status = -1;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                           std::free);
  return (status == 0 && d) ? std::string(d.get()) : std::string(mangled);
}

std::string current_exception_type_name() {
  const std::type_info* ti = abi::__cxa_current_exception_type();
  return ti ? demangle(ti->name()) : "unknown exception";
}

}  // namespace mproc::detail
