// bench/floors_queue.cpp — the floors of the queue and pipe groups.
//
// What moving a message costs without any library of ours: a kernel pipe written and read 64 bytes
// at a time (or a batch at a time), one memcpy of 64 KiB (the copy each side of a shared-memory
// queue makes at least once), two atomics in shared memory that two processes spin on (the least a
// round trip between two running processes can cost), and a socketpair written and read by two
// processes in turn (what a pipe connection's round trip costs at least). queue.roundtrip's
// blocking floor is event.pingpong's, registered in floors.cpp.
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

#include "harness.hpp"
#include "protocols.hpp"

namespace mproc_bench {
namespace {

// The size of a pipe's buffer in the pipe floors: that of mproc's default queue ring.
constexpr int kPipeBytes = 1 << 20;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const std::byte*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd, p, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("write");
    }
    p += w;
    size -= static_cast<std::size_t>(w);
  }
}

// Reads at least `min` and at most `max` bytes into `dst`; returns how many.
std::size_t read_some(int fd, std::byte* dst, std::size_t min, std::size_t max) {
  std::size_t have = 0;
  while (have < min) {
    const ssize_t r = ::read(fd, dst + have, max - have);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("read");
    }
    if (r == 0) throw std::runtime_error("read: end of file");
    have += static_cast<std::size_t>(r);
  }
  return have;
}

// A pipe(2) as a channel of Msg64 (protocols.hpp): `put` writes one message with one write(2),
// `put_many` a whole batch with one write(2); `get` reads one message, `get_many` reads whatever
// is there up to the batch (keeping a partial message for the next call). Each process has its
// own object (the runner's fork copies it); the descriptors are shared.
class PipeChannel {
 public:
  PipeChannel() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
    r_ = fds[0];
    w_ = fds[1];
    (void)::fcntl(w_, F_SETPIPE_SZ, kPipeBytes);  // as large as allowed, up to the queue's ring
  }
  PipeChannel(const PipeChannel&) = delete;
  PipeChannel& operator=(const PipeChannel&) = delete;
  ~PipeChannel() {
    ::close(r_);
    ::close(w_);
  }

  void put(const Msg64& m) { write_all(w_, &m, sizeof m); }
  std::size_t put_many(std::span<const Msg64> ms) {
    write_all(w_, ms.data(), ms.size_bytes());
    return ms.size();
  }

  Msg64 get() {
    Msg64 m;
    take(reinterpret_cast<std::byte*>(&m), sizeof m, sizeof m);
    return m;
  }
  std::vector<Msg64> get_many(std::size_t max) {
    std::vector<Msg64> out(max);
    auto* dst = reinterpret_cast<std::byte*>(out.data());
    const std::size_t have = take(dst, sizeof(Msg64), max * sizeof(Msg64));
    const std::size_t whole = have / sizeof(Msg64);
    partial_ = have % sizeof(Msg64);
    std::memcpy(pending_, dst + whole * sizeof(Msg64), partial_);
    out.resize(whole);
    return out;
  }

 private:
  // The bytes of a message read in part by the last get_many come first.
  std::size_t take(std::byte* dst, std::size_t min, std::size_t max) {
    const std::size_t kept = partial_;
    std::memcpy(dst, pending_, kept);
    partial_ = 0;
    return kept + read_some(r_, dst + kept, min > kept ? min - kept : 0, max - kept);
  }

  int r_ = -1;
  int w_ = -1;
  std::byte pending_[sizeof(Msg64)];
  std::size_t partial_ = 0;
};

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Two words two processes spin on: A stores i in `ping` and waits for `pong` to become i; B waits
// for `ping` to become i and stores i in `pong`. A waiter yields its CPU every 4096 spins, which
// matters only when both share one CPU (--pin same).
struct SpinWords {
  alignas(64) std::atomic<std::uint64_t> ping{0};
  alignas(64) std::atomic<std::uint64_t> pong{0};
};

void spin_until(const std::atomic<std::uint64_t>& word, std::uint64_t value) noexcept {
  for (unsigned k = 1; word.load(std::memory_order_acquire) != value; ++k) {
    cpu_relax();
    if (k % 4096 == 0) ::sched_yield();
  }
}

