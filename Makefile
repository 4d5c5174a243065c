# The commands a newcomer needs. Each installs what the machine lacks first.
#   make demo   Release build, then runs the examples tour
#   make test   builds and runs every test (ctest)
#   make bench  builds the benchmarks and prints mproc against its anchors, with ratios
#               (BASELINE=BIN: also against a bench binary of another commit; BENCH_ARGS: more
#               options of bench/compare.py, e.g. BENCH_ARGS=--write-docs)
#   make bench-smoke  builds the benchmarks and runs every row once, briefly; fails on any error
#   make mpi-demo  the MPI example (examples/mpi_pool.cpp): a CPU-bound map over 3 ranks of an
#               MPI job on this machine (mpirun --oversubscribe -np 3; installs Open MPI if missing)
#   make soak   the chaos soak for SECONDS seconds (default 60, docs/soak.md); STRESS=1 adds the
#               long kill tests
#   make asan   the test suite under AddressSanitizer + UndefinedBehaviorSanitizer (clang)
#   make tsan   the unit and integration suites under ThreadSanitizer (clang-19, tests/tsan.supp)
#   make fuzz   the codec fuzzers (clang, libFuzzer: built-in types, the example's custom codec, cereal
#               types), FUZZ_SECONDS seconds each (default 60)
#   make cross  cross-compiles the library and the unit tests for aarch64 (Debian's
#               g++-aarch64-linux-gnu) and runs them under qemu-aarch64 (CROSS_RUN=0: build only)
#   make format clang-format-16 over the sources; make format-check fails if one is unformatted
JOBS ?= $(shell nproc)
CMAKE ?= cmake
CTEST_ARGS ?=
FUZZ_SECONDS ?= 60
# ThreadSanitizer needs clang 18 or newer (see cmake/mproc_options.cmake); Debian 12 has clang-19.
TSAN_CXX ?= clang++-19
TSAN_SYMBOLIZER ?= $(firstword $(wildcard /usr/lib/llvm-19/bin/llvm-symbolizer) llvm-symbolizer)

.PHONY: mpi-demo demo test bench soak asan tsan fuzz cross install-check format clean deps-build deps-test \
	format-check header-cost deps-bench deps-tsan deps-cross deps-format

deps-build:
	@scripts/install-deps.sh build
deps-test:
	@scripts/install-deps.sh test
deps-bench:
	@scripts/install-deps.sh bench
deps-tsan:
	@scripts/install-deps.sh tsan
deps-cross:
	@scripts/install-deps.sh cross

build/release/CMakeCache.txt: | deps-build
	$(CMAKE) -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMPROC_BUILD_TESTS=OFF \
	  -DMPROC_BUILD_BENCHMARKS=OFF -DMPROC_BUILD_EXAMPLES=ON

demo: deps-build build/release/CMakeCache.txt
	$(CMAKE) --build build/release -j $(JOBS)
	@scripts/demo.sh build/release/examples

test: deps-test
	$(CMAKE) -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_DEVELOP=ON \
	  -DMPROC_BUILD_TESTS=ON -DMPROC_BUILD_EXAMPLES=ON -DMPROC_BUILD_BENCHMARKS=OFF
	$(CMAKE) --build build/test -j $(JOBS)
	cd build/test && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Open MPI refuses to run as root without these; oversubscribed ranks must yield when idle.
MPI_ENV = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
mpi-demo: deps-test
	$(CMAKE) -S . -B build/mpi-demo -DCMAKE_BUILD_TYPE=Release -DMPROC_BUILD_TESTS=OFF \
	  -DMPROC_BUILD_BENCHMARKS=OFF -DMPROC_BUILD_EXAMPLES=ON
	$(CMAKE) --build build/mpi-demo -j $(JOBS) --target mpi_pool
	$(MPI_ENV) mpirun --oversubscribe -np 3 build/mpi-demo/examples/mpi_pool

asan: deps-test
	CXX=clang++ $(CMAKE) -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DMPROC_DEVELOP=ON \
	  -DMPROC_SANITIZE=ON -DMPROC_BUILD_TESTS=ON -DMPROC_BUILD_EXAMPLES=ON -DMPROC_BUILD_BENCHMARKS=OFF
	$(CMAKE) --build build/asan -j $(JOBS)
	cd build/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# ThreadSanitizer sees one process: tests/tsan.supp lists, each with its reason, the reports that
