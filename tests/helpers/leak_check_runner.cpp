// helpers/leak_check_runner.cpp — the main of every test binary: GoogleTest with the leak check
// of leak_check.hpp around each test (linked in by mproc_add_test instead of gtest_main).
#include <gtest/gtest.h>

#include <mproc/start_method.hpp>

#include "helpers/leak_check.hpp"

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // a test's spawn and forkserver children become their Process here
  // The tests were written for fork (a lambda's captures, globals set before start): a test's
  // Watchdog thread must not switch them to forkserver by the default rule. Tests of another
  // method ask for it; tests of the default rule call mproc::reset_start_method().
  mproc::set_start_method(mproc::StartMethod::fork);
  mproc_test::leak::own_process_group();  // before anything forks
  ::testing::InitGoogleTest(&argc, argv);
  mproc_test::leak::install();
  return RUN_ALL_TESTS();
}