// One end of a socketpair(AF_UNIX, SOCK_STREAM) (what multiprocessing.Pipe() and mproc::Pipe()
// use), carrying a value as the bytes a connection puts on the wire for it: a 4-byte big-endian
// length (8) and the value's 8 bytes, with one write(2) and one read(2) per message.
class SocketEnd {
 public:
  explicit SocketEnd(int fd) : fd_(fd) {}
  SocketEnd(const SocketEnd&) = delete;
  SocketEnd& operator=(const SocketEnd&) = delete;
  ~SocketEnd() { ::close(fd_); }
  void send(std::uint64_t v) {
    std::byte frame[kFrame] = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{sizeof v}};
    std::memcpy(frame + 4, &v, sizeof v);
    write_all(fd_, frame, sizeof frame);
  }
  std::uint64_t recv() {
    std::byte frame[kFrame];
    read_some(fd_, frame, sizeof frame, sizeof frame);
    check(frame[3] == std::byte{8}, "socketpair: a frame of the wrong length");
    std::uint64_t v = 0;
    std::memcpy(&v, frame + 4, sizeof v);
    return v;
  }

 private:
  static constexpr std::size_t kFrame = 4 + sizeof(std::uint64_t);
  int fd_;
};

struct SocketPair {
  std::unique_ptr<SocketEnd> a;
  std::unique_ptr<SocketEnd> b;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw_errno("socketpair");
    a = std::make_unique<SocketEnd>(fds[0]);
    b = std::make_unique<SocketEnd>(fds[1]);
  }
};

const Registrar kSpsc64{{
    .name = "queue.spsc_64B/floor",
    .group = "queue.spsc_64B",
    .impl = "floor",
    .label = "pipe(2), one 64-byte write(2) / read(2) per message",
    .make =
        [] {
          auto ch = std::make_shared<PipeChannel>();
          return pair_runner({
              .pin = Pin::kSplit,
              .before = {},
              .self = [ch](std::uint64_t n) { spsc_consume(*ch, n); },
              .partner = [ch](std::uint64_t n) { spsc_produce(*ch, n); },
          });
        },
}};

const Registrar kSpsc64Batch{{
    .name = "queue.spsc_64B_batch/floor",
    .group = "queue.spsc_64B_batch",
    .impl = "floor",
    .label = "pipe(2), one write(2) per batch of 256, read(2) of up to 256",
    .make =
        [] {
          auto ch = std::make_shared<PipeChannel>();
          return pair_runner({
              .pin = Pin::kSplit,
              .before = {},
              .self = [ch](std::uint64_t n) { spsc_consume_batch(*ch, n); },
              .partner = [ch](std::uint64_t n) { spsc_produce_batch(*ch, n); },
          });
        },
}};

const Registrar kSpsc64KiB{{
    .name = "queue.spsc_64KiB/floor",
    .group = "queue.spsc_64KiB",
    .impl = "floor",
    .label = "memcpy of 64 KiB, one process (one copy per side)",
    .make =
        [] {
          struct Buffers {
            std::vector<std::byte> src = std::vector<std::byte>(kBulkBytes, std::byte{1});
            std::vector<std::byte> dst = std::vector<std::byte>(kBulkBytes);
          };
          auto b = std::make_shared<Buffers>();
          return loop_runner([b](std::uint64_t n) {
            for (std::uint64_t i = 0; i < n; ++i) {
              std::memcpy(b->src.data(), &i, sizeof i);
              std::memcpy(b->dst.data(), b->src.data(), kBulkBytes);
              do_not_optimize(b->dst.data());
            }
          });
        },
}};

const Registrar kRoundtripSpin{{
    .name = "queue.roundtrip_spin/floor",
    .group = "queue.roundtrip_spin",
    .impl = "floor",
    .label = "two atomics in shared memory, busy-wait",
    .make =
        [] {
          auto w = make_shared_object<SpinWords>();
          return pair_runner({
              .pin = Pin::kSplit,
              .before =
                  [w] {
                    w->ping.store(0);
                    w->pong.store(0);
                  },
              .self =
                  [w](std::uint64_t n) {
                    for (std::uint64_t i = 1; i <= n; ++i) {
                      w->ping.store(i, std::memory_order_release);
                      spin_until(w->pong, i);
                    }
                  },
              .partner =
                  [w](std::uint64_t n) {
                    for (std::uint64_t i = 1; i <= n; ++i) {
                      spin_until(w->ping, i);
                      w->pong.store(i, std::memory_order_release);
                    }
                  },
          });
        },
}};

const Registrar kPipeRoundtrip{{
    .name = "pipe.roundtrip/floor",
    .group = "pipe.roundtrip",
    .impl = "floor",
    .label = "socketpair(AF_UNIX, SOCK_STREAM), 12-byte write(2) / read(2) (length + value)",
    .make =
        [] {
          auto s = std::make_shared<SocketPair>();
          return pair_runner({
              .pin = Pin::kSame,
              .before = {},
              .self = [s](std::uint64_t n) { pipe_roundtrip_a(*s->a, n); },
              .partner = [s](std::uint64_t n) { pipe_roundtrip_b(*s->b, n); },
          });
        },
}};

}  // namespace
}  // namespace mproc_bench
