# Cross-compiling mproc for 64-bit Arm Linux with Debian's cross toolchain (`make cross`):
#   apt-get install g++-aarch64-linux-gnu qemu-user      (scripts/install-deps.sh cross)
#   cmake -S . -B build/aarch64/mproc -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# The sysroot is Debian's /usr/aarch64-linux-gnu (glibc and libstdc++ for arm64). Test programs
# run through qemu-user (CMAKE_CROSSCOMPILING_EMULATOR), so gtest_discover_tests and ctest work
# unchanged where qemu-aarch64 is installed.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(MPROC_CROSS_TRIPLE aarch64-linux-gnu)
set(MPROC_CROSS_SYSROOT /usr/${MPROC_CROSS_TRIPLE})

set(CMAKE_C_COMPILER ${MPROC_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${MPROC_CROSS_TRIPLE}-g++)

# Libraries and headers from the arm64 sysroot (and any prefix a caller adds, e.g. the cross-built
# GoogleTest of `make cross`); programs (python3, the emulator) from the build machine.
list(APPEND CMAKE_FIND_ROOT_PATH ${MPROC_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

find_program(MPROC_QEMU_AARCH64 qemu-aarch64)
if(MPROC_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MPROC_QEMU_AARCH64} -L ${MPROC_CROSS_SYSROOT})
endif()
