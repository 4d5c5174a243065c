// Pipe, Connection and wait: length-prefixed frames over stream sockets, and poll(2) over many
// descriptors.
#include <poll.h>        // pollfd, POLLIN
#include <sys/socket.h>  // SOCK_STREAM, SHUT_*
#include <sys/stat.h>    // S_ISSOCK...: the kind of a descriptor that travelled
#include <sys/uio.h>     // iovec

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mproc/detail/queue_core.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/interrupt.hpp>
#include <mproc/pipe.hpp>
#include <mproc/process.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "posix/error.hpp"
#include "posix/fd_io.hpp"
#include "posix/pidfd.hpp"
#include "posix/poll.hpp"
#include "posix/socket.hpp"

namespace mproc {

namespace {

[[noreturn]] void throw_closed() { throw Closed("handle is closed"); }
[[noreturn]] void throw_eof() { throw EOFError("the peer closed the connection"); }
[[noreturn]] void throw_broken_pipe() {
  throw std::system_error(std::make_error_code(std::errc::broken_pipe),
                          "mproc::Connection: send to a peer that closed the connection");
}

// Waits (without limit) until `fd` is ready for `events`; 0 or the errno. Only a descriptor the
// user made non-blocking needs it.
int await_fd(int fd, short events) noexcept { return detail::await_fd(fd, events).value(); }

// Reads up to `n` bytes (at least one, blocking). Returns the count, 0 at EOF; `err` is set (and
// 0 returned) on an error. A connection reset by the peer is its EOF.
std::size_t read_raw(int fd, std::byte* out, std::size_t n, int& err) noexcept {
  constexpr std::size_t kMaxIo = 0x7ffff000;  // Linux's limit on one read (MAX_RW_COUNT)
  err = 0;
  if (n > kMaxIo) n = kMaxIo;
  for (;;) {
    std::size_t got = 0;
    const int e = detail::read_some(fd, out, n, got).value();
    if (e == 0) return got;
    if (e == EAGAIN) {
      if (int pe = await_fd(fd, POLLIN)) {
        err = pe;
        return 0;
      }
      continue;
    }
    if (e == ECONNRESET) return 0;
    err = e;
    return 0;
  }
}

using detail::SigpipeGuard;  // posix/fd_io.hpp

std::uint64_t load_be(const std::byte* p, int n) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<std::uint64_t>(p[i]);
  return v;
}

}  // namespace

// ---- BufferTooShort -----------------------------------------------------------------------------

BufferTooShort::BufferTooShort(std::vector<std::byte> message, std::size_t buffer_size)
    : ProcessError("buffer too short: a message of " + std::to_string(message.size()) +
                   " bytes does not fit in a buffer of " + std::to_string(buffer_size) + " bytes"),
      message_(detail::make_ref<const std::vector<std::byte>>(std::move(message))) {}

BufferTooShort::~BufferTooShort() = default;

// ---- frames of typed messages -------------------------------------------------------------------

