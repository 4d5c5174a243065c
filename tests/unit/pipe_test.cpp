// Pipe, Connection and wait: typed and raw messages across fork, one-way ends, framing edge cases,
// EOF and dead peers, use after close, descriptors, wait over connections and processes, order.
//
// Every cross-process wait is bounded: the parent receives with a timeout (kLong) or after polling
// with one, children are forked with a deadline (helpers/child.hpp) and are killed if the test
// process dies.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <typeinfo>
#include <vector>

#include "helpers/child.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;

namespace {

constexpr auto kLong = 30s;
constexpr std::size_t k64MiB = std::size_t{64} << 20;

struct Point {
  std::int32_t x;
  double y;
  char tag[8];
  bool operator==(const Point&) const = default;
};

struct Item {
  std::uint64_t seq;
  std::uint64_t value;
};

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s)); }

std::string text_of(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// `n` pseudo-random bytes; the same `seed` gives the same bytes.
std::vector<std::byte> pattern(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> v(n);
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[i] = static_cast<std::byte>(x);
  }
  return v;
}

std::uint64_t mix(std::uint64_t i) { return (i + 1) * 0x9e3779b97f4a7c15ull ^ (i >> 3); }

// Runs `f`, expecting an exception of type E whose what() contains `text`.
template <class E, class F>
void expect_throw(F&& f, std::string_view text) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one containing \"" << text << "\"";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos)
        << "what() = \"" << e.what() << "\", expected it to contain \"" << text << "\"";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << typeid(e).name() << ": " << e.what();
  }
}

// Runs `f`, expecting std::system_error with `code`.
template <class F>
void expect_system_error(F&& f, std::errc code) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected std::system_error " << std::make_error_code(code);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::make_error_code(code)) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << typeid(e).name() << ": " << e.what();
  }
}

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

bool sigpipe_blocked() {
  sigset_t cur;
  pthread_sigmask(SIG_SETMASK, nullptr, &cur);
  return sigismember(&cur, SIGPIPE) == 1;
}

bool sigpipe_pending() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

// A value whose codec can be told to lie about its size or to throw part-way, to check that a
// frame the encoder botches is never delivered.
struct Botched {
  std::size_t announced;
  std::size_t written;
  bool throws;
};

}  // namespace

template <>
struct mproc::codec<Botched> {
  static std::size_t size(const Botched& b) { return b.announced; }
  static void encode(Writer& w, const Botched& b) {
    const std::vector<std::byte> bytes(b.written, std::byte{1});
    w.write(bytes.data(), bytes.size());
    if (b.throws) throw std::runtime_error("encoder failed");
  }
  static Botched decode(Reader& r) {
    std::vector<std::byte> bytes(r.remaining());
    r.read(bytes.data(), bytes.size());
    return Botched{bytes.size(), bytes.size(), false};
  }
};

// ---- typed messages ---------------------------------------------------------------------------

TEST(Pipe, DuplexCarriesTypedValuesBothWaysAcrossFork) {
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  EXPECT_TRUE(parent.readable() && parent.writable());
  EXPECT_TRUE(child.readable() && child.writable());

  Child c([&] {
    parent.close();
    const int i = child.recv<int>();
    const std::string s = child.recv<std::string>();
    Point p = child.recv<Point>();
    auto v = child.recv<std::vector<std::int64_t>>();
    child.send(i + 1);
    child.send(s + ", child");
    p.x *= 2;
    child.send(p);
    std::reverse(v.begin(), v.end());
    child.send(v);
    return 0;
  });
  child.close();

  parent.send(41);
  parent.send(std::string("hello"));
  parent.send(Point{21, 2.5, "pt"});
  parent.send(std::vector<std::int64_t>{1, -2, 3, 1LL << 40});

  auto i = parent.recv<int>(kLong);
  ASSERT_TRUE(i.has_value());
  EXPECT_EQ(*i, 42);
  auto s = parent.recv<std::string>(kLong);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "hello, child");
  auto p = parent.recv<Point>(kLong);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (Point{42, 2.5, "pt"}));
  auto v = parent.recv<std::vector<std::int64_t>>(kLong);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, (std::vector<std::int64_t>{1LL << 40, 3, -2, 1}));
  EXPECT_EQ(c.wait(), 0);
  // The child exited and the parent closed its copy of the child's end: nothing more will come.
  expect_throw<mproc::EOFError>([&] { (void)parent.recv<int>(kLong); }, "closed");
}

TEST(Pipe, ConnectionMovedIntoProcessIsClosedInTheParentByStart) {
  auto parent_end_child_end = mproc::Pipe();
  mproc::Connection& parent_end = parent_end_child_end.first;
  mproc::Connection& child_end = parent_end_child_end.second;
  mproc::Process p(
      [](mproc::Connection conn) {
        conn.send(std::string("from child"));
        return conn.recv<int>() + 1;
      },
      std::move(child_end));
  EXPECT_TRUE(child_end.closed());  // moved from
  p.start();
  auto s = parent_end.recv<std::string>(kLong);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "from child");
  parent_end.send(6);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 7);
  // start() dropped the parent's copy of the child's end, so the child's exit is EOF here.
  expect_throw<mproc::EOFError>([&] { (void)parent_end.recv<int>(kLong); }, "closed");
}