# are not races in this process (an ordering that runs through another process, a misuse a test
# makes on purpose). The stress tests (label stress) and the compile-fail checks are not built.
tsan: deps-tsan
	CXX=$(TSAN_CXX) $(CMAKE) -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_DEVELOP=ON \
	  -DMPROC_TSAN=ON -DMPROC_BUILD_TESTS=ON -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCHMARKS=OFF
	$(CMAKE) --build build/tsan -j $(JOBS)
	cd build/tsan && TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp \
	  external_symbolizer_path=$(TSAN_SYMBOLIZER) second_deadlock_stack=1 $(TSAN_EXTRA)" \
	  ctest --output-on-failure -j $(JOBS) -L '^(unit|integration)$$' $(CTEST_ARGS)

fuzz: deps-test
	CXX=clang++ $(CMAKE) -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_DEVELOP=ON \
	  -DMPROC_FUZZ=ON -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCHMARKS=OFF
	$(CMAKE) --build build/fuzz -j $(JOBS) --target codec_fuzz custom_codec_fuzz cereal_fuzz
	mkdir -p build/fuzz/corpus build/fuzz/custom_corpus build/fuzz/cereal_corpus
	build/fuzz/tests/fuzz/codec_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	  -artifact_prefix=build/fuzz/ -print_final_stats=1 build/fuzz/corpus tests/fuzz/corpus
	build/fuzz/tests/fuzz/custom_codec_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	  -artifact_prefix=build/fuzz/custom- -print_final_stats=1 build/fuzz/custom_corpus \
	  tests/fuzz/custom_corpus
	build/fuzz/tests/fuzz/cereal_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	  -artifact_prefix=build/fuzz/cereal- -print_final_stats=1 build/fuzz/cereal_corpus \
	  tests/fuzz/cereal_corpus

