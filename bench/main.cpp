// bench/main.cpp — the command line of `bench`: it lists its rows and runs them on request.
//
//   The command line and the serve protocol are command_line.hpp's (shared with mpi_bench).
//
#include <mproc/start_method.hpp>

#include "command_line.hpp"

int main(int argc, char** argv) {
  // First: in a child started with spawn or forkserver (this program run again, the start-method
  // rows of workloads_start.cpp), init() becomes that child and never returns.
  mproc::init(argc, argv);
  // Every row that does not choose a start method forks, as the rows did before init() was called
  // here: without this, a Pool made while another row's Pool has its threads would get the default
  // rule's forkserver. The start-method rows choose theirs per object.
  mproc::set_start_method(mproc::StartMethod::fork);
  return mproc_bench::run_command_line(
      argc, argv,
      {"bench",
       "(bench/compare.py drives --serve; see bench/command_line.hpp and docs/benchmarks.md)"});
}