TEST(Pipe, RecvWithTimeoutReturnsEmptyWhenNothingCame) {
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  EXPECT_FALSE(b.recv<int>(10ms).has_value());
  EXPECT_FALSE(b.recv<int>(-1s).has_value());
  EXPECT_FALSE(b.recv_until<int>(std::chrono::steady_clock::now() - 1s).has_value());
  EXPECT_FALSE(b.recv_until<int>(std::chrono::system_clock::now() + 5ms).has_value());
  a.send(5);
  a.send(6);
  auto five = b.recv<int>(-1s);  // negative = zero: a message already there is still received
  ASSERT_TRUE(five.has_value());
  EXPECT_EQ(*five, 5);
  auto six = b.recv_until<int>(std::chrono::steady_clock::now() - 1s);
  ASSERT_TRUE(six.has_value());
  EXPECT_EQ(*six, 6);
}

TEST(Pipe, RecvOfTheWrongTypeThrowsDecodeErrorAndKeepsTheConnectionUsable) {
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  a.send(std::string("hello, world"));
  expect_throw<mproc::DecodeError>([&] { (void)b.recv<std::int32_t>(); }, "trailing bytes");
  a.send(std::int32_t{7});
  EXPECT_THROW((void)b.recv<std::string>(), mproc::DecodeError);
  a.send(99);
  EXPECT_EQ(b.recv<int>(), 99);

  // A large message (streamed, sent from another thread so the socket's buffer cannot fill up)
  // decoded as the wrong type: the rest of it is discarded, the next message arrives intact.
  const std::vector<std::uint8_t> big(1 << 20, 7);
  std::thread sender([&] {
    a.send(big);
    a.send(std::string("next"));
  });
  expect_throw<mproc::DecodeError>([&] { (void)b.recv<std::uint64_t>(); }, "trailing bytes");
  EXPECT_EQ(b.recv<std::string>(), "next");
  sender.join();
  EXPECT_FALSE(b.poll());
}

TEST(Pipe, AnEncoderThatBotchesASmallMessageSendsNothing) {
  auto ends = mproc::Pipe();
  mproc::Connection& a = ends.first;
  mproc::Connection& b = ends.second;
  expect_throw<mproc::Error>(
      [&] {
        a.send(Botched{100, 50, false});
      },
      "the encoder wrote 50 bytes where encoded_size() announced 100");
  expect_throw<mproc::Error>([&] { a.send(Botched{50, 100, false}); }, "larger than its buffer");
  expect_throw<std::runtime_error>([&] { a.send(Botched{100, 100, true}); }, "encoder failed");
  EXPECT_FALSE(b.poll());
  EXPECT_FALSE(a.closed());
  a.send(Botched{10, 10, false});
  EXPECT_EQ(b.recv<Botched>().written, 10u);
}

TEST(Pipe, AnEncoderThatBotchesALargeMessageAfterPartOfItWentOutNeverDeliversIt) {
  struct Case {
    Botched value;
    const char* what;
  };
  const Case cases[] = {
      {{1 << 20, 512 << 10, false}, "wrote 524288 bytes where encoded_size() announced 1048576"},
      {{1 << 20, 2 << 20, false}, "more bytes than encoded_size() announced"},
      {{1 << 20, 600 << 10, true}, "encoder failed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto ends = mproc::Pipe();
    mproc::Connection& a = ends.first;
    mproc::Connection& b = ends.second;
    std::atomic<int> receiver{0};  // 1: EOFError, 2: a message
    std::thread t([&] {
      try {
        (void)b.recv<Botched>();
        receiver = 2;
      } catch (const mproc::EOFError&) {
        receiver = 1;
      }
    });
    try {
      a.send(c.value);
      ADD_FAILURE() << "no exception";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(c.what), std::string::npos) << e.what();
    }
    EXPECT_TRUE(a.closed());
    t.join();
    EXPECT_EQ(receiver.load(), 1);
  }
  // An encoder that throws before the first chunk went out leaves the connection usable.
  auto ends = mproc::Pipe();
  expect_throw<std::runtime_error>(
      [&] {
        ends.first.send(Botched{1 << 20, 1000, true});
      },
      "encoder failed");
  EXPECT_FALSE(ends.first.closed());
  EXPECT_FALSE(ends.second.poll());
}

TEST(Pipe, DuplexEndsSendAndReceiveConcurrentlyFromTwoThreads) {
  // Each end sends 8 MiB while the other does too; with one thread this would deadlock on the
  // full socket buffers.
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  const auto to_b = pattern(8 << 20, 1);
  const auto to_a = pattern(8 << 20, 2);
  std::vector<std::byte> got_by_b;
  std::thread tb([&] {
    std::thread recv_thread([&] { got_by_b = b.recv_bytes(); });
    b.send_bytes(to_a);
    recv_thread.join();
  });
  a.send_bytes(to_b);
  auto got_by_a = a.recv_bytes();
  tb.join();
  EXPECT_TRUE(got_by_a == to_a);
  EXPECT_TRUE(got_by_b == to_b);
}

