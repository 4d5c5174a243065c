// helpers/leak_check_runner.cpp — the main of every test binary: GoogleTest with the leak check
// of leak_check.hpp around each test (linked in by mproc_add_test instead of gtest_main).
#include <gtest/gtest.h>

#include "helpers/leak_check.hpp"

int main(int argc, char** argv) {
  mproc_test::leak::own_process_group();  // before anything forks
  ::testing::InitGoogleTest(&argc, argv);
  mproc_test::leak::install();
  return RUN_ALL_TESTS();
}
