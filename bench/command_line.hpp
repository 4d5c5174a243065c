// bench/command_line.hpp — the command line every benchmark program speaks (`bench`, and
// `mpi_bench` under mpirun), so that bench/compare.py drives them all the same way:
//
//   PROGRAM --list                one JSON line per group (definition, target), then per workload
//   PROGRAM --info                one JSON line: the compiler and build of this binary
//   PROGRAM --serve [--pin P]     reads commands on stdin and answers each with one JSON line:
//     make NAME                 makes the row's runner (a two-process row forks its partners now)
//                               -> {"kind": "made", "name": NAME}
//     run NAME N                runs N iterations of the row
//                               -> {"kind": "time", "name": NAME, "iters": N, "seconds": S}
//     any failure               -> {"kind": "error", "name": NAME, "error": WHAT} (the row's
//                               runner is gone; the program goes on serving the others)
//   At the end of input the runners are destroyed, last made first, and the program exits 0.
//   --pin default|split|same|none overrides where every two-process row puts its processes.
//
// This program decides nothing about how long, how often or in which order a row runs:
// bench/compare.py owns that policy (calibration, repetitions, interleaving, rounds; see
// docs/benchmarks.md) for these rows and the Python anchors alike.
#pragma once

namespace mproc_bench {

struct CommandLine {
  const char* program;  // its name, in messages
  const char* note;     // a line under the usage line
  // Runs before serving; a non-zero value is the exit status instead (e.g. mpi_bench outside an
  // MPI job). Null: none.
  int (*before_serve)() = nullptr;
};

// Parses argv and does what it asks (see above); returns the program's exit status. The rows are
// harness.hpp's workloads() and groups().
int run_command_line(int argc, char** argv, const CommandLine& cl);

}  // namespace mproc_bench