namespace detail {

void throw_size_mismatch(std::uint64_t announced, std::uint64_t written) {
  throw Error("mproc: the encoder wrote " + std::to_string(written) +
              " bytes where encoded_size() announced " + std::to_string(announced));
}

void throw_trailing_bytes(std::size_t left) {
  throw DecodeError("mproc: trailing bytes: " + std::to_string(left) +
                    " bytes remain after the decoded value (was it sent as another type?)");
}

void throw_too_large(std::uint64_t payload) {
  throw DecodeError("mproc::Connection::recv: the value decoded from a message of " +
                    std::to_string(payload) +
                    " bytes does not fit in this process's memory (std::bad_alloc)");
}

namespace {
std::size_t header_size(std::uint64_t payload) noexcept { return payload <= 0x7fffffffu ? 4 : 12; }
}  // namespace

FrameSender::FrameSender(Connection& conn, std::uint64_t payload) : conn_(conn), payload_(payload) {
  const std::size_t h = header_size(payload);
  const std::uint64_t total = h + payload;
  cap_ = static_cast<std::size_t>(std::min<std::uint64_t>(kFrameChunk, total));
  buf_.reset(new std::byte[cap_]);
  (void)put_frame_header(buf_.get(), payload);
  unplaced_ = total - cap_;
  writer_ = Writer(buf_.get() + h, buf_.get() + cap_, &FrameSender::refill, this);
}

FrameSender::~FrameSender() = default;

void FrameSender::refill(Writer& w, void* self) {
  auto& s = *static_cast<FrameSender*>(self);
  if (s.unplaced_ == 0)
    throw Error("mproc: the encoder wrote more bytes than encoded_size() announced (" +
                std::to_string(s.payload_) + ")");
  const auto k = static_cast<std::size_t>(w.cur() - s.buf_.get());
  s.conn_.send_raw(s.buf_.get(), k, nullptr, 0);
  s.sent_ += k;
  const auto next = static_cast<std::size_t>(std::min<std::uint64_t>(s.cap_, s.unplaced_));
  s.unplaced_ -= next;
  w.set_window(s.buf_.get(), s.buf_.get() + next);
}

void FrameSender::finish() {
  if (unplaced_ != 0 || writer_.cur() != writer_.end()) {
    const std::uint64_t placed = header_size(payload_) + payload_ - unplaced_ -
                                 static_cast<std::uint64_t>(writer_.end() - writer_.cur());
    abort();
    throw_size_mismatch(payload_, placed - header_size(payload_));
  }
  try {
    conn_.send_raw(buf_.get(), static_cast<std::size_t>(writer_.cur() - buf_.get()), nullptr, 0);
  } catch (...) {
    abort();
    throw;
  }
}

void FrameSender::abort() noexcept {
  if (sent_ > 0) conn_.break_framing();
}

FrameReceiver::FrameReceiver(Connection& conn, std::uint64_t payload)
    : conn_(conn), unread_(payload) {
  cap_ = static_cast<std::size_t>(std::min<std::uint64_t>(kFrameChunk, payload));
  buf_.reset(new std::byte[cap_]);
  reader_ = Reader(buf_.get(), buf_.get(), static_cast<std::size_t>(payload),
                   &FrameReceiver::refill, this);
  reader_.set_direct(&FrameReceiver::direct);
}

FrameReceiver::~FrameReceiver() = default;

void FrameReceiver::refill(Reader& r, void* self) {
  auto& s = *static_cast<FrameReceiver*>(self);
  if (s.unread_ == 0) throw DecodeError("mproc: truncated message");
  const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(s.cap_, s.unread_));
  const std::size_t got = s.conn_.recv_some(s.buf_.get(), want);
  s.unread_ -= got;
  r.set_window(s.buf_.get(), s.buf_.get() + got);
}

std::size_t FrameReceiver::direct(std::byte* out, std::size_t n, void* self) {
  auto& s = *static_cast<FrameReceiver*>(self);
  // The window is empty, so the Reader's remaining bytes are all still in the socket: n <= unread_.
  const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n, s.unread_));
  if (want == 0) throw DecodeError("mproc: truncated message");
  const std::size_t got = s.conn_.recv_some(out, want);
  s.unread_ -= got;
  return got;
}

void FrameReceiver::finish() const {
  if (reader_.remaining() != 0) throw_trailing_bytes(reader_.remaining());
}

void FrameReceiver::abandon() {
  if (unread_ == 0) return;
  if (conn_.discard(unread_, buf_.get(), cap_)) {
    unread_ = 0;
    return;
  }
  // discard() closes the connection on a read error; still open means EOF came first.
  if (!conn_.closed()) throw_eof();
}

}  // namespace detail

// ---- Connection ---------------------------------------------------------------------------------

Connection::Connection(int fd, bool readable, bool writable) {
  if (fd < 0) throw ValueError("invalid handle");
  if (!readable && !writable)
    throw ValueError("at least one of `readable` and `writable` must be true");
  bool socket = false;
  if (auto ec = detail::is_socket(fd, socket)) detail::throw_system_error(ec, "mproc::Connection");
  fd_ = fd;
  readable_ = readable;
  writable_ = writable;
  socket_ = socket;
}

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      readable_(std::exchange(other.readable_, false)),
      writable_(std::exchange(other.writable_, false)),
      socket_(std::exchange(other.socket_, false)),
      broken_(other.broken_.exchange(false, detail::order::relaxed)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    readable_ = std::exchange(other.readable_, false);
    writable_ = std::exchange(other.writable_, false);
    socket_ = std::exchange(other.socket_, false);
    broken_.store(other.broken_.exchange(false, detail::order::relaxed), detail::order::relaxed);
  }
  return *this;
}

