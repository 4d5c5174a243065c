// Queues and Connections as values that travel to another process (<mproc/detail/travel.hpp>):
// the codecs of Queue, SimpleQueue, JoinableQueue and Connection within one process — the round
// trip under TravelOut/TravelIn scopes, the errors outside them, and hostile bytes and
// descriptors on decode (each a DecodeError naming the handle's type, never a crash). The
// cross-process cases are in tests/integration/channel_travel_test.cpp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <mproc/detail/travel.hpp>
#include <mproc/pipe.hpp>
#include <mproc/queue.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "helpers/queue_access.hpp"
#include "queue_shared.hpp"

namespace {

using mproc::detail::Descriptors;
using mproc::detail::TravelIn;
using mproc::detail::TravelOut;
using Bytes = std::vector<std::byte>;

// Encodes `v` under a TravelOut scope into `fds`.
template <class T>
Bytes encode_out(const T& v, Descriptors& fds) {
  TravelOut scope(fds);
  return mproc::to_bytes(v);
}

template <class T>
T decode_in(const Bytes& bytes, const Descriptors& fds) {
  TravelIn scope(fds);
  return mproc::from_bytes<T>(bytes);
}

// The DecodeError message of decoding `bytes` with `fds` as a T ("" if it decoded).
template <class T>
std::string decode_error(const Bytes& bytes, const Descriptors& fds) {
  try {
    (void)decode_in<T>(bytes, fds);
  } catch (const mproc::DecodeError& e) {
    return e.what();
  }
  return "";
}

// A list holding one descriptor of our choosing.
Descriptors holding(int fd) {
  Descriptors d;
  d.adopt(fd);
  return d;
}

int make_memfd(std::size_t size) {
  const int fd = memfd_create("queue-travel-test", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  return fd;
}

// Byte offsets in the Queue wire form (queue.hpp, "Travel").
constexpr std::size_t kIndexAt = 0, kKindAt = 4, kJoinableAt = 5, kSpinAt = 8, kCapacityAt = 16,
                      kMaxsizeAt = 24, kTagAt = 32;

template <class W>
void poke(Bytes& b, std::size_t at, W value) {
  std::memcpy(b.data() + at, &value, sizeof value);
}

static_assert(mproc::is_encodable_v<mproc::Queue<int>>);
static_assert(mproc::is_encodable_v<mproc::SimpleQueue<std::string>>);
static_assert(mproc::is_encodable_v<mproc::JoinableQueue<std::vector<int>>>);
static_assert(mproc::is_encodable_v<mproc::Connection>);
static_assert(mproc::is_encodable_v<std::tuple<mproc::Queue<int>, mproc::Connection>>);

TEST(QueueTravel, EncodedSizeNeedsNoScopeAndAddsNoDescriptor) {
  mproc::Queue<int> q;
  mproc::SimpleQueue<int> sq;
  mproc::JoinableQueue<int> jq;
  auto [a, b] = mproc::Pipe();
  EXPECT_EQ(mproc::encoded_size(q), 40u);
  EXPECT_EQ(mproc::encoded_size(sq), 40u);
  EXPECT_EQ(mproc::encoded_size(jq), 40u);
  EXPECT_EQ(mproc::encoded_size(a), 8u);
  Descriptors fds;
  TravelOut scope(fds);
  EXPECT_EQ(mproc::encoded_size(std::pair(q, std::vector<int>{1, 2})), 40u + 8u + 8u);
  EXPECT_EQ(fds.size(), 0u);
}

TEST(QueueTravel, RoundTripSharesTheQueue) {
  mproc::Queue<std::string> q(0, {.capacity = 8192, .spin = 7});
  Descriptors fds;
  const Bytes bytes = encode_out(q, fds);
  ASSERT_EQ(bytes.size(), 40u);
  ASSERT_EQ(fds.size(), 1u);
  auto r = decode_in<mproc::Queue<std::string>>(bytes, fds);
  EXPECT_EQ(r.capacity(), 8192u);
  r.put("from the receiver");
  EXPECT_EQ(q.get(std::chrono::seconds(5)), "from the receiver");
  q.put("from the sender");
  EXPECT_EQ(r.qsize(), 1u);
  EXPECT_EQ(r.get(std::chrono::seconds(5)), "from the sender");
  // A handle that arrived travels on (a child passing it to a child of its own).
  Descriptors again;
  auto r2 = decode_in<mproc::Queue<std::string>>(encode_out(r, again), again);
  r2.put("third hand");
  EXPECT_EQ(q.get(std::chrono::seconds(5)), "third hand");
  // close() stays per handle.
  r.close();
  q.put("still open");
  EXPECT_EQ(q.get(std::chrono::seconds(5)), "still open");
  EXPECT_THROW(r.put("x"), mproc::Closed);
}

TEST(QueueTravel, ArrivedHandleCanBeWaitedFor) {
  mproc::Queue<int> q;
  Descriptors fds;
  auto r = decode_in<mproc::Queue<int>>(encode_out(q, fds), fds);
  EXPECT_TRUE(mproc::wait({r}, std::chrono::seconds(0)).empty());
  q.put(1);
  EXPECT_EQ(mproc::wait({r}, std::chrono::seconds(5)), std::vector<std::size_t>{0});
  EXPECT_EQ(r.get(std::chrono::seconds(5)), 1);
}

TEST(QueueTravel, RoundTripKeepsMaxsize) {
  mproc::Queue<int> q(2);
  Descriptors fds;
  auto r = decode_in<mproc::Queue<int>>(encode_out(q, fds), fds);
  EXPECT_EQ(r.maxsize(), 2u);
  r.put(1);
  r.put(2);
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(r.try_put(3));
}

TEST(QueueTravel, JoinableRoundTripCountsTasksAcross) {
  mproc::JoinableQueue<int> q;
  Descriptors fds;
  auto r = decode_in<mproc::JoinableQueue<int>>(encode_out(q, fds), fds);
  q.put(1);
  q.put(2);
  EXPECT_EQ(r.get(std::chrono::seconds(5)), 1);
  EXPECT_EQ(r.get(std::chrono::seconds(5)), 2);
  r.task_done();
  EXPECT_FALSE(q.join(std::chrono::milliseconds(0)));
  r.task_done();
  EXPECT_TRUE(q.join(std::chrono::seconds(5)));
  EXPECT_THROW(r.task_done(), mproc::ValueError);
}

TEST(QueueTravel, SimpleRoundTrip) {
  mproc::SimpleQueue<std::vector<int>> q;
  Descriptors fds;
  auto r = decode_in<mproc::SimpleQueue<std::vector<int>>>(encode_out(q, fds), fds);
  r.put({1, 2, 3});
  EXPECT_EQ(q.get(std::chrono::seconds(5)), (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(r.empty());
}

TEST(QueueTravel, SeveralHandlesInOneValueEachGetTheirDescriptor) {
  mproc::Queue<int> a;
  mproc::Queue<int> b;
  Descriptors fds;
  const auto v = std::vector<mproc::Queue<int>>{a, b, a};
  auto r = decode_in<std::vector<mproc::Queue<int>>>(encode_out(v, fds), fds);
  ASSERT_EQ(fds.size(), 3u);
  r[0].put(10);
  r[1].put(20);
  r[2].put(30);
  EXPECT_EQ(a.get(std::chrono::seconds(5)), 10);
  EXPECT_EQ(a.get(std::chrono::seconds(5)), 30);
  EXPECT_EQ(b.get(std::chrono::seconds(5)), 20);
}

TEST(QueueTravel, EncodeWithoutScopeThrowsValueError) {
  mproc::Queue<int> q;
  mproc::SimpleQueue<int> sq;
  mproc::JoinableQueue<int> jq;
  try {
    (void)mproc::to_bytes(q);
    FAIL() << "no ValueError";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(),
                 "mproc::Queue can travel to another process only as an argument of a Process or "
                 "of a Pool task (Python: Queue objects should only be shared between processes "
                 "through inheritance)");
  }
  try {
    (void)mproc::to_bytes(sq);
    FAIL() << "no ValueError";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc::SimpleQueue can travel"), std::string::npos);
  }
  try {
    (void)mproc::to_bytes(jq);
    FAIL() << "no ValueError";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc::JoinableQueue can travel"), std::string::npos);
  }
}

TEST(QueueTravel, ClosedHandleThrowsClosed) {
  mproc::Queue<int> q;
  q.close();
  Descriptors fds;
  EXPECT_THROW((void)encode_out(q, fds), mproc::Closed);
  EXPECT_EQ(fds.size(), 0u);
}

TEST(QueueTravel, QueuePutOnAQueueThrowsValueErrorAndTheQueueStaysUsable) {
  mproc::Queue<mproc::Queue<int>> outer(0, {.capacity = 4096});
  mproc::Queue<int> inner;
  try {
    outer.put(inner);
    FAIL() << "no ValueError";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc::Queue can travel to another process only"),
              std::string::npos);
  }
  EXPECT_EQ(outer.qsize(), 0u);
  EXPECT_THROW((void)outer.put_many(std::vector<mproc::Queue<int>>{inner}), mproc::ValueError);
  EXPECT_EQ(outer.qsize(), 0u);
  // The outer queue still works: under travel scopes (as a start method would run them, with the
  // descriptors carried beside) the same put goes through and the handle comes out working.
  Descriptors fds;
  {
    TravelOut scope(fds);
    outer.put(inner);
  }
  EXPECT_EQ(outer.qsize(), 1u);
  {
    TravelIn scope(fds);
    auto got = outer.get(std::chrono::seconds(5));
    got.put(9);
  }
  EXPECT_EQ(inner.get(std::chrono::seconds(5)), 9);
}

TEST(QueueTravel, QueueOrConnectionSentOnAConnectionThrowsValueErrorAndItStaysUsable) {
  auto [a, b] = mproc::Pipe();
  mproc::Queue<int> q;
  EXPECT_THROW(a.send(q), mproc::ValueError);
  EXPECT_THROW(a.send(std::pair<int, mproc::Connection>(1, mproc::Connection())),
               mproc::ValueError);
  a.send(42);
  EXPECT_EQ(b.recv<int>(), 42);
  EXPECT_FALSE(b.poll());
}

TEST(QueueTravel, DecodeOutsideTravelInThrowsDecodeError) {
  mproc::Queue<int> q;
  Descriptors fds;
  const Bytes bytes = encode_out(q, fds);
  try {
    (void)mproc::from_bytes<mproc::Queue<int>>(bytes);
    FAIL() << "no DecodeError";
  } catch (const mproc::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc::Queue: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("without its descriptors"), std::string::npos);
  }
}

TEST(QueueTravel, HostileIndexOutOfRange) {
  mproc::Queue<int> q;
  Descriptors fds;
  Bytes bytes = encode_out(q, fds);
  for (std::uint32_t index : {1u, 2u, 0xffffffffu}) {
    poke(bytes, kIndexAt, index);
    const std::string e = decode_error<mproc::Queue<int>>(bytes, fds);
    EXPECT_NE(e.find("mproc::Queue: the handle that travelled names descriptor " +
                     std::to_string(index) + " of the 1"),
              std::string::npos)
        << e;
  }
}

TEST(QueueTravel, HostileKindOrElementType) {
  mproc::JoinableQueue<int> jq;
  mproc::Queue<int> q;
  Descriptors fds;
  const Bytes jbytes = encode_out(jq, fds);
  const Bytes qbytes = encode_out(q, fds);
  EXPECT_NE(decode_error<mproc::Queue<int>>(jbytes, fds)
                .find("mproc::Queue: the handle that travelled is a mproc::JoinableQueue, not a "
                      "mproc::Queue"),
            std::string::npos);
  EXPECT_NE(decode_error<mproc::JoinableQueue<int>>(qbytes, fds).find("mproc::JoinableQueue: "),
            std::string::npos);
  EXPECT_NE(decode_error<mproc::SimpleQueue<int>>(qbytes, fds).find("mproc::SimpleQueue: "),
            std::string::npos);
  EXPECT_NE(decode_error<mproc::Queue<double>>(qbytes, fds).find("another type"),
            std::string::npos);
  EXPECT_NE(decode_error<mproc::Queue<unsigned>>(qbytes, fds).find("another type"),
            std::string::npos);
  Bytes bad = qbytes;
  poke(bad, kKindAt, std::uint8_t{9});
  EXPECT_NE(decode_error<mproc::Queue<int>>(bad, fds).find("is no queue handle"),
            std::string::npos);
  bad = qbytes;
  poke(bad, kJoinableAt, std::uint8_t{2});
  EXPECT_NE(decode_error<mproc::Queue<int>>(bad, fds).find("corrupt"), std::string::npos);
}

TEST(QueueTravel, HostileDescriptorOfTheWrongKind) {
  mproc::Queue<int> q;
  Descriptors fds;
  const Bytes bytes = encode_out(q, fds);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  close(sv[1]);
  EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, holding(sv[0]))
                .find("mproc::Queue: the handle that travelled came with a socket, not shared "
                      "memory"),
            std::string::npos);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  close(p[1]);
  EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, holding(p[0]))
                .find("came with a pipe, not shared memory"),
            std::string::npos);
}

