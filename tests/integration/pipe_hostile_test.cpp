// Connection against an untrusted peer: frames with hostile lengths, truncated and garbage
// payloads, announced sizes that never arrive, and peers that stall mid-frame, from a raw socket
// and from python3 (multiprocessing.connection's framing).
//
// What every case must end in: a value, EOFError, DecodeError, std::system_error (Python's
// OSError: `message_size` for a maxlength, `protocol_error` for a corrupt header) or Closed after
// the connection was closed by such an error; never a crash, a hang or std::bad_alloc, and memory
// in proportion to the bytes the peer actually sent. Receivers that could allocate run in a child
// process whose address space is limited to its size plus 256 MiB (RLIMIT_AS), and report their
// peak RSS growth (VmHWM). Under a sanitizer (helpers/sanitizer.hpp) neither the limit nor the
// growth applies (shadow memory; AddressSanitizer's quarantine keeps freed buffers resident); the
// outcomes are still checked.
//
// Every cross-process wait is bounded: children are forked with a deadline (helpers/child.hpp)
// and are killed if the test process dies; receives in this process follow a peer that closes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mproc/codec.hpp>
#include <mproc/codec/map.hpp>
#include <mproc/codec/set.hpp>
#include <mproc/codec/unordered_map.hpp>
#include <mproc/codec/unordered_set.hpp>
#include <mproc/codec/variant.hpp>
#include <mproc/pipe.hpp>
#include <new>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/sanitizer.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kGiB = std::size_t{1} << 30;
// A receiver's address space may grow by this much (RLIMIT_AS) ...
constexpr std::size_t kHeadroom = 256 * kMiB;
// ... and its resident memory by at most this much while the peer sends kSent bytes (kSentSmall
// for containers whose elements take 4 or 5 times their 8 wire bytes in memory).
constexpr std::size_t kSent = 8 * kMiB;
constexpr std::size_t kSentSmall = 2 * kMiB;
constexpr long kMaxGrowthKiB = 64 * 1024;

using Bytes = std::vector<std::byte>;

// ---- frames -------------------------------------------------------------------------------------

// Python's header: 4-byte big-endian signed length.
Bytes short_header(std::uint32_t v) {
  Bytes h(4);
  for (int i = 0; i < 4; ++i) h[i] = static_cast<std::byte>(v >> (24 - 8 * i));
  return h;
}

// Python's long header: -1, then an 8-byte big-endian length.
Bytes long_header(std::uint64_t n) {
  Bytes h = short_header(0xffffffffu);
  for (int i = 0; i < 8; ++i) h.push_back(static_cast<std::byte>(n >> (56 - 8 * i)));
  return h;
}

// The header mproc and Python write for `n` bytes.
Bytes header(std::uint64_t n) {
  return n <= 0x7fffffffu ? short_header(static_cast<std::uint32_t>(n)) : long_header(n);
}

Bytes u64(std::uint64_t v) {
  Bytes b(8);
  std::memcpy(b.data(), &v, 8);
  return b;
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes frame(const Bytes& payload) { return header(payload.size()) + payload; }

template <class T>
Bytes typed_frame(const T& v) {
  return frame(mproc::to_bytes(v));
}

// Writes all of `b` to a raw socket; false if the receiver is gone.
bool send_all(int fd, std::span<const std::byte> b) {
  while (!b.empty()) {
    const ssize_t k = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    b = b.subspan(static_cast<std::size_t>(k));
  }
  return true;
}

// Sends `n` bytes of `fill`, in pieces; false if the receiver is gone.
bool send_filler(int fd, std::size_t n, std::byte fill) {
  const Bytes piece(64 * 1024, fill);
  while (n > 0) {
    const std::size_t k = std::min(n, piece.size());
    if (!send_all(fd, std::span(piece).first(k))) return false;
    n -= k;
  }
  return true;
}

// ---- outcomes -----------------------------------------------------------------------------------

// What a receive ended with, as one line.
std::string describe_errc(const std::error_code& ec) {
  if (ec == std::errc::message_size) return "message_size";
  if (ec == std::errc::protocol_error) return "protocol_error";
  return ec.message();
}

template <class F>
std::string outcome(F&& f) {
  try {
    return "value " + f();
  } catch (const mproc::EOFError&) {
    return "EOFError";
  } catch (const mproc::DecodeError& e) {
    return std::string("DecodeError: ") + e.what();
  } catch (const mproc::Closed&) {
    return "Closed";
  } catch (const std::system_error& e) {
    return "system_error: " + describe_errc(e.code());
  } catch (const std::bad_alloc&) {
    return "bad_alloc";
  } catch (const std::exception& e) {
    return std::string("other: ") + typeid(e).name() + ": " + e.what();
  }
}

std::string show(const std::string& s) {
  return s.size() <= 16 ? "\"" + s + "\"" : std::to_string(s.size()) + " chars";
}
template <class T>
std::string show(const std::vector<T>& v) {
  return std::to_string(v.size()) + " elements";
}
std::string show(const Bytes& v) { return std::to_string(v.size()) + " bytes"; }

template <class T>
std::function<std::string(mproc::Connection&)> recv_as() {
  return [](mproc::Connection& c) {
    return outcome([&] {
      auto v = c.recv<T>();
      if constexpr (requires { show(v); })
        return show(v);
      else
        return std::string("received");
    });
  };
}

std::function<std::string(mproc::Connection&)> recv_bytes_as() {
  return [](mproc::Connection& c) { return outcome([&] { return show(c.recv_bytes()); }); };
}

// ---- a receiver in a child process with limited memory ------------------------------------------

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0) return std::atol(line.c_str() + n);
  return -1;
}