Connection::~Connection() { close(); }

void Connection::close() noexcept {
  if (fd_ >= 0) {
    detail::close_fd(fd_);
    fd_ = -1;
  }
  broken_.store(false, detail::order::relaxed);
}

void Connection::break_framing() noexcept {
  // A socket is shut down rather than closed: another thread of this process may be blocked on
  // the descriptor (duplex send and receive), and closing it under that thread would free its
  // number for reuse. Shutting it down wakes that thread (EOF / EPIPE) and shows the peer EOF;
  // the descriptor itself is released by close() or the destructor. Any other descriptor (a pipe
  // end, one-directional) is closed now.
  if (fd_ < 0) return;
  if (socket_ && !detail::shutdown_socket(fd_, SHUT_RDWR)) {
    broken_.store(true, detail::order::relaxed);
  } else {
    close();
  }
}

int Connection::fileno() const {
  check_open();
  return fd_;
}

// ---- travel to another process (see "Travel" in pipe.hpp) --------------------------------------

namespace {
constexpr std::uint8_t kTravelSocket = 1;
constexpr std::uint8_t kTravelStream = 2;  // a pipe or a character device

[[noreturn]] void throw_travel_decode(const std::string& what) {
  throw DecodeError("mproc::Connection: the handle that travelled " + what);
}

const char* file_kind(mode_t mode) noexcept {
  return S_ISSOCK(mode)   ? "a socket"
         : S_ISFIFO(mode) ? "a pipe"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISREG(mode)  ? "a regular file (shared memory?)"
         : S_ISDIR(mode)  ? "a directory"
                          : "a file of another kind";
}
}  // namespace

void Connection::encode_travel(Writer& w) const {
  detail::Descriptors* out = detail::travel_out();
  if (out == nullptr) {
    throw ValueError(
        "mproc::Connection can travel to another process only as an argument of a Process or of "
        "a Pool task (a Connection cannot be sent over a Queue or another Connection)");
  }
  if (closed()) throw Closed("mproc::Connection: cannot send a closed handle to a process");
  std::uint8_t kind = kTravelSocket;
  if (!socket_) {
    mode_t mode = 0;
    if (auto ec = detail::file_mode(fd_, mode))
      detail::throw_system_error(ec, "mproc::Connection: fstat");
    if (!S_ISFIFO(mode) && !S_ISCHR(mode))
      throw ValueError(std::string("mproc::Connection: a connection over ") + file_kind(mode) +
                       " cannot travel to another process");
    kind = kTravelStream;
  }
  const std::uint32_t index = out->add_dup(fd_);
  w.write_value(index);
  w.write_value(static_cast<std::uint8_t>(readable_ ? 1 : 0));
  w.write_value(static_cast<std::uint8_t>(writable_ ? 1 : 0));
  w.write_value(kind);
  w.write_value(std::uint8_t{0});
}

