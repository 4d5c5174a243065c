#!/usr/bin/env bash
# Installs the Debian packages mproc's build, tests and benchmarks need, when they are missing.
# Usage: scripts/install-deps.sh [build|test|tsan|bench|cross|format|all]   (default: all)
# `format` is clang-format-16, the pinned formatter (the first that formats requires-clauses).
# `tsan` is the test set plus clang-19 with its ThreadSanitizer runtime and llvm-symbolizer: clang
# 18 is the first whose TSan intercepts pthread_mutex_clocklock (cmake/mproc_options.cmake).
# `cross` is the aarch64 cross build (`make cross`): g++-aarch64-linux-gnu with its sysroot in
# /usr/aarch64-linux-gnu, GoogleTest's sources (googletest, built there with the cross compiler:
# Debian has no aarch64 libgtest for an amd64 host) and qemu-user to run the unit tests.
# `test`, `tsan` and `all` include the libraries of the codec's adapters (cereal, protobuf,
# Boost.Serialization, nlohmann::json), whose tests run in `make test`, and Open MPI (mproc::mpi).
# `bench` adds python3-mpi4py (the anchor of the MPI pool's benchmarks).
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail
what=${1:-all}

need_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pkgs=()
want() { have_pkg "$1" || pkgs+=("$1"); }
# The libraries of the codec's optional adapters (include/mproc/codec/*.hpp): the library itself
# needs none of them; the tests of each adapter need it.
codec_libs() {
  want libcereal-dev; want libprotobuf-dev; want protobuf-compiler
  want libboost-serialization-dev; want nlohmann-json3-dev
}

# Open MPI (mproc::mpi, <mproc/mpi.hpp>): the core library needs none of it; the target mproc::mpi
# is built when CMake finds MPI, and its tests run under mpirun in `make test`.
mpi_libs() { want openmpi-bin; want libopenmpi-dev; }

# Always: the compiler, CMake and make.
need_cmd cmake || pkgs+=(cmake)
need_cmd g++ || pkgs+=(g++)
need_cmd make || pkgs+=(make)
case "$what" in
  build) ;;
  test) want libgtest-dev; want libgmock-dev; need_cmd python3 || pkgs+=(python3)
        need_cmd clang++ || pkgs+=(clang)
        want libclang-rt-14-dev; codec_libs; mpi_libs ;;
  tsan) want libgtest-dev; want libgmock-dev; need_cmd python3 || pkgs+=(python3)
        want clang-19; want libclang-rt-19-dev; want llvm-19; codec_libs ;;
  cross) want g++-aarch64-linux-gnu; want googletest; want qemu-user ;;
  format) want clang-format-16 ;;
  bench) want libboost-dev; want libcereal-dev; need_cmd python3 || pkgs+=(python3)
         mpi_libs; want python3-mpi4py ;;
  all) want libgtest-dev; want libgmock-dev; want libboost-dev; want clang-format-16; codec_libs
       need_cmd python3 || pkgs+=(python3)
       need_cmd clang++ || pkgs+=(clang)
       want libclang-rt-14-dev; want clang-19; want libclang-rt-19-dev; want llvm-19
       mpi_libs; want python3-mpi4py ;;
  *) echo "usage: $0 [build|test|tsan|bench|cross|format|all]" >&2; exit 2 ;;
esac

[ ${#pkgs[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${pkgs[*]}"
if [ "$(id -u)" -eq 0 ]; then
  echo "installing: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  $cmd
else
  echo "mproc needs these Debian packages: ${pkgs[*]}" >&2
  echo "run as root:  apt-get update && $cmd" >&2
  exit 1
fi
