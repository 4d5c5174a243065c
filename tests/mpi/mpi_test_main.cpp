// The main of mpi_pool_test: every rank runs it under mpirun. mproc::init makes the ranks other
// than 0 serve rank 0's pools (they never return from it); rank 0 runs the tests. A test that hangs
// ends rank 0 by SIGALRM after the bound, and mpirun then ends the job, so a hang fails instead of
// waiting for ctest's timeout.
#include <unistd.h>

#include <mproc/mpi.hpp>

#include "gtest/gtest.h"

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  alarm(240);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
