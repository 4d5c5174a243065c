// <mproc/pool.hpp> included before <mproc/pipe.hpp>: mproc::wait still takes a range of
// Connections (no name of the Pool's detail namespace hides the ones mproc::wait uses).
#include <mproc/pool.hpp>
// After pool.hpp on purpose.
#include <chrono>
#include <mproc/pipe.hpp>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(PoolHeaderOrder, WaitOnConnectionsCompilesAndWorksAfterPoolHpp) {
  auto [r1, w1] = mproc::Pipe(false);
  auto [r2, w2] = mproc::Pipe(false);
  w2.send(std::string("x"));
  std::vector<mproc::Connection> readers;
  readers.push_back(std::move(r1));
  readers.push_back(std::move(r2));
  EXPECT_EQ(mproc::wait(readers, std::chrono::seconds(5)), (std::vector<std::size_t>{1}));
  EXPECT_EQ(mproc::wait({readers[1]}, std::chrono::seconds(5)), (std::vector<std::size_t>{0}));
}

}  // namespace
