// Pool: tasks' exceptions come back as RemoteError, or as their own type once registered with
// mproc::register_remote_exception (the RemoteError then nested in them).
#include <mproc/pool.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

using namespace std::chrono_literals;

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct Unregistered : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int parse(int x) {
  if (x == 3) throw ParseError("three is not a number here");
  if (x == 4) throw Unregistered("four");
  return x;
}

// The RemoteError nested in `e`.
mproc::RemoteError nested_info(const std::exception& e) {
  try {
    std::rethrow_if_nested(e);
  } catch (const mproc::RemoteError& info) {
    return info;
  }
  throw std::logic_error("no RemoteError nested");
}

TEST(PoolRemoteException, ARegisteredTypeComesBackAsItselfWithTheRemoteErrorNested) {
  mproc::register_remote_exception<ParseError>();
  mproc::register_remote_exception<ParseError>();  // twice is harmless
  mproc::Pool pool(2);
  try {
    (void)pool.apply(parse, 3);
    FAIL() << "no exception";
  } catch (const ParseError& e) {
    EXPECT_STREQ(e.what(), "three is not a number here");
    mproc::RemoteError info = nested_info(e);
    EXPECT_NE(info.pid(), 0);
    EXPECT_EQ(info.remote_what(), "three is not a number here");
    EXPECT_NE(info.type_name().find("ParseError"), std::string::npos) << info.type_name();
  }
}

TEST(PoolRemoteException, AnUnregisteredTypeStaysRemoteError) {
  mproc::register_remote_exception<ParseError>();
  mproc::Pool pool(2);
  try {
    (void)pool.apply(parse, 4);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_NE(e.type_name().find("Unregistered"), std::string::npos) << e.type_name();
    EXPECT_EQ(e.remote_what(), "four");
  }
}

TEST(PoolRemoteException, MapAndImapUseTheRegisteredTypeToo) {
  mproc::register_remote_exception<ParseError>();
  mproc::Pool pool(2);
  EXPECT_THROW(pool.map(parse, std::vector<int>{1, 2, 3}), ParseError);
  auto it = pool.imap(parse, std::vector<int>{1, 2, 3, 4, 5}, 2);
  EXPECT_EQ(*it.next(30s), 1);
  EXPECT_EQ(*it.next(30s), 2);
  EXPECT_THROW(it.next(30s), ParseError);
  EXPECT_THROW(it.next(30s), mproc::RemoteError);  // 4: Unregistered
  EXPECT_EQ(*it.next(30s), 5);
  EXPECT_FALSE(it.next(30s));
  auto r = pool.apply_async(parse, 3);
  EXPECT_THROW(r.get(30s), ParseError);
  EXPECT_FALSE(r.successful());
}

}  // namespace