struct Report {
  int exitcode = -1;
  std::vector<std::string> lines;  // one per receive, in order
  long grew_kib = -1;              // peak resident memory growth during the receives
};

// Runs `receives` one after another in a forked child holding `fd` as a Connection, with its
// address space limited to its current size plus kHeadroom. Construct, act as the peer, then
// finish() to collect what each receive ended with.
class Receiver {
 public:
  Receiver(int fd, std::vector<std::function<std::string(mproc::Connection&)>> receives,
           int peer_fd) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category());
    report_ = p[0];
    child_.emplace([&, w = p[1]] {
      ::close(p[0]);
      ::close(peer_fd);
      const auto vm = static_cast<rlim_t>(status_kib("VmSize:")) * 1024;
      const rlimit lim{vm + kHeadroom, vm + kHeadroom};
      if (!mproc_test::kSanitized && ::setrlimit(RLIMIT_AS, &lim) != 0) return 90;
      const long rss0 = status_kib("VmRSS:");
      std::string out;
      {
        mproc::Connection conn(fd);
        for (auto& r : receives) out += r(conn) + "\n";
      }
      out += "grew_kib " + std::to_string(status_kib("VmHWM:") - rss0) + "\n";
      const char* d = out.data();
      std::size_t left = out.size();
      while (left > 0) {
        const ssize_t k = ::write(w, d, left);
        if (k <= 0) return 91;
        d += k;
        left -= static_cast<std::size_t>(k);
      }
      return 0;
    });
    ::close(p[1]);
    ::close(fd);
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  ~Receiver() {
    if (report_ >= 0) ::close(report_);
  }

  Report finish(std::chrono::milliseconds timeout = 60s) {
    Report r;
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) break;
      pollfd p{report_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t k = ::read(report_, buf, sizeof buf);
      if (k <= 0) break;
      text.append(buf, static_cast<std::size_t>(k));
    }
    r.exitcode = child_->wait(1s);
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t nl = text.find('\n', at);
      std::string line = text.substr(at, nl - at);
      at = nl == std::string::npos ? text.size() : nl + 1;
      if (line.rfind("grew_kib ", 0) == 0)
        r.grew_kib = std::atol(line.c_str() + 9);
      else
        r.lines.push_back(line);
    }
    return r;
  }

 private:
  std::optional<Child> child_;
  int report_ = -1;
};