Connection Connection::decode_travel(Reader& r) {
  const auto index = r.read_value<std::uint32_t>();
  const auto readable = r.read_value<std::uint8_t>();
  const auto writable = r.read_value<std::uint8_t>();
  const auto kind = r.read_value<std::uint8_t>();
  const auto zero = r.read_value<std::uint8_t>();
  if (readable > 1 || writable > 1 || zero != 0 || (kind != kTravelSocket && kind != kTravelStream))
    throw_travel_decode("has a corrupt header");
  if (readable == 0 && writable == 0) throw_travel_decode("neither receives nor sends");
  const detail::Descriptors* in = detail::travel_in();
  if (in == nullptr)
    throw_travel_decode("came without its descriptors (decoded outside a TravelIn scope)");
  if (index >= in->size())
    throw_travel_decode("names descriptor " + std::to_string(index) + " of the " +
                        std::to_string(in->size()) + " that came with it");
  const int fd = in->at(index);
  mode_t mode = 0;
  if (auto ec = detail::file_mode(fd, mode))
    detail::throw_system_error(ec, "mproc::Connection: fstat of its descriptor");
  const bool ok = kind == kTravelSocket ? S_ISSOCK(mode) : (S_ISFIFO(mode) || S_ISCHR(mode));
  if (!ok)
    throw_travel_decode(std::string("came with ") + file_kind(mode) + " where " +
                        (kind == kTravelSocket ? "a socket" : "a pipe") + " was sent");
  int copy = -1;
  if (auto ec = detail::dup_cloexec(fd, copy))
    detail::throw_system_error(ec, "mproc::Connection: fcntl(F_DUPFD_CLOEXEC)");
  Connection c;
  c.fd_ = copy;
  c.readable_ = readable != 0;
  c.writable_ = writable != 0;
  c.socket_ = kind == kTravelSocket;
  return c;
}

void Connection::check_open() const {
  if (closed()) throw_closed();
}

void Connection::check_readable() const {
  check_open();
  if (!readable_) throw ValueError("connection is write-only");
}

void Connection::check_writable() const {
  check_open();
  if (!writable_) throw ValueError("connection is read-only");
}

bool Connection::poll_at(const detail::Expiry& deadline) {
  check_readable();
  bool ready = false;
  if (auto ec = detail::wait_readable_interruptible(fd_, deadline, ready)) {
    if (ec == std::errc::interrupted) detail::throw_interrupted("mproc::Connection::poll");
    detail::throw_system_error(ec, "mproc::Connection::poll");
  }
  return ready;
}

void Connection::send_raw(const std::byte* a, std::size_t an, const std::byte* b, std::size_t bn) {
  iovec iov[2] = {{const_cast<std::byte*>(a), an}, {const_cast<std::byte*>(b), bn}};
  iovec* v = iov;
  int count = bn > 0 ? 2 : 1;
  const std::uint64_t total = std::uint64_t{an} + bn;
  std::uint64_t done = 0;
  std::optional<SigpipeGuard> guard;
  if (!socket_) guard.emplace();
  while (done < total) {
    std::size_t r = 0;
    if (int e = detail::write_some(fd_, socket_, v, count, r).value()) {
      if (e == EAGAIN) {
        e = await_fd(fd_, POLLOUT);
        if (e == 0) continue;
      }
      if (e == EPIPE && guard) guard->raised();
      if (done > 0) break_framing();  // part of a frame went out
      if (e == EPIPE || e == ECONNRESET) throw_broken_pipe();
      detail::throw_errno(e, "mproc::Connection: send");
    }
    auto k = r;
    done += k;
    while (k > 0) {
      if (k >= v->iov_len) {
        k -= v->iov_len;
        ++v;
        --count;
      } else {
        v->iov_base = static_cast<char*>(v->iov_base) + k;
        v->iov_len -= k;
        k = 0;
      }
    }
  }
}

std::uint64_t Connection::recv_frame_header() {
  // While interruption is armed, the wait for a message that has not begun is a ppoll that an
  // interruption request ends (one system call more per recv then; none when not armed). Once a
  // byte of the message is there the rest is read as before: cutting it would break the framing.
  if (detail::interrupts_armed()) {
    bool ready = false;
    if (auto ec = detail::wait_readable_interruptible(fd_, detail::Expiry(), ready)) {
      if (ec == std::errc::interrupted) detail::throw_interrupted("mproc::Connection::recv");
      detail::throw_system_error(ec, "mproc::Connection::recv: ppoll");
    }
  }
  std::byte h[8];
  std::size_t got = 0;
  auto read_exact = [&](std::size_t n, bool in_frame) {
    got = 0;
    while (got < n) {
      int err = 0;
      const std::size_t k = read_raw(fd_, h + got, n - got, err);
      if (err != 0) {
        if (in_frame || got > 0) break_framing();
        detail::throw_errno(err, "mproc::Connection: recv");
      }
      if (k == 0) throw_eof();
      got += k;
    }
  };
  read_exact(4, false);
  const auto first = static_cast<std::uint32_t>(load_be(h, 4));
  if (first <= 0x7fffffffu) return first;
  if (first != 0xffffffffu) {  // a negative length other than -1
    break_framing();
    throw std::system_error(std::make_error_code(std::errc::protocol_error),
                            "mproc::Connection: bad message header");
  }
  read_exact(8, true);
  return load_be(h, 8);
}