TEST(QueueTravel, HostileSharedMemoryTooSmallOrAbsurdSizes) {
  mproc::Queue<int> q(0, {.capacity = 4096});
  Descriptors fds;
  const Bytes bytes = encode_out(q, fds);
  // A memfd smaller than the region the bytes claim.
  EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, holding(make_memfd(4096)))
                .find("came with shared memory of 4096 bytes, fewer than the 8192 to map"),
            std::string::npos);
  EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, holding(make_memfd(0)))
                .find("came with shared memory of 0 bytes"),
            std::string::npos);
  // Absurd capacities against the real region.
  for (std::uint64_t cap : {std::uint64_t{0}, std::uint64_t{1} << 32, std::uint64_t{5000},
                            std::numeric_limits<std::uint64_t>::max(), std::uint64_t{1} << 63}) {
    Bytes bad = bytes;
    poke(bad, kCapacityAt, cap);
    const std::string e = decode_error<mproc::Queue<int>>(bad, fds);
    EXPECT_NE(e.find("mproc::Queue: the handle that travelled "), std::string::npos) << cap;
    EXPECT_TRUE(e.find("impossible capacity") != std::string::npos ||
                e.find("fewer than the") != std::string::npos)
        << cap << ": " << e;
  }
  Bytes bad = bytes;
  poke(bad, kSpinAt, std::uint32_t{0x80000000u});
  EXPECT_NE(decode_error<mproc::Queue<int>>(bad, fds).find("spin"), std::string::npos);
  // Truncated bytes.
  Bytes cut(bytes.begin(), bytes.begin() + 20);
  EXPECT_THROW((void)decode_in<mproc::Queue<int>>(cut, fds), mproc::DecodeError);
}

