# Warnings and sanitizers shared by every target of the project.
function(mproc_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
    -Wno-sign-conversion -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # Checks the lock annotations of src/thread_annotations.hpp (no-ops with other compilers).
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  if(MPROC_DEVELOP)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# UBSan's vptr check is left out: to validate an object's vtable it probes the memory through a
# pipe (sanitizer_common's IsAccessibleMemoryRange), so in a process whose descriptor table is full
# (the RLIMIT_NOFILE exhaustion tests) every virtual call on a std::error_category or an exception
# is reported as "invalid vptr". ASan still catches a call through a freed object.
if(MPROC_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize=vptr
                      -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(MPROC_TSAN)
  if(MPROC_SANITIZE)
    message(FATAL_ERROR "MPROC_TSAN and MPROC_SANITIZE cannot be combined (one build per sanitizer)")
  endif()
  # Every contended mproc lock waits in pthread_mutex_clocklock (src/sync_mutex.cpp). ThreadSanitizer
  # intercepts it only from LLVM 18 on (llvm-project PR 75713); older runtimes, GCC 12's included,
  # see such a lock taken without a lock call, so every contended lock reads as a data race plus
  # an "unlock of an unlocked mutex". `make tsan` uses Debian's clang-19 (scripts/install-deps.sh).
  if(NOT (CMAKE_CXX_COMPILER_ID STREQUAL "Clang"
          AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 18))
    message(FATAL_ERROR "MPROC_TSAN needs clang 18 or newer (found ${CMAKE_CXX_COMPILER_ID} "
      "${CMAKE_CXX_COMPILER_VERSION}): older ThreadSanitizer runtimes do not intercept "
      "pthread_mutex_clocklock, so every contended mproc lock is reported as a race. "
      "Configure with CXX=clang++-19 (scripts/install-deps.sh tsan installs it).")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
