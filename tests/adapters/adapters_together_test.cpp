// Every adapter header in one file, with cereal's: they coexist (no ambiguous specialisation of
// mproc::codec), and each type keeps its own library's bytes. A Boost.Serialization type has the
// shape of cereal's versioned serialize; MPROC_CODEC_BOOST_SERIALIZATION (a full specialisation)
// still wins over <mproc/codec/cereal.hpp>.
#include <gtest/gtest.h>

#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <cstddef>
#include <cstdint>
#include <mproc/codec/boost_serialization.hpp>
#include <mproc/codec/cereal.hpp>
#include <mproc/codec/json.hpp>
#include <mproc/codec/protobuf.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "adapter_messages.pb.h"

namespace together {

struct Legacy {
  std::string name;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& ar, const unsigned int) {
    ar& name& values;
  }
  bool operator==(const Legacy&) const = default;
};

}  // namespace together

MPROC_CODEC_BOOST_SERIALIZATION(together::Legacy);

namespace {

std::string boost_bytes(const together::Legacy& v) {
  std::ostringstream os;
  {
    boost::archive::binary_oarchive oa(os, boost::archive::no_header | boost::archive::no_codecvt);
    oa << v;
  }
  return os.str();
}

TEST(AdaptersTogether, EachTypeKeepsItsOwnLibrarysBytes) {
  const together::Legacy legacy{"legacy", {1, 2, 3}};
  EXPECT_EQ(mproc::to_bytes(legacy), mproc::to_bytes(boost_bytes(legacy)));

  const nlohmann::json j = {{"a", 1}};
  const std::vector<std::uint8_t> msgpack = nlohmann::json::to_msgpack(j);
  EXPECT_EQ(mproc::to_bytes(j), mproc::to_bytes(std::string(msgpack.begin(), msgpack.end())));

  mproc_test::proto::Order order;
  order.set_symbol("X");
  EXPECT_EQ(mproc::to_bytes(order), mproc::to_bytes(order.SerializeAsString()));

  using All = std::tuple<together::Legacy, nlohmann::json, mproc_test::proto::Order>;
  const All all{legacy, j, order};
  const All back = mproc::from_bytes<All>(mproc::to_bytes(all));
  EXPECT_EQ(std::get<0>(back), legacy);
  EXPECT_EQ(std::get<1>(back), j);
  EXPECT_EQ(std::get<2>(back).symbol(), "X");
}

}  // namespace
