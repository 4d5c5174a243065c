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

if(MPROC_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(MPROC_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