void Connection::recv_payload(std::byte* out, std::uint64_t n) {
  while (n > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n, SIZE_MAX));
    const std::size_t k = recv_some(out, want);
    out += k;
    n -= k;
  }
}

std::size_t Connection::recv_some(std::byte* out, std::size_t n) {
  int err = 0;
  const std::size_t k = read_raw(fd_, out, n, err);
  if (err != 0) {
    break_framing();  // inside a frame
    detail::throw_errno(err, "mproc::Connection: recv");
  }
  if (k == 0) throw_eof();
  return k;
}

bool Connection::discard(std::uint64_t n, std::byte* scratch, std::size_t scratch_size) noexcept {
  if (closed()) return false;
  while (n > 0) {
    int err = 0;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n, scratch_size));
    const std::size_t k = read_raw(fd_, scratch, want, err);
    if (err != 0) {
      break_framing();
      return false;
    }
    if (k == 0) return false;
    n -= k;
  }
  return true;
}

void Connection::send_bytes(std::span<const std::byte> buf) {
  check_writable();
  std::byte h[detail::kFrameHeaderMax];
  const std::size_t hn = detail::put_frame_header(h, buf.size());
  send_raw(h, hn, buf.data(), buf.size());
}

void Connection::send_bytes(std::span<const std::byte> buf, std::size_t offset) {
  check_writable();
  if (offset > buf.size()) throw ValueError("buffer length < offset");
  send_bytes(buf.subspan(offset));
}

void Connection::send_bytes(std::span<const std::byte> buf, std::size_t offset, std::size_t size) {
  check_writable();
  if (offset > buf.size()) throw ValueError("buffer length < offset");
  if (size > buf.size() - offset) throw ValueError("buffer length < offset + size");
  send_bytes(buf.subspan(offset, size));
}

void Connection::refuse_length() {
  break_framing();  // as Python: the rest of the message stays unread
  throw std::system_error(std::make_error_code(std::errc::message_size), "bad message length");
}

std::vector<std::byte> Connection::recv_payload_vector(std::uint64_t n) {
  // The header's length is the peer's claim: the vector follows what has arrived. It is read in
  // pieces of kFrameChunk, each sized (zero-filled, so resident) just before it is read; its
  // capacity runs at most kReserveAhead times ahead of the bytes received (address space, not
  // resident until written). A message of up to 8 pieces (2 MiB) is one allocation of its exact
  // size, as before; a larger one is reallocated a few times, copying at most 1/7 of it in all.
  constexpr std::uint64_t kReserveAhead = detail::kReserveAhead;
  std::vector<std::byte> out;
  std::uint64_t done = 0;
  try {
    while (done < n) {
      const std::uint64_t upto = done + std::min<std::uint64_t>(n - done, detail::kFrameChunk);
      if (upto > out.capacity()) {
        const std::uint64_t want = upto > n / kReserveAhead ? n : upto * kReserveAhead;
        if (want > out.max_size()) throw std::bad_alloc();
        out.reserve(static_cast<std::size_t>(want));
      }
      out.resize(static_cast<std::size_t>(upto));
      recv_payload(out.data() + done, upto - done);
      done = upto;
    }
  } catch (const std::bad_alloc&) {
    // Consume the rest of the message so the connection stays framed.
    out = {};
    std::byte scratch[16384];
    if (!discard(n - done, scratch, sizeof scratch) && !closed()) throw_eof();
    throw;
  }
  return out;
}

std::vector<std::byte> Connection::recv_bytes(std::size_t maxlength) {
  check_readable();
  const std::uint64_t n = recv_frame_header();
  if (n > maxlength) refuse_length();
  return recv_payload_vector(n);
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buf) {
  check_readable();
  const std::uint64_t n = recv_frame_header();
  if (n <= buf.size()) {
    recv_payload(buf.data(), n);
    return static_cast<std::size_t>(n);
  }
  throw BufferTooShort(recv_payload_vector(n), buf.size());
}