TEST(Pipe, ANonBlockingDescriptorStillGivesWholeMessages) {
  auto ends = mproc::Pipe();
  mproc::Connection& a = ends.first;
  mproc::Connection& b = ends.second;
  for (int fd : {a.fileno(), b.fileno()})
    ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
  const auto big = pattern(4 << 20, 9);
  std::thread sender([&] {
    a.send_bytes(big);
    a.send(std::vector<std::uint8_t>(3 << 20, 1));
  });
  EXPECT_TRUE(b.recv_bytes() == big);
  EXPECT_EQ(b.recv<std::vector<std::uint8_t>>().size(), std::size_t{3} << 20);
  sender.join();
}

// ---- one-way pipes ------------------------------------------------------------------------------

TEST(Pipe, OneWayFirstEndOnlyReceivesSecondEndOnlySends) {
  auto r_w = mproc::Pipe(false);
  mproc::Connection& r = r_w.first;
  mproc::Connection& w = r_w.second;
  EXPECT_TRUE(r.readable());
  EXPECT_FALSE(r.writable());
  EXPECT_FALSE(w.readable());
  EXPECT_TRUE(w.writable());

  std::byte buf[4];
  expect_throw<mproc::ValueError>([&] { r.send(1); }, "connection is read-only");
  expect_throw<mproc::ValueError>([&] { r.send_bytes(bytes_of("x")); }, "connection is read-only");
  expect_throw<mproc::ValueError>([&] { (void)w.recv<int>(); }, "connection is write-only");
  expect_throw<mproc::ValueError>([&] { (void)w.recv<int>(1ms); }, "connection is write-only");
  expect_throw<mproc::ValueError>([&] { (void)w.recv_bytes(); }, "connection is write-only");
  expect_throw<mproc::ValueError>([&] { (void)w.recv_bytes_into(buf); },
                                  "connection is write-only");
  expect_throw<mproc::ValueError>([&] { (void)w.poll(); }, "connection is write-only");
  expect_throw<mproc::ValueError>([&] { mproc::Waitable x(w); }, "connection is write-only");
  // The misuse sent nothing.
  EXPECT_FALSE(r.poll());
  // The unused direction is shut down in the socket itself, not only refused by the Connection.
  errno = 0;
  EXPECT_EQ(::send(r.fileno(), "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EPIPE);

  Child c([&] {
    r.close();
    w.send(std::string("one way"));
    w.send_bytes(bytes_of("raw"));
    return 0;
  });
  w.close();
  auto s = r.recv<std::string>(kLong);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "one way");
  ASSERT_TRUE(r.poll(kLong));
  EXPECT_EQ(text_of(r.recv_bytes()), "raw");
  EXPECT_EQ(c.wait(), 0);
  ASSERT_TRUE(r.poll(kLong));  // EOF polls ready
  expect_throw<mproc::EOFError>([&] { (void)r.recv_bytes(); }, "closed");
}

// ---- raw bytes ----------------------------------------------------------------------------------

TEST(Pipe, SendBytesHonoursOffsetAndSize) {
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  const std::string text = "0123456789";
  const auto buf = bytes_of(text);
  a.send_bytes(buf);
  a.send_bytes(buf, 3);
  a.send_bytes(buf, 3, 4);
  a.send_bytes(buf, 10);
  a.send_bytes(buf, 2, 0);
  a.send_bytes(buf, 0, 10);
  EXPECT_EQ(text_of(b.recv_bytes()), "0123456789");
  EXPECT_EQ(text_of(b.recv_bytes()), "3456789");
  EXPECT_EQ(text_of(b.recv_bytes()), "3456");
  EXPECT_EQ(text_of(b.recv_bytes()), "");
  EXPECT_EQ(text_of(b.recv_bytes()), "");
  EXPECT_EQ(text_of(b.recv_bytes()), "0123456789");

  expect_throw<mproc::ValueError>([&] { a.send_bytes(buf, 11); }, "buffer length < offset");
  expect_throw<mproc::ValueError>([&] { a.send_bytes(buf, 11, 0); }, "buffer length < offset");
  expect_throw<mproc::ValueError>([&] { a.send_bytes(buf, 5, 6); },
                                  "buffer length < offset + size");
  expect_throw<mproc::ValueError>([&] { a.send_bytes(buf, 1, SIZE_MAX); },
                                  "buffer length < offset + size");
  EXPECT_FALSE(b.poll());  // the rejected calls sent nothing
}

TEST(Pipe, EmptyAndOneByteMessages) {
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  a.send_bytes({});
  ASSERT_TRUE(b.poll());  // an empty message is still a message
  EXPECT_TRUE(b.recv_bytes().empty());
  EXPECT_FALSE(b.poll());

  a.send_bytes(bytes_of("z"));
  auto one = b.recv_bytes();
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], std::byte{'z'});

  a.send_bytes({});
  std::span<std::byte> nothing;
  EXPECT_EQ(b.recv_bytes_into(nothing), 0u);

  a.send(std::string());
  a.send(std::vector<int>());
  a.send(std::uint8_t{0xab});
  EXPECT_EQ(b.recv<std::string>(), "");
  EXPECT_TRUE(b.recv<std::vector<int>>().empty());
  EXPECT_EQ(b.recv<std::uint8_t>(), 0xab);
  EXPECT_FALSE(b.poll());
}

