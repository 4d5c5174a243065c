// posix/demangle.hpp — C++ type names as people read them (the Itanium C++ ABI's demangler, which
// GCC and Clang use on Linux): a task's or a child's exception is reported by its type's name.
#pragma once

#include <string>

namespace mproc::detail {

// "St16invalid_argument" -> "std::invalid_argument"; a name that does not demangle comes back as
// it is. Throws std::bad_alloc only.
std::string demangle(const char* mangled);

// The demangled type of the exception being handled ("unknown exception" outside a handler, or
// for a foreign exception without a type). Call in a catch block. Throws std::bad_alloc only.
std::string current_exception_type_name();

}  // namespace mproc::detail
