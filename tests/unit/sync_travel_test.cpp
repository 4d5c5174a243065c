// sync_travel_test.cpp — the codecs of the shared-memory handles (locks, Semaphore, Condition,
// Event, Barrier, Value, Array, SharedMemory) within one process: encoding outside a travel scope
// is refused with Python's reason, the size pass needs no scope, a decoded handle is the same
// object, received memory is mapped once per handle, and hostile bytes or descriptors are a
// DecodeError naming the type (never a crash). The cross-process behaviour is in
// tests/integration/sync_travel_process_test.cpp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "helpers/child.hpp"

namespace {

using mproc::detail::Descriptors;
using mproc::detail::TravelIn;
using mproc::detail::TravelOut;

// A value encoded under a TravelOut scope, and the descriptors it added.
struct Sent {
  std::vector<std::byte> bytes;
  Descriptors fds;
};

template <class T>
Sent send(const T& v) {
  Sent s;
  TravelOut scope(s.fds);
  s.bytes = mproc::to_bytes(v);
  return s;
}

// Several values one after another: what a std::tuple of them encodes to (members in order, no
// framing), without copying them into a tuple (SharedMemory is move-only).
template <class... Ts>
Sent send_all(const Ts&... vs) {
  Sent s;
  TravelOut scope(s.fds);
  s.bytes.resize((mproc::encoded_size(vs) + ...));
  mproc::Writer w(s.bytes.data(), s.bytes.data() + s.bytes.size());
  (mproc::encode(w, vs), ...);
  EXPECT_EQ(w.cur(), s.bytes.data() + s.bytes.size());
  return s;
}

template <class T>
T receive(const Sent& s) {
  TravelIn scope(s.fds);
  return mproc::from_bytes<T>(s.bytes);
}

// The RegionRef fields of a handle whose encoding starts with a kind byte and one RegionRef.
constexpr std::size_t kIndexAt = 1;
constexpr std::size_t kSizeAt = 5;
constexpr std::size_t kOffsetAt = 13;

template <class V>
void patch(std::vector<std::byte>& b, std::size_t at, V v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

template <class T>
std::string decode_error(const Sent& s) {
  try {
    (void)receive<T>(s);
  } catch (const mproc::DecodeError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a DecodeError: ") + e.what();
  }
  return "decoded";
}

template <class T>
std::string encode_error(const T& v) {
  try {
    (void)mproc::to_bytes(v);
  } catch (const mproc::ValueError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a ValueError: ") + e.what();
  }
  return "encoded";
}

std::size_t mapping_count() {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

int memfd_of_size(std::size_t size) {
  int fd = memfd_create("sync_travel_test", MFD_CLOEXEC);
  if (fd >= 0 && ftruncate(fd, static_cast<off_t>(size)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Replaces descriptor 0 of `s` by `fd` (owned by the list from here).
void replace_fd(Sent& s, int fd) {
  Descriptors fresh;
  fresh.adopt(fd);
  for (std::size_t i = 1; i < s.fds.size(); ++i) fresh.add_dup(s.fds.fds()[i]);
  s.fds = std::move(fresh);
}

TEST(HandleTravel, EncodeOutsideTravelScopeThrowsValueErrorInPythonsWords) {
  EXPECT_EQ(encode_error(mproc::Lock()),
            "mproc::Lock can travel to another process only as an argument of a Process or of a "
            "Pool task (Python: Lock objects should only be shared between processes through "
            "inheritance)");
  EXPECT_NE(encode_error(mproc::RLock()).find("RLock objects should only be shared"),
            std::string::npos);
  EXPECT_NE(encode_error(mproc::Semaphore(2)).find("mproc::Semaphore can travel"),
            std::string::npos);
  EXPECT_NE(encode_error(mproc::BoundedSemaphore(2)).find("mproc::BoundedSemaphore can travel"),
            std::string::npos);
  EXPECT_NE(encode_error(mproc::Condition()).find("mproc::Condition can travel"),
            std::string::npos);
  EXPECT_NE(encode_error(mproc::Event()).find("mproc::Event can travel"), std::string::npos);
  EXPECT_NE(encode_error(mproc::Barrier(2)).find("mproc::Barrier can travel"), std::string::npos);
  EXPECT_NE(encode_error(mproc::Value<int>(1)).find("Synchronized objects should only be shared"),
            std::string::npos);
  EXPECT_NE(encode_error(mproc::Array<int>(3, mproc::no_lock)).find("mproc::Array can travel"),
            std::string::npos);
  EXPECT_NE(encode_error(mproc::SharedMemory::anonymous(100)).find("mproc::SharedMemory can"),
            std::string::npos);
}

TEST(HandleTravel, SizePassNeedsNoScopeAndAddsNoDescriptor) {
  mproc::Lock lock;
  mproc::Condition cond;
  mproc::Value<double> v(1.5);
  mproc::Array<int> a(10, mproc::no_lock);
  auto shm = mproc::SharedMemory::anonymous(4096);
  const std::size_t sizes[] = {mproc::encoded_size(lock), mproc::encoded_size(cond),
                               mproc::encoded_size(v), mproc::encoded_size(a),
                               mproc::encoded_size(shm)};
  Descriptors fds;
  TravelOut scope(fds);
  EXPECT_EQ(mproc::encoded_size(lock), sizes[0]);
  EXPECT_EQ(mproc::encoded_size(cond), sizes[1]);
  EXPECT_EQ(mproc::encoded_size(v), sizes[2]);
  EXPECT_EQ(mproc::encoded_size(a), sizes[3]);
  EXPECT_EQ(mproc::encoded_size(shm), sizes[4]);
  EXPECT_EQ(fds.size(), 0u);
  // to_bytes checks that encode wrote exactly the size.
  EXPECT_EQ(fds.size(), 0u);
  const Sent s = send_all(lock, cond, v, a, shm);  // checks that encode wrote exactly the size
  EXPECT_EQ(s.bytes.size(), sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4]);
  EXPECT_EQ(s.fds.size(), 1u + 2u + 2u + 1u + 1u);
}

// A decoded handle here is a second mapping of the same lock in this process; each lock operation
// below is paired on one handle (a lock taken through one mapping and released through the other
// would be right, but ThreadSanitizer tracks mutexes by address).
TEST(HandleTravel, DecodedLockIsTheSameLock) {
  mproc::Lock lock;
  mproc::RLock rlock;
  auto got = receive<std::tuple<mproc::Lock, mproc::RLock>>(send_all(lock, rlock));
  mproc::Lock& lock2 = std::get<0>(got);
  mproc::RLock& rlock2 = std::get<1>(got);
  lock2.acquire();
  EXPECT_TRUE(lock.is_owned());
  EXPECT_THROW((void)lock.try_acquire(), std::system_error);  // already held by this thread
  lock2.release();
  EXPECT_FALSE(lock.is_owned());
  rlock.acquire();
  EXPECT_TRUE(rlock2.is_owned());
  EXPECT_TRUE(rlock2.try_acquire());  // a second level, counted in the shared state
  EXPECT_EQ(rlock.depth(), 2u);
  rlock2.release();
  EXPECT_EQ(rlock.depth(), 1u);
  rlock.release();
  EXPECT_FALSE(rlock2.is_owned());
}

TEST(HandleTravel, DecodedPrimitivesShareTheirState) {
  mproc::Semaphore sem(2);
  mproc::BoundedSemaphore bounded(1);
  mproc::Event event;
  mproc::Barrier barrier(1, {}, std::chrono::seconds(3));
  mproc::Lock lock;
  mproc::Condition cond{lock};
  auto got =
      receive<std::tuple<mproc::Semaphore, mproc::BoundedSemaphore, mproc::Event, mproc::Barrier,
                         mproc::Condition>>(send_all(sem, bounded, event, barrier, cond));
  EXPECT_TRUE(std::get<0>(got).try_acquire());
  EXPECT_EQ(sem.get_value(), 1);
  EXPECT_THROW(std::get<1>(got).release(), mproc::ValueError);  // the bound travelled with it
  event.set();
  EXPECT_TRUE(std::get<2>(got).is_set());
  EXPECT_EQ(std::get<3>(got).parties(), 1);
  EXPECT_EQ(std::get<3>(got).wait(), 0);
  std::get<4>(got).acquire();  // the condition's lock is the same lock
  EXPECT_TRUE(lock.is_owned());
  std::get<4>(got).notify_all();
  std::get<4>(got).release();
  EXPECT_FALSE(lock.is_owned());
}

TEST(HandleTravel, ValueAndArrayTravelWithAndWithoutTheirLock) {
  mproc::Value<long> v(7);
  mproc::Value<int> raw(3, mproc::no_lock);
  mproc::Array<double> a{1.0, 2.0, 3.0};
  mproc::Array<char> empty(0, mproc::no_lock);
  auto got = receive<
      std::tuple<mproc::Value<long>, mproc::Value<int>, mproc::Array<double>, mproc::Array<char>>>(
      send_all(v, raw, a, empty));
  auto& [v2, raw2, a2, empty2] = got;
  EXPECT_EQ(v2.get(), 7);
  v2.set(8);
  EXPECT_EQ(v.get(), 8);
  ASSERT_TRUE(v2.has_lock());
  v2.get_lock().acquire();
  EXPECT_TRUE(v.get_lock().is_owned());  // the same RLock
  v2.get_lock().release();
  EXPECT_FALSE(raw2.has_lock());
  raw.set(4);
  EXPECT_EQ(raw2.get(), 4);
  ASSERT_EQ(a2.size(), 3u);
  a2[1] = 5.0;
  EXPECT_EQ(a[1], 5.0);
  EXPECT_TRUE(a2.has_lock());
  EXPECT_EQ(empty2.size(), 0u);
  EXPECT_FALSE(empty2.has_lock());
}

TEST(HandleTravel, SharedMemoryTravelsByDescriptorAndNamedOneByNameOutsideAScope) {
  auto anon = mproc::SharedMemory::anonymous(100);
  auto named = mproc::SharedMemory::create(4097);
  anon.buf()[99] = std::byte{42};
  named.buf()[4096] = std::byte{43};
  {
    auto got = receive<std::tuple<mproc::SharedMemory, mproc::SharedMemory>>(send_all(anon, named));
    auto& [anon2, named2] = got;
    EXPECT_EQ(anon2.size(), 100u);
    EXPECT_TRUE(anon2.name().empty());
    EXPECT_EQ(anon2.buf()[99], std::byte{42});
    EXPECT_EQ(named2.size(), 4097u);
    EXPECT_EQ(named2.name(), named.name());
    EXPECT_FALSE(named2.owns_name());
    EXPECT_EQ(named2.buf()[4096], std::byte{43});
    named2.buf()[0] = std::byte{44};
  }  // the receiver's handles go: the name stays
  EXPECT_EQ(named.buf()[0], std::byte{44});
  EXPECT_NO_THROW((void)mproc::SharedMemory::attach(named.name()));
  // Outside a scope (a Queue, a Pipe) a named segment travels by name, as Python pickles it.
  const auto bytes = mproc::to_bytes(named);
  auto by_name = mproc::from_bytes<mproc::SharedMemory>(bytes);
  EXPECT_EQ(by_name.name(), named.name());
  EXPECT_FALSE(by_name.owns_name());
  EXPECT_EQ(by_name.buf()[4096], std::byte{43});
  named.close();
  EXPECT_NE(encode_error(named).find("closed segment cannot travel"), std::string::npos);
}

TEST(HandleTravel, BarrierWithAnActionDoesNotTravel) {
  mproc::Barrier b(2, [] {});
  Descriptors fds;
  TravelOut scope(fds);
  const std::string msg = encode_error(b);
  EXPECT_NE(msg.find("mproc::Barrier with an action cannot travel"), std::string::npos) << msg;
  EXPECT_EQ(fds.size(), 0u);
}

TEST(HandleTravel, AReceivedHandleTravelsOn) {
  mproc::Lock lock;
  auto once = receive<mproc::Lock>(send(lock));
  auto twice = receive<mproc::Lock>(send(once));
  twice.acquire();
  EXPECT_TRUE(lock.is_owned());
  twice.release();
}

TEST(HandleTravel, ReceivingTheSameObjectManyTimesLeaksNoMapping) {
  mproc::Lock lock;
  mproc::Value<int> v(1);
  const Sent s = send_all(lock, v);
  { auto warm = receive<std::tuple<mproc::Lock, mproc::Value<int>>>(s); }
  const std::size_t before = mapping_count();
  for (int i = 0; i < 200; ++i) {
    auto got = receive<std::tuple<mproc::Lock, mproc::Value<int>>>(s);
    auto copy = got;  // copies share the mapping
    EXPECT_EQ(std::get<1>(copy).get(), 1);
  }
  EXPECT_EQ(mapping_count(), before);
}

// The table of regions (posix/region.cpp) that encoding looks the descriptor up in is lock-free:
// regions made and dropped by other threads at the same time never hide or confuse the one being
// encoded.
TEST(HandleTravel, EncodingFindsItsRegionWhileOtherThreadsMakeAndDropRegions) {
  mproc::Lock lock;
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (int t = 0; t < 3; ++t) {
    churn.emplace_back([&stop] {
      std::vector<mproc::Event> keep;
      while (!stop.load()) {
        keep.emplace_back();
        if (keep.size() > 300) keep.clear();
      }
    });
  }
  int same = 0;
  for (int i = 0; i < 300; ++i) {
    auto got = receive<mproc::Lock>(send(lock));
    got.acquire();
    same += lock.is_owned() ? 1 : 0;
    got.release();
  }
  stop = true;
  for (auto& t : churn) t.join();
  EXPECT_EQ(same, 300);
}

// A child forked after the handle was made finds its descriptor too (it inherited the table and
// the descriptors at the same numbers).
TEST(HandleTravel, AForkedChildCanSendOnAnInheritedHandle) {
  mproc::Lock lock;
  mproc_test::Child child([&] {
    auto got = receive<mproc::Lock>(send(lock));
    got.acquire();
    const int rc = lock.is_owned() ? 0 : 2;
    got.release();
    return rc;
  });
  EXPECT_EQ(child.wait(), 0);
}

// ---- hostile input
// -------------------------------------------------------------------------------

TEST(HandleTravelHostile, IndexOutOfRangeIsADecodeError) {
  Sent s = send(mproc::Lock());
  patch(s.bytes, kIndexAt, std::uint32_t{5});
  EXPECT_EQ(decode_error<mproc::Lock>(s),
            "mproc::Lock: cannot decode: it names descriptor 5, but 1 travelled with the value");
  patch(s.bytes, kIndexAt, std::uint32_t{0xffffffff});
  EXPECT_NE(decode_error<mproc::Lock>(s).find("mproc::Lock: cannot decode"), std::string::npos);
}

TEST(HandleTravelHostile, DecodeOutsideATravelInScopeIsADecodeError) {
  Sent s = send(mproc::Event());
  std::string msg;
  try {
    (void)mproc::from_bytes<mproc::Event>(s.bytes);
  } catch (const mproc::DecodeError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("mproc::Event: cannot decode: no descriptor travelled"), std::string::npos)
      << msg;
}

TEST(HandleTravelHostile, ASocketOrAPipeIsNotSharedMemory) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Sent s = send(mproc::Lock());
  replace_fd(s, sv[0]);
  close(sv[1]);
  EXPECT_EQ(decode_error<mproc::Lock>(s),
            "mproc::Lock: cannot decode: descriptor 0 is a socket, not shared memory");
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  Sent e = send(mproc::Event());
  replace_fd(e, p[0]);
  close(p[1]);
  EXPECT_EQ(decode_error<mproc::Event>(e),
            "mproc::Event: cannot decode: descriptor 0 is a pipe, not shared memory");
}

TEST(HandleTravelHostile, AFileOutsideTmpfsIsNotSharedMemory) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(ftruncate(fileno(f), 8192), 0);
  const int fd = fcntl(fileno(f), F_DUPFD_CLOEXEC, 0);
  std::fclose(f);
  Sent s = send(mproc::Semaphore(1));
  replace_fd(s, fd);
  const std::string msg = decode_error<mproc::Semaphore>(s);
  // /tmp may itself be a tmpfs: then the file is shared memory and maps (no crash either way).
  if (msg != "decoded") {
    EXPECT_NE(msg.find("mproc::Semaphore: cannot decode: descriptor 0 is a file on a file system "
                       "other than tmpfs"),
              std::string::npos)
        << msg;
  }
}

TEST(HandleTravelHostile, AMemfdTooSmallForTheSizeOrOffsetIsADecodeError) {
  Sent s = send(mproc::Lock());
  const int small = memfd_of_size(100);
  ASSERT_GE(small, 0);
  replace_fd(s, small);
  EXPECT_EQ(decode_error<mproc::Lock>(s),
            "mproc::Lock: cannot decode: descriptor 0 is shared memory of 100 bytes, fewer than "
            "the 4096 to map");
  // A size the file has, an offset that puts the object past its end.
  Sent t = send(mproc::Lock());
  patch(t.bytes, kOffsetAt, std::uint64_t{4096});
  EXPECT_NE(decode_error<mproc::Lock>(t).find("does not lie inside the 4096 bytes to map"),
            std::string::npos);
}

TEST(HandleTravelHostile, AbsurdSizesAndMisalignedOffsetsAreDecodeErrors) {
  for (std::uint64_t size :
       {std::uint64_t{0}, std::uint64_t{1} << 32,
        std::uint64_t{std::numeric_limits<std::uint64_t>::max()}, std::uint64_t{63}}) {
    Sent s = send(mproc::Lock());
    patch(s.bytes, kSizeAt, size);
    const std::string msg = decode_error<mproc::Lock>(s);
    EXPECT_EQ(msg.rfind("mproc::Lock: cannot decode: ", 0), 0u) << size << ": " << msg;
  }
  Sent big_offset = send(mproc::Event());
  patch(big_offset.bytes, kOffsetAt, std::numeric_limits<std::uint64_t>::max());
  EXPECT_NE(decode_error<mproc::Event>(big_offset).find("does not lie inside"), std::string::npos);
  Sent misaligned = send(mproc::Lock());
  patch(misaligned.bytes, kOffsetAt, std::uint64_t{8});
  EXPECT_EQ(decode_error<mproc::Lock>(misaligned),
            "mproc::Lock: cannot decode: the object's offset 8 is not a multiple of its "
            "alignment 64");
}

TEST(HandleTravelHostile, AKindThatDoesNotMatchTheTypeIsADecodeError) {
  Sent event = send(mproc::Event());
  EXPECT_EQ(decode_error<mproc::Lock>(event),
            "mproc::Lock: cannot decode: the bytes describe an mproc::Event");
  Sent lock = send(mproc::Lock());
  EXPECT_EQ(decode_error<mproc::RLock>(lock),
            "mproc::RLock: cannot decode: the bytes describe an mproc::Lock");
  // The kind byte of an RLock on a Lock's memory: the shared mutex says otherwise.
  patch(lock.bytes, 0, std::uint8_t{2});
  EXPECT_EQ(decode_error<mproc::RLock>(lock),
            "mproc::RLock: cannot decode: the shared object is not the mutex of an mproc::RLock");
  Sent sem = send(mproc::Semaphore(1));
  EXPECT_NE(decode_error<mproc::BoundedSemaphore>(sem).find("describe an mproc::Semaphore"),
            std::string::npos);
  patch(sem.bytes, 0, std::uint8_t{200});
  EXPECT_EQ(decode_error<mproc::Semaphore>(sem),
            "mproc::Semaphore: cannot decode: the bytes describe kind 200");
}

TEST(HandleTravelHostile, TruncatedBytesNameTheType) {
  Sent s = send(mproc::Condition());
  s.bytes.resize(s.bytes.size() - 3);
  EXPECT_EQ(decode_error<mproc::Condition>(s).rfind("mproc::Condition: cannot decode: ", 0), 0u);
}

TEST(HandleTravelHostile, ValueAndArrayCheckTheElementLayoutAndCount) {
  Sent v = send(mproc::Value<int>(1));
  EXPECT_EQ(decode_error<mproc::Value<double>>(v),
            "mproc::Value: cannot decode: its elements are 4 bytes aligned to 4, the receiving "
            "type's 8 bytes aligned to 8");
  Sent a = send(mproc::Array<int>(10, mproc::no_lock));
  // count sits after the RegionRef: kind (1) + RegionRef (20)
  patch(a.bytes, 21, std::uint64_t{1} << 40);
  EXPECT_NE(decode_error<mproc::Array<int>>(a).find("does not lie inside the 4096 bytes"),
            std::string::npos);
  patch(a.bytes, 21, std::numeric_limits<std::uint64_t>::max());
  EXPECT_NE(decode_error<mproc::Array<int>>(a).find("overflow"), std::string::npos);
}

TEST(HandleTravelHostile, SharedMemoryChecksSizeAndName) {
  auto shm = mproc::SharedMemory::anonymous(100);
  Sent s = send(shm);
  // kind, named flag, RegionRef (20), size (u64) at 22
  patch(s.bytes, 22, std::uint64_t{5000});
  EXPECT_NE(decode_error<mproc::SharedMemory>(s).find(
                "mproc::SharedMemory: cannot decode: a segment of 5000 bytes does not fit"),
            std::string::npos);
  patch(s.bytes, 1, std::uint8_t{1});  // named, without a name
  EXPECT_EQ(decode_error<mproc::SharedMemory>(s),
            "mproc::SharedMemory: cannot decode: a named segment without a name");
}

TEST(HandleTravelHostile, AReadOnlyDescriptorCannotBeMapped) {
  Sent s = send(mproc::Event());
  const std::string path = "/proc/self/fd/" + std::to_string(s.fds.fds()[0]);
  const int ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ro, 0);
  replace_fd(s, ro);
  EXPECT_NE(decode_error<mproc::Event>(s).find("mproc::Event: cannot decode: descriptor 0 "
                                               "cannot be mapped: mmap"),
            std::string::npos);
}

}  // namespace