// A connected pair of raw stream sockets: [0] for the receiver, [1] for the hostile peer.
std::array<int, 2> socket_pair() {
  int s[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  return {s[0], s[1]};
}

// The peer sends `prefix`, then `sent` bytes of `fill`, stalls for a while (the receiver blocked
// inside the message), then closes. Returns what the receiver reported.
Report announce_and_stall(const Bytes& prefix, std::byte fill,
                          std::function<std::string(mproc::Connection&)> receive,
                          std::size_t sent = kSent) {
  const auto sockets = socket_pair();
  const int rx = sockets[0];
  const int peer = sockets[1];
  Receiver receiver(rx, {std::move(receive)}, peer);
  if (send_all(peer, prefix) && send_filler(peer, sent, fill)) std::this_thread::sleep_for(200ms);
  ::close(peer);
  return receiver.finish();
}

void expect_bounded(const Report& r) {
  ::testing::Test::RecordProperty("receiver_growth_kib", std::to_string(r.grew_kib));
  EXPECT_EQ(r.exitcode, 0);
  EXPECT_GE(r.grew_kib, 0);
  if (mproc_test::kSanitized) return;
  EXPECT_LE(r.grew_kib, kMaxGrowthKiB)
      << "the receiver's resident memory grew by " << r.grew_kib
      << " KiB while the peer sent at most " << kSent / 1024 << " KiB";
}

std::vector<std::string> lines(std::initializer_list<std::string> l) { return l; }

// ---- announced sizes that never arrive ----------------------------------------------------------

TEST(PipeHostile, AStringAnnouncedAsGibibytesCommitsOnlyWhatArrives) {
  for (const std::uint64_t announced : {kGiB, 4 * kGiB}) {
    SCOPED_TRACE(announced);
    const Report r = announce_and_stall(header(announced) + u64(announced - 8), std::byte{'x'},
                                        recv_as<std::string>());
    EXPECT_EQ(r.lines, lines({"EOFError"}));
    expect_bounded(r);
  }
}

TEST(PipeHostile, ContainersAnnouncedAsGibibytesCommitOnlyWhatArrives) {
  const std::uint64_t announced = 4 * kGiB;
  struct Case {
    const char* name;
    Bytes prefix;
    std::byte fill;
    std::function<std::string(mproc::Connection&)> receive;
    std::size_t sent = kSent;
  };
  const Case cases[] = {
      {"vector<uint64_t>", u64((announced - 8) / 8), std::byte{7},
       recv_as<std::vector<std::uint64_t>>()},
      {"vector<bool>", u64(announced - 8), std::byte{1}, recv_as<std::vector<bool>>()},
      // Zero bytes are empty strings: elements do arrive, 8 bytes each.
      {"vector<string>", u64((announced - 8) / 8), std::byte{0},
       recv_as<std::vector<std::string>>(), kSentSmall},
      {"unordered_multiset<uint64_t>", u64((announced - 8) / 8), std::byte{0},
       recv_as<std::unordered_multiset<std::uint64_t>>(), kSentSmall},
      // 0x01 bytes are engaged optionals of 0x01010101: 5 bytes each on the wire, 8 in memory.
      {"map<string, vector<optional<int>>>",
       u64(1) + mproc::to_bytes(std::string("key")) + u64(announced / 8), std::byte{1},
       recv_as<std::map<std::string, std::vector<std::optional<int>>>>()},
      {"tuple<int, string>", mproc::to_bytes(7) + u64(announced - 12), std::byte{'y'},
       recv_as<std::tuple<int, std::string>>()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Report r = announce_and_stall(header(announced) + c.prefix, c.fill, c.receive, c.sent);
    EXPECT_EQ(r.lines, lines({"EOFError"}));
    expect_bounded(r);
  }
}

TEST(PipeHostile, RecvBytesOfAnAnnouncedGibibyteCommitsOnlyWhatArrives) {
  for (const std::uint64_t announced : {kGiB, 4 * kGiB}) {
    SCOPED_TRACE(announced);
    const Report r = announce_and_stall(header(announced), std::byte{'z'}, recv_bytes_as());
    EXPECT_EQ(r.lines, lines({"EOFError"}));
    expect_bounded(r);
  }
}

// ---- maxlength ----------------------------------------------------------------------------------

TEST(PipeHostile, TypedRecvRefusesAMessageLongerThanMaxlengthBeforeAllocating) {
  const auto sockets = socket_pair();
  const int rx = sockets[0];
  const int peer = sockets[1];
  Receiver receiver(
      rx,
      {
          // Exactly maxlength is fine, through every form.
          [](mproc::Connection& c) {
            return outcome([&] { return show(c.recv<std::string>(8 + 5)); });
          },
          [](mproc::Connection& c) {
            return outcome([&] { return show(c.recv<std::string>(30s, 8 + 5).value()); });
          },
          [](mproc::Connection& c) {
            return outcome([&] {
              return show(
                  c.recv_until<std::string>(std::chrono::steady_clock::now() + 30s, 8 + 5).value());
            });
          },
          // One byte over: refused, and the connection is closed.
          [](mproc::Connection& c) {
            return outcome([&] { return show(c.recv<std::string>(8 + 5)); });
          },
          [](mproc::Connection& c) { return std::string(c.closed() ? "closed" : "open"); },
          [](mproc::Connection& c) {
            return outcome([&] { return std::to_string(c.recv<int>()); });
          },
      },
      peer);
  bool ok = send_all(peer, typed_frame(std::string("hello")));
  ok = ok && send_all(peer, typed_frame(std::string("world")));
  ok = ok && send_all(peer, typed_frame(std::string("again")));
  // A 4 GiB string announced: refused from its header, nothing of it allocated.
  ok = ok && send_all(peer, header(4 * kGiB) + u64(4 * kGiB - 8));
  EXPECT_TRUE(ok);
  // The receiver closed its end: the peer sees EOF (or a reset: bytes it sent were left unread).
  pollfd p{peer, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1);
  char c;
  const ssize_t k = ::read(peer, &c, 1);
  EXPECT_TRUE(k == 0 || (k < 0 && errno == ECONNRESET)) << k << " " << std::strerror(errno);
  ::close(peer);
  const Report r = receiver.finish();
  EXPECT_EQ(r.lines, lines({"value \"hello\"", "value \"world\"", "value \"again\"",
                            "system_error: message_size", "closed", "Closed"}));
  expect_bounded(r);
}

// ---- hostile lengths in the frame header --------------------------------------------------------

TEST(PipeHostile, HostileLengthsInTheHeaderEndInDocumentedErrors) {
  struct Case {
    const char* name;
    Bytes bytes;                     // then the peer closes
    std::vector<std::string> typed;  // recv<std::string>() then recv<int>()
    std::vector<std::string> raw;    // recv_bytes() then recv_bytes()
  };
  const std::uint64_t kSizeMax = std::numeric_limits<std::uint64_t>::max();
  const Bytes some(1000, std::byte{0x5a});
  const Case cases[] = {
      // An empty message: a string needs at least its count; the connection stays usable.
      {"0",
       short_header(0) + typed_frame(41),
       {"DecodeError: mproc: truncated message: a value needs more bytes than remain", "value"},
       {"value 0 bytes", "value 4 bytes"}},
      {"long form of 0",
       long_header(0) + typed_frame(41),
       {"DecodeError: mproc: truncated message: a value needs more bytes than remain", "value"},
       {"value 0 bytes", "value 4 bytes"}},
      // 2^31 in the 4-byte form is negative and not -1: a corrupt stream.
      {"2^31 short",
       short_header(0x80000000u) + some,
       {"system_error: protocol_error", "Closed"},
       {"system_error: protocol_error", "Closed"}},
      // 2^32 - 1 in the 4-byte form is -1: the long form's marker, whose length never comes.
      {"2^32-1 short",
       short_header(0xffffffffu),
       {"EOFError", "EOFError"},
       {"EOFError", "EOFError"}},
      {"2^31 long",
       long_header(std::uint64_t{1} << 31) + u64(1000) + some,
       {"EOFError", "EOFError"},
       {"EOFError", "EOFError"}},
      {"2^32-1 long",
       long_header(0xffffffffu) + u64(0xffffffffu - 8) + some,
       {"EOFError", "EOFError"},
       {"EOFError", "EOFError"}},
      {"2^63",
       long_header(std::uint64_t{1} << 63) + u64(std::uint64_t{1} << 62) + some,
       {"EOFError", "EOFError"},
       {"EOFError", "EOFError"}},
      {"SIZE_MAX",
       long_header(kSizeMax) + u64(kSizeMax - 8) + some,
       {"EOFError", "EOFError"},
       {"EOFError", "EOFError"}},
      // A string count beyond the frame: a DecodeError (the rest of the frame is consumed).
      {"count beyond the frame",
       frame(u64(kSizeMax) + some) + typed_frame(41),
       {"DecodeError: mproc: corrupt message: a length exceeds the bytes that remain", "value"},
       {"value 1008 bytes", "value 4 bytes"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (const bool typed : {true, false}) {
      const auto sockets = socket_pair();
      const int rx = sockets[0];
      const int peer = sockets[1];
      std::vector<std::function<std::string(mproc::Connection&)>> receives;
      if (typed) {
        receives = {recv_as<std::string>(), [](mproc::Connection& conn) {
                      return outcome([&] {
                        const int v = conn.recv<int>();
                        return std::string(v == 41 ? "" : "wrong value");
                      });
                    }};
      } else {
        receives = {recv_bytes_as(), recv_bytes_as()};
      }
      Receiver receiver(rx, std::move(receives), peer);
      (void)send_all(peer, c.bytes);
      ::close(peer);
      Report r = receiver.finish();
      for (auto& l : r.lines)
        if (l == "value ") l = "value";
      EXPECT_EQ(r.lines, typed ? c.typed : c.raw) << (typed ? "typed" : "recv_bytes");
      expect_bounded(r);
    }
  }
}

// ---- truncated payloads -------------------------------------------------------------------------

using Nested = std::map<std::string, std::vector<std::optional<std::variant<int, std::string>>>>;

Nested nested_value(std::size_t n) {
  Nested m;
  for (std::size_t i = 0; i < n; ++i) {
    auto& v = m["key" + std::to_string(i)];
    v.push_back(std::nullopt);
    v.push_back(static_cast<int>(i));
    v.push_back(std::string(i % 50, 'q'));
  }
  return m;
}

// Sends the frame of `payload` cut after `keep` payload bytes, then closes; the receive, in this
// process, must end in EOFError.
template <class T>
void expect_eof_when_cut(const Bytes& payload, std::size_t keep) {
  auto ends = socket_pair();
  mproc::Connection conn(ends[0]);
  const Bytes whole = frame(payload);
  std::thread peer([&] {  // may block until the receiver reads: the socket holds ~200 KiB
    EXPECT_TRUE(send_all(ends[1], std::span(whole).first(whole.size() - payload.size() + keep)));
    ::close(ends[1]);
  });
  EXPECT_EQ(outcome([&] {
              (void)conn.recv<T>();
              return std::string();
            }),
            "EOFError")
      << "cut after " << keep << " of " << payload.size() << " payload bytes";
  peer.join();
}

template <class T>
void expect_eof_at_cuts(const T& value) {
  SCOPED_TRACE(typeid(T).name());
  const Bytes payload = mproc::to_bytes(value);
  const std::size_t n = payload.size();
  for (std::size_t keep :
       {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, n / 3, n / 2, n - 1})
    if (keep < n) expect_eof_when_cut<T>(payload, keep);
}

TEST(PipeHostile, TruncatedPayloadsFollowedByEOFGiveEOFError) {
  expect_eof_at_cuts(std::string("hello, world"));
  expect_eof_at_cuts(std::string(300000, 's'));  // streamed through the receive buffer
  expect_eof_at_cuts(std::vector<std::uint32_t>(100000, 7));
  expect_eof_at_cuts(std::vector<bool>(5000, true));
  expect_eof_at_cuts(nested_value(10));
  expect_eof_at_cuts(nested_value(3000));
  expect_eof_at_cuts(std::variant<int, std::string>(std::string(20, 'v')));
  expect_eof_at_cuts(std::optional<std::vector<int>>(std::vector<int>{1, 2, 3}));
  expect_eof_at_cuts(std::unordered_map<std::string, std::set<int>>{{"a", {1, 2}}, {"b", {}}});
  // And in the header itself: 2 of 4 bytes, and 5 of 12.
  const Bytes h4 = header(10);
  const Bytes h12 = long_header(10);
  for (const Bytes& cut :
       {Bytes(h4.begin(), h4.begin() + 2), Bytes(h12.begin(), h12.begin() + 5)}) {
    auto ends = socket_pair();
    mproc::Connection conn(ends[0]);
    EXPECT_TRUE(send_all(ends[1], cut));
    ::close(ends[1]);
    EXPECT_EQ(outcome([&] { return show(conn.recv_bytes()); }), "EOFError");
  }
}

// ---- garbage payloads ---------------------------------------------------------------------------

// `n` pseudo-random bytes; the same `seed` gives the same bytes.
Bytes noise(std::size_t n, std::uint64_t seed) {
  Bytes v(n);
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

// Sends each garbage payload as a frame followed by a valid frame of `good`; the garbage must give
// DecodeError (or, should the bytes happen to form a T, a value), and `good` must arrive intact
// after it: the connection stays usable.
template <class T>
void expect_garbage_rejected(const std::vector<Bytes>& garbage, const T& good,
                             const std::vector<std::string>& want = {}) {
  SCOPED_TRACE(typeid(T).name());
  auto ends = socket_pair();
  mproc::Connection conn(ends[0]);
  mproc::Connection peer(ends[1]);
  std::thread sender([&] {
    try {
      for (const Bytes& g : garbage) {
        peer.send_bytes(g);
        peer.send(good);
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "send: " << e.what();
    }
  });
  for (std::size_t i = 0; i < garbage.size() && !::testing::Test::HasFatalFailure(); ++i) {
    const std::string got = outcome([&] {
      (void)conn.recv<T>();
      return std::string();
    });
    if (i < want.size()) {
      EXPECT_EQ(got, want[i]) << "garbage " << i;
    } else {
      EXPECT_TRUE(got == "value " || got.rfind("DecodeError: ", 0) == 0)
          << "garbage " << i << " of " << garbage[i].size() << " bytes: " << got;
    }
    const std::optional<T> next = conn.recv<T>(30s);
    EXPECT_TRUE(next.has_value() && *next == good) << "garbage " << i;
    if (!next) break;
  }
  conn.close();  // a sender still blocked gets EPIPE
  sender.join();
}

std::vector<Bytes> random_garbage(std::uint64_t seed) {
  std::vector<Bytes> g;
  for (std::size_t n : {1u, 7u, 8u, 9u, 64u, 4095u, 4096u, 4097u, 70000u, 300000u})
    g.push_back(noise(n, seed + n));
  // Plausible counts followed by too little.
  g.push_back(u64(3) + noise(5, seed));
  g.push_back(u64(1000) + noise(300, seed));
  return g;
}

TEST(PipeHostile, GarbagePayloadsGiveDecodeErrorAndTheConnectionStaysUsable) {
  const std::string kLength =
      "DecodeError: mproc: corrupt message: a length exceeds the bytes that "
      "remain";
  const std::string kShort =
      "DecodeError: mproc: truncated message: a value needs more bytes than remain";
  expect_garbage_rejected<std::string>(
      [&] {
        auto g = random_garbage(1);
        g.insert(g.begin(), {Bytes(16, std::byte{0xff}), u64(9) + Bytes(8), Bytes(3)});
        return g;
      }(),
      std::string("good"), {kLength, kLength, kShort});
  expect_garbage_rejected<std::vector<std::uint32_t>>(random_garbage(2), {1, 2, 3});
  expect_garbage_rejected<std::vector<bool>>(
      [&] {
        auto g = random_garbage(3);
        g.insert(g.begin(), u64(2) + Bytes{std::byte{1}, std::byte{2}});
        return g;
      }(),
      {true, false}, {"DecodeError: mproc: corrupt message: a bool is neither 0 nor 1"});
  expect_garbage_rejected<std::map<std::string, int>>(
      [&] {
        auto g = random_garbage(4);
        const Bytes kv = mproc::to_bytes(std::string("k")) + mproc::to_bytes(1);
        g.insert(g.begin(), u64(2) + kv + kv);
        return g;
      }(),
      {{"a", 1}}, {"DecodeError: mproc: corrupt message: a duplicate key in a map"});
  expect_garbage_rejected<std::unordered_set<std::string>>(random_garbage(5), {"x", "y"});
  expect_garbage_rejected<std::variant<int, std::string>>(
      [&] {
        auto g = random_garbage(6);
        g.insert(g.begin(),
                 Bytes{std::byte{9}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}});
        return g;
      }(),
      std::variant<int, std::string>(std::string("v")),
      {"DecodeError: mproc: corrupt message: variant index 9 is out of range (2 alternatives)"});
  expect_garbage_rejected<std::optional<std::vector<int>>>(
      [&] {
        auto g = random_garbage(7);
        g.insert(g.begin(), Bytes{std::byte{2}});
        return g;
      }(),
      std::optional<std::vector<int>>(std::vector<int>{4}),
      {"DecodeError: mproc: corrupt message: an optional's flag is neither 0 nor 1"});
  expect_garbage_rejected<Nested>(random_garbage(8), nested_value(5));
  expect_garbage_rejected<std::tuple<int, std::optional<std::string>, std::vector<bool>>>(
      [&] {
        auto g = random_garbage(9);
        // Valid value with one byte too many.
        auto extra = mproc::to_bytes(
            std::tuple<int, std::optional<std::string>, std::vector<bool>>{1, "x", {true}});
        extra.push_back(std::byte{0});
        g.insert(g.begin(), extra);
        return g;
      }(),
      {2, std::nullopt, {false}},
      {"DecodeError: mproc: trailing bytes: 1 bytes remain after the decoded value (was it sent "
       "as another type?)"});
}

// ---- a peer that stalls mid-frame ---------------------------------------------------------------

// The promise (pipe.hpp): a timeout bounds the wait for a message to begin; a message whose first
// bytes have arrived is received whole, for as long as its sender sends it, and a sender that goes
// away ends that wait with EOFError.
TEST(PipeHostile, AMessageThatBeganIsReceivedWholeEvenPastTheTimeout) {
  for (const std::size_t size : {std::size_t{100}, std::size_t{1} << 20}) {
    SCOPED_TRACE(size);
    auto ends = socket_pair();
    mproc::Connection conn(ends[0]);
    const std::string value(size, 'm');
    const Bytes f = typed_frame(value);
    const int peer = ends[1];
    std::thread sender([&] {
      (void)send_all(peer, std::span(f).first(f.size() / 2));
      std::this_thread::sleep_for(300ms);
      (void)send_all(peer, std::span(f).subspan(f.size() / 2));
    });
    ASSERT_TRUE(conn.poll(30s));
    std::this_thread::sleep_for(20ms);  // the first half is there
    const std::optional<std::string> got = conn.recv<std::string>(10ms);
    sender.join();
    ::close(peer);
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(*got == value);
  }
}

TEST(PipeHostile, APeerThatStallsMidFrameThenGoesAwayGivesEOFError) {
  for (const std::size_t keep : {std::size_t{2}, std::size_t{4 + 8 + 10}, std::size_t{500000}}) {
    SCOPED_TRACE(keep);
    auto ends = socket_pair();
    mproc::Connection conn(ends[0]);
    const Bytes f = typed_frame(std::string(1000000, 'm'));
    const int peer = ends[1];
    std::thread sender([&] {
      (void)send_all(peer, std::span(f).first(keep));
      std::this_thread::sleep_for(200ms);
      ::close(peer);
    });
    EXPECT_TRUE(conn.poll(30s));  // the message began
    EXPECT_EQ(outcome([&] { return show(conn.recv<std::string>(10ms).value_or("none")); }),
              "EOFError");
    sender.join();
  }
  // Nothing at all within the timeout: empty, and the connection is usable afterwards.
  auto [a, b] = mproc::Pipe();
  EXPECT_FALSE(a.recv<std::string>(20ms).has_value());
  b.send(std::string("late"));
  EXPECT_EQ(a.recv<std::string>(30s).value_or(""), "late");
}

// ---- a python3 peer -----------------------------------------------------------------------------

const char* python() {
  const char* py = std::getenv("MPROC_TEST_PYTHON");
  if (py == nullptr || *py == '\0' || ::access(py, X_OK) != 0) return nullptr;
  return py;
}

// The Python side: multiprocessing.connection.Connection on fd 3 for well-formed frames, and raw
// writes on the same socket for hostile ones. argv[1] names the scenario.
const char* const kPythonPeer = R"PY(
import os, pickle, socket, struct, sys, time
from multiprocessing.connection import Connection

mode = sys.argv[1]
c = Connection(3)
raw = socket.socket(fileno=os.dup(3))

def typed_string(s):  # mproc's encoding of a std::string: a native uint64 count, then the bytes
    return struct.pack('=Q', len(s)) + s

def stall_then_exit():
    time.sleep(0.2)
    sys.exit(0)

if mode == 'sequence':
    c.send_bytes(b'')                                  # an empty message
    c.send_bytes(typed_string(b'ok'))                  # a well-formed string
    c.send_bytes(pickle.dumps({'a': 1}))               # a pickle, not mproc's encoding
    c.send_bytes(b'\x09' + b'\x00' * 8)                # variant index 9 of 2
    c.send_bytes(b'\x02')                              # optional flag 2
    c.send_bytes(b'\xff' * 100000)                     # count 2^64-1, long message
    c.send_bytes(typed_string(b'abc'))                 # still usable
    c.send_bytes(typed_string(b'x' * 3000000))         # long, well-formed
    # 4 GiB announced in Python's long header, a string count to match, 8 MiB of it, then gone.
    n = 4 << 30
    raw.sendall(struct.pack('!i', -1) + struct.pack('!Q', n) + struct.pack('=Q', n - 8))
    raw.sendall(b'x' * (8 << 20))
    stall_then_exit()
elif mode == 'negative':
    raw.sendall(struct.pack('!i', -2) + b'x' * 100)
    stall_then_exit()
elif mode == 'size_max':
    raw.sendall(struct.pack('!i', -1) + struct.pack('!Q', 2**64 - 1) + b'\xff' * 1000)
    stall_then_exit()
elif mode == 'maxlength':
    c.send_bytes(typed_string(b'x' * 100))
    try:
        c.send_bytes(typed_string(b'y' * 2000000))
    except OSError:  # the receiver refused the message and closed the connection
        pass
    stall_then_exit()
elif mode == 'truncated':
    raw.sendall(struct.pack('!i', 1000) + typed_string(b'z' * 992)[:500])
    stall_then_exit()
)PY";

// Runs the Python peer in `mode` against a receiver child performing `receives`.
Report python_peer(const char* py, const char* mode,
                   std::vector<std::function<std::string(mproc::Connection&)>> receives) {
  const auto sockets = socket_pair();  // (clang 14 cannot capture structured bindings)
  const int rx = sockets[0];
  const int peer = sockets[1];
  Receiver receiver(rx, std::move(receives), peer);
  Child python_child([&] {
    if (peer == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else if (::dup2(peer, 3) != 3) {
      return 96;
    }
    ::execl(py, py, "-c", kPythonPeer, mode, static_cast<char*>(nullptr));
    return 97;
  });
  ::close(peer);
  Report r = receiver.finish();
  EXPECT_EQ(python_child.wait(30s), 0) << "python peer, mode " << mode;
  return r;
}

TEST(PipeHostile, PythonPeerGarbageAndHugeFramesEndInDocumentedErrors) {
  const char* py = python();
  if (py == nullptr) GTEST_SKIP() << "no python3 (MPROC_TEST_PYTHON)";
  const Report r =
      python_peer(py, "sequence",
                  {recv_as<std::string>(), recv_as<std::string>(),
                   recv_as<std::map<std::string, int>>(), recv_as<std::variant<int, std::string>>(),
                   recv_as<std::optional<int>>(), recv_as<std::vector<std::string>>(),
                   recv_as<std::string>(), recv_as<std::string>(), recv_as<std::string>()});
  ASSERT_EQ(r.lines.size(), 9u) << ::testing::PrintToString(r.lines);
  EXPECT_EQ(r.lines[0],
            "DecodeError: mproc: truncated message: a value needs more bytes than remain");
  EXPECT_EQ(r.lines[1], "value \"ok\"");
  EXPECT_EQ(r.lines[2].rfind("DecodeError: ", 0), 0u) << r.lines[2];
  EXPECT_EQ(r.lines[3],
            "DecodeError: mproc: corrupt message: variant index 9 is out of range (2 "
            "alternatives)");
  EXPECT_EQ(r.lines[4],
            "DecodeError: mproc: corrupt message: an optional's flag is neither 0 nor 1");
  EXPECT_EQ(r.lines[5],
            "DecodeError: mproc: corrupt message: a length exceeds the bytes that remain");
  EXPECT_EQ(r.lines[6], "value \"abc\"");
  EXPECT_EQ(r.lines[7], "value 3000000 chars");
  EXPECT_EQ(r.lines[8], "EOFError");
  expect_bounded(r);
}

TEST(PipeHostile, PythonPeerHostileHeadersEndInDocumentedErrors) {
  const char* py = python();
  if (py == nullptr) GTEST_SKIP() << "no python3 (MPROC_TEST_PYTHON)";
  Report r = python_peer(py, "negative", {recv_as<std::string>(), recv_as<std::string>()});
  EXPECT_EQ(r.lines, lines({"system_error: protocol_error", "Closed"}));
  expect_bounded(r);

  r = python_peer(py, "size_max", {recv_as<std::vector<std::uint64_t>>()});
  EXPECT_EQ(r.lines, lines({"EOFError"}));
  expect_bounded(r);
  r = python_peer(py, "size_max", {recv_bytes_as()});
  EXPECT_EQ(r.lines, lines({"EOFError"}));
  expect_bounded(r);

  r = python_peer(py, "truncated", {recv_as<std::string>()});
  EXPECT_EQ(r.lines, lines({"EOFError"}));
  expect_bounded(r);

  r = python_peer(
      py, "maxlength",
      {[](mproc::Connection& c) {
         return outcome([&] { return show(c.recv<std::string>(1000)); });
       },
       [](mproc::Connection& c) {
         return outcome([&] { return show(c.recv<std::string>(1000)); });
       },
       [](mproc::Connection& c) { return std::string(c.closed() ? "closed" : "open"); }});
  EXPECT_EQ(r.lines, lines({"value 100 chars", "system_error: message_size", "closed"}));
  expect_bounded(r);
}

}  // namespace