TEST(QueueTravel, HostileRegionHeader) {
  mproc::Queue<int> q(0, {.capacity = 4096});
  Descriptors fds;
  const Bytes bytes = encode_out(q, fds);
  const std::size_t region = mproc::detail::kRegionHeader + 4096;
  // Zeros: no queue there.
  EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, holding(make_memfd(region)))
                .find("came with shared memory that holds no queue"),
            std::string::npos);
  // Garbage.
  {
    const int fd = make_memfd(region);
    std::vector<unsigned char> junk(region);
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<unsigned char>(i * 131);
    ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, holding(fd)).find("holds no queue"),
              std::string::npos);
  }
  // A real queue of another element type with the same geometry: the bytes say int.
  {
    mproc::Queue<double> other(0, {.capacity = 4096});
    Descriptors other_fds;
    (void)encode_out(other, other_fds);
    EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, other_fds)
                  .find("came with a queue created for another element type"),
              std::string::npos);
  }
  // A real queue of the same type but another maxsize, and bytes that lie about the maxsize.
  {
    mproc::Queue<int> other(3, {.capacity = 4096});
    Descriptors other_fds;
    (void)encode_out(other, other_fds);
    EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, other_fds)
                  .find("disagrees with its queue's shared header"),
              std::string::npos);
    Bytes bad = bytes;
    poke(bad, kMaxsizeAt, std::uint64_t{7});
    EXPECT_NE(decode_error<mproc::Queue<int>>(bad, fds).find("disagrees"), std::string::npos);
  }
  // A header whose constants were overwritten after creation.
  {
    auto* s =
        mproc::detail::QueueCoreTestAccess::shared(mproc::detail::QueueCoreTestAccess::core(q));
    const std::uint64_t saved = s->capacity;
    s->capacity = std::uint64_t{1} << 40;
    EXPECT_NE(decode_error<mproc::Queue<int>>(bytes, fds).find("disagrees"), std::string::npos);
    s->capacity = saved;
    EXPECT_EQ(decode_error<mproc::Queue<int>>(bytes, fds), "");
  }
  Bytes bad = bytes;
  poke(bad, kTagAt, std::uint64_t{0});
  EXPECT_NE(decode_error<mproc::Queue<int>>(bad, fds).find("another type"), std::string::npos);
}