TEST(Pipe, SixtyFourMebibyteMessagesBothWaysAcrossFork) {
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  Child c([&] {
    parent.close();
    const auto got = child.recv_bytes();
    if (got != pattern(k64MiB, 11)) return 2;
    child.send_bytes(pattern(k64MiB, 12));
    std::vector<std::uint32_t> words(k64MiB / 4);
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = static_cast<std::uint32_t>(mix(i));
    child.send(words);
    return 0;
  });
  child.close();

  parent.send_bytes(pattern(k64MiB, 11));
  ASSERT_TRUE(parent.poll(kLong));
  const auto back = parent.recv_bytes();
  EXPECT_EQ(back.size(), k64MiB);
  EXPECT_TRUE(back == pattern(k64MiB, 12));
  ASSERT_TRUE(parent.poll(kLong));
  const auto words = parent.recv<std::vector<std::uint32_t>>();
  ASSERT_EQ(words.size(), k64MiB / 4);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < words.size(); ++i)
    wrong += words[i] != static_cast<std::uint32_t>(mix(i));
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(c.wait(), 0);
}

TEST(Pipe, RecvBytesLongerThanMaxlengthThrowsAndClosesTheConnection) {
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  const int fd = b.fileno();
  a.send_bytes(bytes_of("0123456789"));
  a.send_bytes(bytes_of("0123456789"));
  EXPECT_EQ(text_of(b.recv_bytes(10)), "0123456789");  // exactly maxlength is fine
  try {
    (void)b.recv_bytes(9);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::make_error_code(std::errc::message_size));
    EXPECT_NE(std::string(e.what()).find("bad message length"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(b.closed());
  expect_throw<mproc::Closed>([&] { (void)b.recv_bytes(); }, "handle is closed");
  // The peer sees the connection closed.
  ASSERT_TRUE(a.poll(kLong));
  expect_throw<mproc::EOFError>([&] { (void)a.recv_bytes(); }, "closed");
  // The descriptor itself is released by close(), not under another thread's feet.
  EXPECT_TRUE(fd_is_open(fd));
  b.close();
  EXPECT_FALSE(fd_is_open(fd));
}

TEST(Pipe, ASendThatBreaksTheFramingWakesTheReceivingThreadWithoutFreeingTheDescriptor) {
  auto ends = mproc::Pipe();
  mproc::Connection& a = ends.first;
  mproc::Connection& b = ends.second;
  const int fd = b.fileno();
  std::atomic<int> receiver_saw_eof{0};
  std::thread receiver([&] {
    try {
      (void)b.recv<int>();
    } catch (const mproc::EOFError&) {
      receiver_saw_eof = 1;
    }
  });
  std::thread peer([&] {
    if (a.poll(kLong)) a.close();  // closes once the big message has begun to arrive
  });
  expect_system_error([&] { b.send_bytes(pattern(k64MiB, 6)); }, std::errc::broken_pipe);
  peer.join();
  receiver.join();
  EXPECT_EQ(receiver_saw_eof.load(), 1);
  EXPECT_TRUE(b.closed());
  EXPECT_TRUE(fd_is_open(fd));
}

TEST(Pipe, RecvBytesIntoATooSmallBufferThrowsBufferTooShortWithTheMessage) {
  static_assert(std::is_base_of_v<mproc::ProcessError, mproc::BufferTooShort>);
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  a.send_bytes(bytes_of("hello world"));
  a.send_bytes(bytes_of("ok"));
  a.send_bytes(bytes_of("abc"));
  std::array<std::byte, 5> small{};
  try {
    (void)b.recv_bytes_into(small);
    ADD_FAILURE() << "no exception";
  } catch (const mproc::BufferTooShort& e) {
    EXPECT_EQ(text_of(e.message()), "hello world");
    EXPECT_NE(std::string(e.what()).find("11 bytes"), std::string::npos) << e.what();
    const mproc::BufferTooShort copy = e;  // copies share the message
    EXPECT_EQ(&copy.message(), &e.message());
  }
  // The connection is still usable: the next message arrives.
  EXPECT_FALSE(b.closed());
  EXPECT_EQ(b.recv_bytes_into(small), 2u);
  EXPECT_EQ(text_of(std::span(small).first(2)), "ok");
  // Python's offset argument is a subspan.
  std::array<std::byte, 5> big{};
  EXPECT_EQ(b.recv_bytes_into(std::span(big).subspan(2)), 3u);
  EXPECT_EQ(text_of(std::span(big).subspan(2)), "abc");
  EXPECT_EQ(big[0], std::byte{0});
}

TEST(Pipe, FrameHeadersFollowPythonsWireFormat) {
  std::byte h[mproc::detail::kFrameHeaderMax];
  ASSERT_EQ(mproc::detail::put_frame_header(h, 0x7fffffff), 4u);
  EXPECT_EQ(std::to_integer<int>(h[0]), 0x7f);
  EXPECT_EQ(std::to_integer<int>(h[3]), 0xff);
  ASSERT_EQ(mproc::detail::put_frame_header(h, 0x80000000ull), 12u);
  const std::array<int, 12> want{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0};
  for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(std::to_integer<int>(h[i]), want[i]) << i;

  // A long-form header (-1, then a 64-bit length) written by hand is read back.
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  const unsigned char frame[] = {0xff, 0xff, 0xff, 0xff, 0,   0,   0,   0,  0,
                                 0,    0,    5,    'h',  'e', 'l', 'l', 'o'};
  ASSERT_EQ(::write(a.fileno(), frame, sizeof frame), static_cast<ssize_t>(sizeof frame));
  EXPECT_EQ(text_of(b.recv_bytes()), "hello");
  // A negative length other than -1 is a corrupt stream: the connection is closed.
  const unsigned char bad[] = {0x80, 0, 0, 0};
  ASSERT_EQ(::write(a.fileno(), bad, sizeof bad), 4);
  expect_system_error([&] { (void)b.recv_bytes(); }, std::errc::protocol_error);
  EXPECT_TRUE(b.closed());
}

TEST(Pipe, SendBytesInteroperatesWithPythonsConnection) {
  const char* py = std::getenv("MPROC_TEST_PYTHON");
  if (py == nullptr || *py == '\0' || ::access(py, X_OK) != 0) GTEST_SKIP() << "no python3";
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  static const char* script =
      "from multiprocessing.connection import Connection\n"
      "c = Connection(3)\n"
      "b = c.recv_bytes()\n"
      "c.send_bytes(b[::-1])\n"
      "c.send_bytes(b'')\n"
      "big = c.recv_bytes()\n"
      "c.send_bytes(len(big).to_bytes(8, 'big') + big[:4] + big[-4:])\n"
      "c.send_bytes(big, 100000)\n";
  Child c([&] {
    const int fd = child.fileno();
    if (fd == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else if (::dup2(fd, 3) != 3) {
      return 96;
    }
    ::execl(py, py, "-c", script, static_cast<char*>(nullptr));
    return 97;
  });
  child.close();
  parent.send_bytes(bytes_of("hello python"));
  ASSERT_TRUE(parent.poll(kLong));
  EXPECT_EQ(text_of(parent.recv_bytes()), "nohtyp olleh");
  ASSERT_TRUE(parent.poll(kLong));
  EXPECT_TRUE(parent.recv_bytes().empty());
  const auto big = pattern(100003, 5);  // above Python's 16 KiB single-write threshold
  parent.send_bytes(big);
  ASSERT_TRUE(parent.poll(kLong));
  const auto summary = parent.recv_bytes();
  ASSERT_EQ(summary.size(), 16u);
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n = (n << 8) | std::to_integer<std::uint64_t>(summary[i]);
  EXPECT_EQ(n, big.size());
  EXPECT_TRUE(std::equal(summary.begin() + 8, summary.begin() + 12, big.begin()));
  EXPECT_TRUE(std::equal(summary.begin() + 12, summary.end(), big.end() - 4));
  ASSERT_TRUE(parent.poll(kLong));
  const auto tail = parent.recv_bytes();
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), big.begin() + 100000, big.end()));
  EXPECT_EQ(tail.size(), 3u);
  EXPECT_EQ(c.wait(), 0);
}