# aarch64: GoogleTest is built from Debian's sources (/usr/src/googletest) with the cross compiler
# (Debian ships no arm64 libgtest for an amd64 host), then the library and every unit test. The
# tests run under qemu-user (cmake/aarch64-linux-gnu.cmake sets it as the emulator, so ctest and
# gtest_discover_tests use it). CROSS_EXCLUDE names the tests qemu-user cannot run, for reasons of
# qemu's, not the code's (they all run natively in `make test`; docs/design.md, "The OS boundary"):
#  - a lock or queue holder that dies or whose thread exits (HolderKilled ... ParkedLockIsFreed):
#    qemu-user answers set_robust_list with ENOSYS, so the kernel never marks such a lock
#    FUTEX_OWNER_DIED and the next acquirer waits until the test's timeout. The same holds for a
#    Condition or Barrier waiter killed at any instant (Condition.KilledWaiter, Barrier.KilledWaiter):
#    the kill can land before wait() has released the lock it holds, which only the robust list frees;
#  - death tests: GoogleTest re-executes the test binary, which fails with ENOEXEC unless qemu is
#    registered in binfmt_misc;
#  - RLIMIT_AS (AddressSpaceLimit): under qemu-user the limit does not bound the program.
# The codec adapters' tests are not built here (MPROC_ADAPTER_TESTS=OFF): Debian has no arm64
# protobuf or Boost.Serialization for an amd64 host; they run natively in `make test`.
CROSS_DIR ?= build/aarch64
CROSS_TOOLCHAIN ?= $(CURDIR)/cmake/aarch64-linux-gnu.cmake
CROSS_RUN ?= 1
CROSS_UNIT_TESTS = $(basename $(notdir $(wildcard tests/unit/*_test.cpp))) leak_check_test
CROSS_DEAD_HOLDER = HolderKilled|OwnerThreadExiting|OwnerAndWaiterKilled|KilledOwner|OwnerDied
CROSS_DEAD_HOLDER := $(CROSS_DEAD_HOLDER)|ProcessKilledInTheAction|ProducerKilled|ConsumerKilled
CROSS_DEAD_HOLDER := $(CROSS_DEAD_HOLDER)|ProducerDied|KillBetween|ThreadExitingWithALock
CROSS_DEAD_HOLDER := $(CROSS_DEAD_HOLDER)|ParkedLockIsFreed|Condition.KilledWaiter|Barrier.KilledWaiter
CROSS_DEAD_HOLDER := $(CROSS_DEAD_HOLDER)|ProducerDies|ActionRunnerKilled|KilledStreamConsumer
CROSS_EXCLUDE ?= $(CROSS_DEAD_HOLDER)|DeathTest|AddressSpaceLimit

cross: deps-cross
	$(CMAKE) -S /usr/src/googletest -B $(CROSS_DIR)/googletest -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CROSS_TOOLCHAIN) -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(CROSS_DIR)/gtest
	$(CMAKE) --build $(CROSS_DIR)/googletest -j $(JOBS)
	$(CMAKE) --install $(CROSS_DIR)/googletest >/dev/null
	$(CMAKE) -S . -B $(CROSS_DIR)/mproc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_DEVELOP=ON \
	  -DCMAKE_TOOLCHAIN_FILE=$(CROSS_TOOLCHAIN) -DGTest_DIR=$(CURDIR)/$(CROSS_DIR)/gtest/lib/cmake/GTest \
	  -DMPROC_BUILD_TESTS=ON -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCHMARKS=OFF \
	  -DMPROC_ADAPTER_TESTS=OFF -DMPROC_MPI=OFF
	$(CMAKE) --build $(CROSS_DIR)/mproc -j $(JOBS) --target mproc $(CROSS_UNIT_TESTS)
	$(if $(filter 1,$(CROSS_RUN)),cd $(CROSS_DIR)/mproc && ctest --output-on-failure -j $(JOBS) \
	  -L '^unit$$' -E '$(CROSS_EXCLUDE)' $(CTEST_ARGS))

# make soak SECONDS=N: the chaos driver (tests/soak, docs/soak.md) for N seconds (default 60); it
# prints one summary line and fails on any hang, lost/duplicated/torn message, count drift or leak.
# STRESS=1 then also runs the randomized kill tests in their long form (MPROC_SOAK=1, ~60 s each).
soak: deps-test
	$(CMAKE) -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_DEVELOP=ON -DMPROC_BUILD_TESTS=ON
	$(CMAKE) --build build/test -j $(JOBS) --target soak_chaos $(if $(STRESS),all)
	build/test/tests/soak/soak_chaos --seconds $(or $(SECONDS),60) --progress
	$(if $(STRESS),cd build/test && MPROC_SOAK=1 ctest --output-on-failure -L stress $(CTEST_ARGS))

bench: deps-bench
	$(CMAKE) -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DMPROC_BUILD_TESTS=OFF \
	  -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCHMARKS=ON
	$(CMAKE) --build build/bench -j $(JOBS)
	python3 bench/compare.py --bin build/bench/bench $(if $(BASELINE),--baseline $(BASELINE)) $(BENCH_ARGS)

# The driver's policy tested against fake programs (bench/test_compare.py), then every benchmark row
# (mproc, floors, Python and Boost anchors) once, with 1 ms repetitions, through the same driver as
# `make bench`: fails on a compiler warning, a failed test, any error or a row without a time (CI; a
# check that bench/ still builds and runs, not a measurement).
.PHONY: bench-smoke
bench-smoke: deps-bench
	$(CMAKE) -S . -B build/benchsmoke -DCMAKE_BUILD_TYPE=Release -DMPROC_DEVELOP=ON \
	  -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCHMARKS=ON
	$(CMAKE) --build build/benchsmoke -j $(JOBS) --target bench
	python3 bench/test_compare.py
	python3 bench/compare.py --bin build/benchsmoke/bench/bench --smoke

# Installs into a scratch prefix and builds docs/consumer against it with find_package(mproc).
install-check: deps-build build/release/CMakeCache.txt
	$(CMAKE) --build build/release -j $(JOBS)
	$(CMAKE) --install build/release --prefix build/prefix
	$(CMAKE) -S docs/consumer -B build/consumer -DCMAKE_PREFIX_PATH=$(CURDIR)/build/prefix
	$(CMAKE) --build build/consumer
	build/consumer/consumer
	if [ -x build/consumer/consumer_mpi ]; then build/consumer/consumer_mpi; fi

# make header-cost [N=7]: compile time of a file that includes <mproc/mproc.hpp> against one that
# includes <vector> and <string> (docs/design.md, "Header cost"); fails above 2x.
header-cost:
	@scripts/header-cost.sh $(or $(N),7)

# clang-format is pinned: 16 is the first that formats C++20 requires-clauses; others differ.
CLANG_FORMAT ?= clang-format-16
FORMAT_FILES = git ls-files -- 'include/*.hpp' 'src/*.hpp' 'src/*.cpp' 'tests/*.hpp' 'tests/*.cpp' \
	'bench/*.hpp' 'bench/*.cpp' 'examples/*.cpp' 'docs/consumer/*.cpp'
deps-format:
	@scripts/install-deps.sh format
format: deps-format
	$(FORMAT_FILES) | xargs $(CLANG_FORMAT) -i
format-check: deps-format
	$(FORMAT_FILES) | xargs $(CLANG_FORMAT) --dry-run -Werror

clean:
	rm -rf build