TEST(ConnectionTravel, RoundTripKeepsTheSendersEndOpen) {
  auto [a, b] = mproc::Pipe();
  Descriptors fds;
  const Bytes bytes = encode_out(b, fds);
  ASSERT_EQ(bytes.size(), 8u);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_FALSE(b.closed());
  auto r = decode_in<mproc::Connection>(bytes, fds);
  EXPECT_TRUE(r.readable());
  EXPECT_TRUE(r.writable());
  EXPECT_NE(r.fileno(), b.fileno());
  a.send(std::string("hi"));
  EXPECT_EQ(r.recv<std::string>(), "hi");
  r.send(7);
  EXPECT_EQ(a.recv<int>(), 7);
  b.send(8);  // the sender's end still works
  EXPECT_EQ(a.recv<int>(), 8);
}

TEST(ConnectionTravel, OneWayEndsKeepTheirDirection) {
  auto [rx, tx] = mproc::Pipe(false);
  Descriptors fds;
  const Bytes rx_bytes = encode_out(rx, fds);
  const Bytes tx_bytes = encode_out(tx, fds);
  ASSERT_EQ(fds.size(), 2u);
  auto r_rx = decode_in<mproc::Connection>(rx_bytes, fds);
  auto r_tx = decode_in<mproc::Connection>(tx_bytes, fds);
  EXPECT_TRUE(r_rx.readable());
  EXPECT_FALSE(r_rx.writable());
  EXPECT_FALSE(r_tx.readable());
  EXPECT_TRUE(r_tx.writable());
  EXPECT_THROW(r_rx.send(1), mproc::ValueError);
  r_tx.send(3);
  EXPECT_EQ(rx.recv<int>(), 3);
  tx.send(4);
  EXPECT_EQ(r_rx.recv<int>(), 4);
}