std::pair<Connection, Connection> Pipe(bool duplex) {
  int fds[2];
  if (auto ec = detail::socket_pair(SOCK_STREAM, fds))
    detail::throw_system_error(ec, "mproc::Pipe: socketpair");
  if (!duplex) {
    if (auto ec = detail::shutdown_socket(fds[1], SHUT_RD)) {  // also shuts fds[0] for writing
      detail::close_fd(fds[0]);
      detail::close_fd(fds[1]);
      detail::throw_system_error(ec, "mproc::Pipe: shutdown");
    }
  }
  Connection first;
  try {
    first = Connection(fds[0], true, duplex);
  } catch (...) {
    detail::close_fd(fds[0]);
    detail::close_fd(fds[1]);
    throw;
  }
  Connection second;
  try {
    second = Connection(fds[1], duplex, true);
  } catch (...) {
    detail::close_fd(fds[1]);  // fds[0] is closed by `first`
    throw;
  }
  return {std::move(first), std::move(second)};
}

// ---- wait ---------------------------------------------------------------------------------------

Waitable::Waitable(const Connection& conn) : fd_(conn.fileno()) {
  if (!conn.readable()) throw ValueError("connection is write-only");
}

Waitable::Waitable(const Process& process) : fd_(process.sentinel()) {}

Waitable::Waitable(const ParentProcess& process) noexcept : fd_(process.sentinel()) {}

Waitable::Waitable(const detail::QueueCore& queue) : queue_(&queue) {
  if (queue.closed()) throw Closed("mproc::wait: the queue handle is closed");
}

namespace {

// detail::poll_until_interruptible for mproc::wait; returns ppoll's count (0: timed out). Throws
// Interrupted when an interruption request ends the wait.
int poll_until(pollfd* fds, std::size_t n, const detail::Expiry& deadline) {
  int ready = 0;
  if (auto ec = detail::poll_until_interruptible(fds, n, deadline, ready)) {
    if (ec == std::errc::interrupted) detail::throw_interrupted("mproc::wait");
    detail::throw_system_error(ec, "mproc::wait");
  }
  return ready;
}

// The answer: the descriptors ppoll found ready, and the queues in `queue_ready` (a queue's
// entry in `fds` has fd -1, which ppoll ignores).
std::vector<std::size_t> collect(const pollfd* fds, std::size_t n,
                                 const std::vector<bool>* queue_ready) {
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < n; ++i) {
    if (fds[i].revents & POLLNVAL)
      throw std::system_error(
          std::make_error_code(std::errc::bad_file_descriptor),
          "mproc::wait: descriptor " + std::to_string(fds[i].fd) + " is not open");
    if (fds[i].revents != 0 || (queue_ready != nullptr && (*queue_ready)[i])) ready.push_back(i);
  }
  return ready;
}

// Threads that each sleep on one queue (QueueCore::wait_readable) and signal `efd` when theirs
// holds a message. stop() cancels and joins them; the destructor does so too (on exceptions).
class QueueWatchers {
 public:
  explicit QueueWatchers(int efd) : efd_(efd) {}
  QueueWatchers(const QueueWatchers&) = delete;
  QueueWatchers& operator=(const QueueWatchers&) = delete;
  ~QueueWatchers() { stop(); }

  // Starts a thread for `queue`, with every signal blocked (a signal meant for the program is
  // never handled on it).
  void watch(const detail::QueueCore* queue) {
    auto w = std::make_unique<Watch>();
    w->queue = queue;
    Watch* raw = w.get();
    watches_.push_back(std::move(w));
    detail::AllSignalsBlocked blocked;  // the new thread inherits the mask
    raw->thread = std::thread([raw, this] {
      // The waiting thread's poll sees interruption requests; the watchers wait for its cancel.
      detail::InterruptExempt exempt;
      if (raw->queue->wait_readable(detail::Expiry(), &cancel_)) {
        raw->saw_ready.store(true, std::memory_order_relaxed);
        detail::eventfd_post(efd_);
      }
      raw->done.store(true, std::memory_order_seq_cst);
    });
  }