// ---- poll ---------------------------------------------------------------------------------------

TEST(Pipe, PollTimesOutThenSeesTheMessage) {
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  Child c([&] {
    parent.close();
    if (!child.poll(kLong)) return 2;  // wait for the parent's go
    if (child.recv<int>() != 1) return 3;
    child.send(std::string("late"));
    return 0;
  });
  child.close();

  EXPECT_FALSE(parent.poll());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(parent.poll(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);  // a timeout is never cut short
  EXPECT_FALSE(parent.poll(-5s));
  EXPECT_FALSE(parent.poll_until(std::chrono::steady_clock::now() - 1s));
  EXPECT_FALSE(parent.poll_until(std::chrono::system_clock::now() + 5ms));

  parent.send(1);
  EXPECT_TRUE(parent.poll(kLong));
  EXPECT_TRUE(parent.poll(-5s));  // negative = zero: ready now
  EXPECT_TRUE(parent.poll());
  EXPECT_TRUE(parent.poll_until(std::chrono::steady_clock::now() - 1s));
  EXPECT_EQ(parent.recv<std::string>(), "late");  // poll consumed nothing
  EXPECT_EQ(c.wait(), 0);
}

// ---- EOF and dead peers -------------------------------------------------------------------------

TEST(Pipe, RecvAfterThePeerClosedDeliversWhatWasSentThenThrowsEOFError) {
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  a.send(1);
  a.send_bytes(bytes_of("last"));
  a.close();
  EXPECT_EQ(b.recv<int>(), 1);
  EXPECT_EQ(text_of(b.recv_bytes()), "last");
  EXPECT_TRUE(b.poll());  // EOF is "ready"
  std::byte buf[8];
  expect_throw<mproc::EOFError>([&] { (void)b.recv<int>(); }, "the peer closed the connection");
  expect_throw<mproc::EOFError>([&] { (void)b.recv_bytes(); }, "the peer closed the connection");
  expect_throw<mproc::EOFError>([&] { (void)b.recv_bytes_into(buf); }, "closed");
  expect_throw<mproc::EOFError>([&] { (void)b.recv<int>(1s); }, "closed");
  EXPECT_FALSE(b.closed());  // EOF does not close this end
}

TEST(Pipe, RecvThrowsEOFErrorAfterThePeerProcessExits) {
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  Child c([&] {
    parent.close();
    child.send(std::string("first"));
    child.send(std::string("second"));
    return 0;  // exits without closing: the kernel closes the descriptor
  });
  child.close();
  EXPECT_EQ(c.wait(), 0);
  EXPECT_EQ(parent.recv<std::string>(kLong), "first");
  EXPECT_EQ(parent.recv<std::string>(kLong), "second");
  expect_throw<mproc::EOFError>([&] { (void)parent.recv<std::string>(kLong); }, "closed");
}

TEST(Pipe, PeerKilledMidSendGivesEOFErrorNeverAPartialMessage) {
  for (const bool typed : {false, true}) {
    SCOPED_TRACE(typed ? "typed" : "bytes");
    auto ends = mproc::Pipe();
    mproc::Connection& parent = ends.first;
    mproc::Connection& child = ends.second;
    Child c([&] {
      parent.close();
      if (typed) {
        child.send(std::vector<std::uint8_t>(k64MiB, 0x5a));
      } else {
        child.send_bytes(pattern(k64MiB, 3));
      }
      child.send_bytes(bytes_of("never"));
      return 0;
    });
    child.close();
    // The header has arrived; the child is blocked in the middle of the message, as the socket's
    // buffer holds far less than 64 MiB and nobody reads.
    ASSERT_TRUE(parent.poll(kLong));
    c.kill(SIGKILL);
    EXPECT_EQ(c.wait(), -SIGKILL);
    if (typed) {
      expect_throw<mproc::EOFError>([&] { (void)parent.recv<std::vector<std::uint8_t>>(); },
                                    "closed");
    } else {
      expect_throw<mproc::EOFError>([&] { (void)parent.recv_bytes(); }, "closed");
    }
    // Nothing else is delivered afterwards either.
    expect_throw<mproc::EOFError>([&] { (void)parent.recv_bytes(); }, "closed");
  }
}

TEST(Pipe, PeerKilledWhileTheReceiverIsReadingGivesEOFError) {
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  Child c([&] {
    parent.close();
    // A slow sender: announces 128 MiB, then trickles 64 KiB every 5 ms (it needs ~10 s).
    const int fd = child.fileno();
    const unsigned char header[4] = {0x08, 0, 0, 0};
    if (::write(fd, header, 4) != 4) return 2;
    std::vector<char> chunk(64 * 1024, 'x');
    for (;;) {
      if (::write(fd, chunk.data(), chunk.size()) < 0) return 3;
      std::this_thread::sleep_for(5ms);
    }
  });
  child.close();
  ASSERT_TRUE(parent.poll(kLong));
  std::thread killer([&] {
    std::this_thread::sleep_for(200ms);
    c.kill(SIGKILL);
  });
  expect_throw<mproc::EOFError>([&] { (void)parent.recv_bytes(); }, "closed");
  killer.join();
  EXPECT_EQ(c.wait(), -SIGKILL);
}

TEST(Pipe, SendToAClosedPeerThrowsBrokenPipeInsteadOfRaisingSIGPIPE) {
  {
    auto a_b = mproc::Pipe();
    mproc::Connection& a = a_b.first;
    mproc::Connection& b = a_b.second;
    a.close();
    expect_system_error([&] { b.send(1); }, std::errc::broken_pipe);
    expect_system_error([&] { b.send_bytes(bytes_of("x")); }, std::errc::broken_pipe);
    expect_system_error([&] { b.send(std::string(100000, 'x')); }, std::errc::broken_pipe);
  }
  {
    auto r_w = mproc::Pipe(false);
    mproc::Connection& r = r_w.first;
    mproc::Connection& w = r_w.second;
    r.close();
    expect_system_error([&] { w.send_bytes(bytes_of("x")); }, std::errc::broken_pipe);
  }
  EXPECT_FALSE(sigpipe_pending());
}

TEST(Pipe, SendFailingAfterPartOfTheMessageWentOutClosesTheConnection) {
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  Child c([&] {
    parent.close();
    return child.poll(kLong) ? 0 : 2;  // exits once the message has begun to arrive
  });
  child.close();
  expect_system_error([&] { parent.send_bytes(pattern(k64MiB, 4)); }, std::errc::broken_pipe);
  EXPECT_TRUE(parent.closed());
  EXPECT_EQ(c.wait(), 0);
}

// ---- close, descriptors -------------------------------------------------------------------------

TEST(Pipe, EveryCallAfterCloseThrowsClosed) {
  auto a_b = mproc::Pipe();
  mproc::Connection& a = a_b.first;
  mproc::Connection& b = a_b.second;
  EXPECT_FALSE(a.closed());
  a.close();
  EXPECT_TRUE(a.closed());
  a.close();                                  // closing again does nothing
  EXPECT_TRUE(a.readable() && a.writable());  // unchanged by close, as in Python
  std::byte buf[4];
  expect_throw<mproc::Closed>([&] { a.send(1); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { a.send_bytes(bytes_of("x")); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { a.send_bytes(bytes_of("x"), 0, 1); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { (void)a.recv<int>(); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { (void)a.recv<int>(1s); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { (void)a.recv_bytes(); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { (void)a.recv_bytes_into(buf); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { (void)a.poll(); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { (void)a.poll(1s); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { (void)a.fileno(); }, "handle is closed");
  expect_throw<mproc::Closed>([&] { mproc::Waitable w(a); }, "handle is closed");

  mproc::Connection moved = std::move(b);
  EXPECT_TRUE(b.closed());  // NOLINT(bugprone-use-after-move): documented state
  expect_throw<mproc::Closed>([&] { b.send(1); }, "handle is closed");
  EXPECT_FALSE(moved.closed());
  EXPECT_TRUE(moved.poll());  // a's close is EOF

  mproc::Connection empty;
  EXPECT_TRUE(empty.closed());
  EXPECT_FALSE(empty.readable() || empty.writable());
  expect_throw<mproc::Closed>([&] { (void)empty.recv_bytes(); }, "handle is closed");
}

TEST(Pipe, FilenoIsAnOwnedCloseOnExecSocket) {
  int fa = -1;
  int fb = -1;
  {
    auto a_b = mproc::Pipe();
    mproc::Connection& a = a_b.first;
    mproc::Connection& b = a_b.second;
    fa = a.fileno();
    fb = b.fileno();
    EXPECT_GE(fa, 0);
    EXPECT_NE(fa, fb);
    struct stat st {};
    ASSERT_EQ(::fstat(fa, &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_TRUE(::fcntl(fa, F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(fb, F_GETFD) & FD_CLOEXEC);
    // The descriptor polls readable once a message is there.
    pollfd p{fb, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0);
    a.send(1);
    EXPECT_EQ(::poll(&p, 1, 0), 1);

    // Move assignment closes the descriptor it replaces.
    auto other = mproc::Pipe();
    const int replaced = other.first.fileno();
    other.first = std::move(a);
    EXPECT_FALSE(fd_is_open(replaced));
    EXPECT_EQ(other.first.fileno(), fa);
  }
  // Destruction closes both ends.
  EXPECT_FALSE(fd_is_open(fa));
  EXPECT_FALSE(fd_is_open(fb));
}

TEST(Pipe, ConnectionAdoptsAPipeDescriptorAndNeverRaisesSIGPIPE) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  mproc::Connection r(fds[0], true, false);
  mproc::Connection w(fds[1], false, true);
  EXPECT_EQ(r.fileno(), fds[0]);
  w.send(std::string("through a pipe"));
  w.send_bytes(bytes_of("raw"));
  EXPECT_EQ(r.recv<std::string>(), "through a pipe");
  EXPECT_EQ(text_of(r.recv_bytes()), "raw");

  r.close();
  expect_system_error([&] { w.send(1); }, std::errc::broken_pipe);
  expect_system_error([&] { w.send_bytes(bytes_of("x")); }, std::errc::broken_pipe);
  EXPECT_FALSE(sigpipe_pending());  // the SIGPIPE the write raised was discarded
  EXPECT_FALSE(sigpipe_blocked());  // and the signal mask restored

  expect_throw<mproc::ValueError>([] { mproc::Connection c(-1); }, "invalid handle");
  int spare[2];
  ASSERT_EQ(::pipe2(spare, O_CLOEXEC), 0);
  expect_throw<mproc::ValueError>([&] { mproc::Connection c(spare[0], false, false); },
                                  "at least one of");
  EXPECT_TRUE(fd_is_open(spare[0]));  // not taken on a throw
  ::close(spare[0]);
  ::close(spare[1]);
  expect_system_error([&] { mproc::Connection c(spare[0]); }, std::errc::bad_file_descriptor);
}

// ---- wait ---------------------------------------------------------------------------------------

TEST(Pipe, WaitReturnsTheIndicesOfReadyConnectionsProcessesAndDescriptors) {
  auto p1 = mproc::Pipe();
  auto p2 = mproc::Pipe();
  auto p3 = mproc::Pipe();
  auto ctl = mproc::Pipe();
  mproc::Process proc(
      [](mproc::Connection c) {
        // The parent is alive: its sentinel is not ready.
        auto parent = mproc::parent_process();
        if (!parent || !mproc::wait({*parent}, 0s).empty()) return 9;
        return c.recv<int>(30s).value_or(-1);
      },
      std::move(ctl.second));
  proc.start();
  int raw[2];
  ASSERT_EQ(::pipe2(raw, O_CLOEXEC), 0);

  std::vector<mproc::Waitable> objects{p1.first, p2.first, p3.first, proc, raw[0]};
  EXPECT_TRUE(mproc::wait(objects, 30ms).empty());  // nothing ready: times out
  EXPECT_TRUE(mproc::wait(objects, -1s).empty());
  EXPECT_TRUE(mproc::wait_until(objects, std::chrono::steady_clock::now() - 1s).empty());

  p2.second.send(5);
  EXPECT_EQ(mproc::wait(objects, kLong), (std::vector<std::size_t>{1}));
  EXPECT_EQ(mproc::wait(objects), (std::vector<std::size_t>{1}));  // ready stays ready
  EXPECT_EQ(p2.first.recv<int>(), 5);

  ctl.first.send(3);  // the process exits
  EXPECT_EQ(mproc::wait(objects, kLong), (std::vector<std::size_t>{3}));
  p3.second.close();  // EOF is ready
  ASSERT_EQ(::write(raw[1], "x", 1), 1);
  EXPECT_EQ(mproc::wait(objects, kLong), (std::vector<std::size_t>{2, 3, 4}));
  ASSERT_TRUE(proc.join(kLong));
  EXPECT_EQ(proc.exitcode(), 3);

  // Braced lists and ranges of Connections.
  EXPECT_EQ(mproc::wait({p1.first, p3.first}, 0s), (std::vector<std::size_t>{1}));
  EXPECT_EQ(mproc::wait({mproc::Waitable(p1.first), proc}), (std::vector<std::size_t>{1}));
  std::vector<mproc::Connection> conns;
  conns.push_back(std::move(p1.first));
  conns.push_back(std::move(p3.first));
  EXPECT_EQ(mproc::wait(conns, kLong), (std::vector<std::size_t>{1}));
  EXPECT_EQ(mproc::wait_until(conns, std::chrono::system_clock::now() + 1s),
            (std::vector<std::size_t>{1}));

  // An empty list just waits for the timeout.
  EXPECT_TRUE(mproc::wait(std::vector<mproc::Waitable>{}, 10ms).empty());
  // Descriptors that are not open.
  expect_system_error([&] { (void)mproc::wait({mproc::Waitable(-1)}, 0s); },
                      std::errc::bad_file_descriptor);
  ::close(raw[0]);
  ::close(raw[1]);
  expect_system_error([&] { (void)mproc::wait({raw[0]}, 0s); }, std::errc::bad_file_descriptor);
  // A process that was never started has no sentinel.
  mproc::Process idle([] {});
  EXPECT_THROW((void)mproc::wait({idle}, 0s), mproc::ValueError);
}

// ---- order --------------------------------------------------------------------------------------

TEST(Pipe, HundredThousandMessagesArriveInOrderWithTheSenderChecksum) {
  constexpr std::uint64_t kCount = 100000;
  auto ends = mproc::Pipe();
  mproc::Connection& parent = ends.first;
  mproc::Connection& child = ends.second;
  // Every 1000th message is a string over the 4 KiB inline size, so both framing paths interleave.
  auto big_text = [](std::uint64_t i) {
    return std::string(4096 + i % 7919, static_cast<char>('a' + i % 26));
  };
  Child c([&] {
    parent.close();
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < kCount; ++i) {
      if (i % 1000 == 999) {
        const auto s = big_text(i);
        sum = sum * 31 + s.size();
        child.send(s);
      } else {
        const Item it{i, mix(i)};
        sum = sum * 31 + it.value;
        child.send(it);
      }
    }
    child.send(sum);
    return 0;
  });
  child.close();

  std::uint64_t sum = 0;
  std::uint64_t out_of_order = 0;
  for (std::uint64_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(parent.poll(kLong)) << "message " << i;
    if (i % 1000 == 999) {
      const auto s = parent.recv<std::string>();
      out_of_order += s != big_text(i);
      sum = sum * 31 + s.size();
    } else {
      const auto it = parent.recv<Item>();
      out_of_order += it.seq != i || it.value != mix(i);
      sum = sum * 31 + it.value;
    }
  }
  EXPECT_EQ(out_of_order, 0u);
  auto theirs = parent.recv<std::uint64_t>(kLong);
  ASSERT_TRUE(theirs.has_value());
  EXPECT_EQ(*theirs, sum);
  EXPECT_EQ(c.wait(), 0);
}