TEST(ConnectionTravel, PipeEndTravelsAsAPipe) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  mproc::Connection rx(p[0], true, false);
  mproc::Connection tx(p[1], false, true);
  Descriptors fds;
  auto r = decode_in<mproc::Connection>(encode_out(tx, fds), fds);
  r.send(11);
  EXPECT_EQ(rx.recv<int>(), 11);
}

TEST(ConnectionTravel, EncodeWithoutScopeClosedOrRegularFileThrows) {
  auto [a, b] = mproc::Pipe();
  try {
    (void)mproc::to_bytes(a);
    FAIL() << "no ValueError";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("mproc::Connection can travel to another process only as "
                                         "an argument of a Process or of a Pool task"),
              std::string::npos);
  }
  Descriptors fds;
  b.close();
  EXPECT_THROW((void)encode_out(b, fds), mproc::Closed);
  EXPECT_THROW((void)encode_out(mproc::Connection(), fds), mproc::Closed);
  mproc::Connection file(make_memfd(16));
  EXPECT_THROW((void)encode_out(file, fds), mproc::ValueError);
  EXPECT_EQ(fds.size(), 0u);
}

TEST(ConnectionTravel, HostileDecodes) {
  auto [a, b] = mproc::Pipe();
  Descriptors fds;
  const Bytes bytes = encode_out(a, fds);
  auto err = [](const Bytes& by, const Descriptors& d) {
    return decode_error<mproc::Connection>(by, d);
  };
  EXPECT_NE(err(bytes, holding(make_memfd(4096)))
                .find("mproc::Connection: the handle that travelled came with a regular file"),
            std::string::npos);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  close(p[1]);
  EXPECT_NE(err(bytes, holding(p[0])).find("came with a pipe where a socket was sent"),
            std::string::npos);
  Bytes bad = bytes;
  poke(bad, 0, std::uint32_t{5});
  EXPECT_NE(err(bad, fds).find("names descriptor 5 of the 1"), std::string::npos);
  bad = bytes;
  poke(bad, 4, std::uint16_t{0});
  EXPECT_NE(err(bad, fds).find("neither receives nor sends"), std::string::npos);
  bad = bytes;
  poke(bad, 4, std::uint8_t{2});
  EXPECT_NE(err(bad, fds).find("corrupt"), std::string::npos);
  bad = bytes;
  poke(bad, 6, std::uint8_t{0});
  EXPECT_NE(err(bad, fds).find("corrupt"), std::string::npos);
  bad = bytes;
  poke(bad, 6, std::uint8_t{2});  // a pipe was sent, a socket came
  EXPECT_NE(err(bad, fds).find("came with a socket where a pipe was sent"), std::string::npos);
  EXPECT_NE(
      decode_error<mproc::Connection>(bytes, Descriptors()).find("names descriptor 0 of the 0"),
      std::string::npos);
  {
    bool threw = false;
    try {
      (void)mproc::from_bytes<mproc::Connection>(bytes);
    } catch (const mproc::DecodeError& e) {
      threw = std::string(e.what()).find("mproc::Connection: ") == 0;
    }
    EXPECT_TRUE(threw);
  }
  // A memfd given to a Queue's bytes is not a Connection, nor is a socket a queue.
  mproc::Queue<int> q;
  Descriptors qfds;
  const Bytes qbytes = encode_out(q, qfds);
  EXPECT_NE(err(bytes, qfds).find("regular file"), std::string::npos);
  EXPECT_NE(decode_error<mproc::Queue<int>>(qbytes, fds).find("a socket, not shared memory"),
            std::string::npos);
}

}  // namespace