  // Cancels every thread still waiting (moving its queue's futex, see wake_readable_waiters) and
  // joins them all.
  void stop() noexcept {
    cancel_.store(1, detail::order::seq_cst);
    for (auto& w : watches_) {
      if (w->thread.joinable() && !w->done.load(std::memory_order_seq_cst))
        w->queue->wake_readable_waiters();
    }
    for (auto& w : watches_) {
      if (w->thread.joinable()) w->thread.join();
    }
  }

  // Whether the thread for the i-th queue watched saw it ready.
  bool saw_ready(std::size_t i) const noexcept {
    return watches_[i]->saw_ready.load(std::memory_order_relaxed);
  }

 private:
  struct Watch {
    const detail::QueueCore* queue = nullptr;
    std::thread thread;
    std::atomic<bool> saw_ready{false};
    std::atomic<bool> done{false};
  };
  int efd_;
  detail::Atomic<std::uint32_t> cancel_{0};  // QueueCore::wait_readable's cancel flag
  std::vector<std::unique_ptr<Watch>> watches_;
};

class FdCloser {
 public:
  explicit FdCloser(int fd) noexcept : fd_(fd) {}
  ~FdCloser() { detail::close_fd(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

std::vector<std::size_t> Waitable::wait_at(std::span<const Waitable> objects,
                                           const detail::Expiry& deadline) {
  constexpr std::size_t kOnStack = 16;
  const std::size_t n = objects.size();
  pollfd on_stack[kOnStack + 1];
  std::unique_ptr<pollfd[]> on_heap;
  pollfd* fds = on_stack;
  if (n > kOnStack) {
    on_heap.reset(new pollfd[n + 1]);
    fds = on_heap.get();
  }
  std::size_t queues = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (objects[i].queue() != nullptr) {
      fds[i] = pollfd{-1, 0, 0};
      ++queues;
      continue;
    }
    if (objects[i].fd() < 0)
      throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                              "mproc::wait: invalid descriptor");
    fds[i] = pollfd{objects[i].fd(), POLLIN, 0};
  }
  if (queues == 0) {
    if (poll_until(fds, n, deadline) == 0) return {};
    return collect(fds, n, nullptr);
  }

  // Queues: a ready one answers at once (the descriptors are then polled without waiting), as
  // does a deadline that has passed.
  bool any_queue = false;
  std::vector<bool> queue_ready(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    if (objects[i].queue() != nullptr && objects[i].queue()->readable())
      queue_ready[i] = any_queue = true;
  }
  if (any_queue || detail::expired(deadline)) {
    if (queues < n) (void)poll_until(fds, n, detail::Clock::now());
    return collect(fds, n, &queue_ready);
  }

  // One queue and nothing else: sleep on it in this thread.
  if (n == 1) {
    if (objects[0].queue()->wait_readable(deadline, nullptr)) return {0};
    detail::throw_if_interrupted("mproc::wait");  // wait_readable's false may be a request
    return {};
  }

  // Otherwise one thread per queue sleeps on it and wakes this poll through an eventfd.
  int efd = -1;
  if (auto ec = detail::make_eventfd(efd)) detail::throw_system_error(ec, "mproc::wait: eventfd");
  FdCloser close_efd(efd);
  fds[n] = pollfd{efd, POLLIN, 0};
  std::vector<std::size_t> watched;  // the index of each watched queue
  {
    QueueWatchers watchers(efd);
    for (std::size_t i = 0; i < n; ++i) {
      if (objects[i].queue() == nullptr) continue;
      watched.push_back(i);
      watchers.watch(objects[i].queue());
    }
    (void)poll_until(fds, n + 1, deadline);
    watchers.stop();
    for (std::size_t k = 0; k < watched.size(); ++k) {
      const std::size_t i = watched[k];
      queue_ready[i] = watchers.saw_ready(k) || objects[i].queue()->readable();
    }
  }
  return collect(fds, n, &queue_ready);
}

}  // namespace mproc
