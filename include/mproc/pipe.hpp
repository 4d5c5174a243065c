// mproc/pipe.hpp — message connections between processes: `Pipe`, `Connection`, and `wait` over
// connections, processes, queues and file descriptors.
//
// Mirrors multiprocessing.Pipe, multiprocessing.connection.Connection and
// multiprocessing.connection.wait.
//
//   auto [parent_end, child_end] = mproc::Pipe();
//   mproc::Process p([](mproc::Connection conn) { conn.send(conn.recv<int>() + 1); },
//                    std::move(child_end));          // the parent's copy is dropped by start()
//   p.start();
//   parent_end.send(41);
//   int answer = parent_end.recv<int>();              // 42
//   p.join();
//
// Transport: a connected pair of Unix stream sockets (`socketpair(AF_UNIX, SOCK_STREAM)`,
// close-on-exec). A message is one frame: a length header, then the payload. Typed messages are
// encoded with `mproc::codec<T>` (codec.hpp); `send_bytes`/`recv_bytes` carry raw bytes. A
// message may be of any size, from 0 bytes to many GiB: it streams through the socket while the
// receiver reads it. A stream socket (not SOCK_SEQPACKET) is used because a packet socket bounds
// the size of one message by the socket's buffer.
//
// Wire format: that of Python's Connection — a 4-byte big-endian signed length, or for messages
// over 2^31 - 1 bytes the length -1 followed by an 8-byte big-endian length. `send_bytes` and
// `recv_bytes` therefore interoperate with a Python process that holds the other end
// (`multiprocessing.connection.Connection(fd)`). Typed messages are mproc's encoding, not pickle.
//
// One-way pipes: `Pipe(false)` is a socket pair too, with the unused direction shut down, rather
// than pipe2(2) as in Python. Sockets can be written with MSG_NOSIGNAL, so a send to a peer that
// is gone fails with an error instead of raising SIGPIPE, without touching the process's signal
// dispositions. (A `Connection` made from another kind of descriptor, such as a pipe, blocks
// SIGPIPE in the sending thread for the duration of the write and discards the one it raised.)
//
// Failure model:
//   * A message is delivered whole or not at all. If the sender dies (even by SIGKILL) in the
//     middle of a message, the receiver gets EOFError, never the partial message.
//   * A peer that is gone is never waited for: recv raises EOFError once every copy of the other
//     end is closed (a process that exits closes its copies); send raises std::system_error
//     (`std::errc::broken_pipe`; Python raises BrokenPipeError).
//   * If a send fails after part of its message went out (the peer vanished mid-message, or a
//     typed value's encoder threw), or a receive stops inside a message for another reason than
//     EOF (a read error, a `maxlength` exceeded, a corrupt header), the stream can no longer be
//     framed: the connection counts as closed from then on (`closed()`, later calls throw Closed),
//     and the peer sees EOF, never a partial message. A socket is shut down at once (for every
//     process holding it); its descriptor is released by `close()` or the destructor.
//
// Untrusted peers: whatever bytes arrive, a receive ends in a value or in one of the documented
// errors (EOFError, DecodeError, std::system_error, Closed), never reads out of bounds, and holds
// memory in proportion to the bytes that actually arrived, not to the length a header announced:
// a 12-byte header announcing 4 GiB followed by nothing costs the receiver 256 KiB of written
// memory (and at most 2 MiB of reserved address space).
// A header whose 4-byte length is negative but not -1 is a corrupt stream
// (std::system_error(`std::errc::protocol_error`), the connection is closed). What a peer can
// still do is make a receive wait: a message whose first bytes have arrived is received whole for
// as long as its sender keeps the connection open, whatever the timeout (see Timeouts), and a
// message that does not decode is read to its end before DecodeError is thrown. A `maxlength`
// bounds both: a longer message is refused from its header, before any of its payload is read or
// allocated. A timeout on the whole message is not offered (a message cut by one could not be
// resumed); where a peer must not be able to hold a receiver, receive in a process of its own
// that can be killed.
//
// Timeouts: `poll`, typed `recv` and `wait` come in the forms of mproc/timeout.hpp, which states
// their semantics once: `x(Timeout)` waits at most a duration, `x_until(Deadline)` at most until a
// time point of any clock, and `recv<T>()` and `wait(objects)` wait as long as it takes (`poll()`
// without an argument is Python's poll(): it only checks). A zero timeout or a past deadline
// still reports what is ready without blocking. Here a timeout bounds the wait for a message to
// *begin*: a message whose first bytes have arrived is received whole, for as long as its sender
// sends it (a sender that dies ends that wait with EOFError).
//
// Differences from Python (see also each method):
//   * `Connection` is move-only and owns its descriptor: the destructor closes it (Python's
//     Connection closes in `__del__`). A copy could only be a second owner of one descriptor;
//     move it into a `Process` target instead (`start()` then drops the parent's copy).
//   * `recv<T>()` names the type it expects; bytes that do not decode as `T` throw DecodeError and
//     leave the connection usable (Python unpickles whatever came).
//   * Misuse of a one-way end (send on the receive end, receive on the send end) throws
//     ValueError; Python raises OSError("connection is read-only" / "connection is write-only").
//   * `wait` takes queues themselves (Python's wait takes a Queue's pipe end, `q._reader`):
//     mproc's Queue lives in shared memory and has no descriptor, so `wait` sleeps on its futex
//     (see `wait` below).
//
// Fork: a Connection that exists before `fork` (or `Process::start`) is usable in the child, which
// inherits the descriptor. Each process holds its own copy of each end: the peer sees EOF only
// when every process has closed the end (or exited). So, as in Python, close the end a process
// does not use right after the fork — in the child, the parent's end; in the parent, the child's
// end (a Connection moved into a `Process` is closed in the parent by `start()`). The descriptors
// are close-on-exec: a program started with exec does not inherit them.
//
// Travel (spawn, forkserver): a Connection passed as an argument of a Process or of a Pool task
// reaches a fresh program image with its descriptor beside the bytes (<mproc/detail/travel.hpp>).
// As in Python, the sender keeps its end: encoding adds a duplicate of the descriptor, and the
// sender's Connection stays open (a Process that owns the argument drops its copy after start(),
// as it does for fork). Wire form, 8 bytes: u32 descriptor index, u8 readable, u8 writable, u8
// kind (1: a socket, 2: a pipe or character device), u8 0. The receiver checks the bytes (at
// least one direction, flags 0/1, a known kind) and that the descriptor is of the kind the
// sender had (a memfd, or a socket where a pipe was sent, is refused): DecodeError
// "mproc::Connection: ..." otherwise. Encoding outside a Process's or Pool task's arguments
// (e.g. sending a Connection over another Connection) throws ValueError; a closed or broken
// Connection throws Closed ("handle is closed", Python's OSError); a Connection over a regular
// file cannot travel (ValueError). `encoded_size` works anywhere.
//
// Thread safety: a Connection is not safe for concurrent use, with one exception: on a duplex
// connection one thread may send while another receives. Two threads sending (or two receiving) at
// once interleave the bytes of their messages; `close()` and destruction must not race with other
// calls.
// Process safety: the same rule across processes — per direction, one process at a time sends
// and one receives (use a Lock around `send`, or a Queue, for many producers or consumers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/detail/atomic.hpp>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/timeout.hpp>
#include <new>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace mproc {

class Connection;
class Process;
class ParentProcess;

// Thrown by `Connection::recv_bytes_into` when the message is longer than the buffer. The message
// has been received (the connection stays usable) and is in `message()`.
// Mirrors multiprocessing.BufferTooShort (a ProcessError; Python puts the message in args[0]).
class MPROC_API BufferTooShort : public ProcessError {
 public:
  BufferTooShort(std::vector<std::byte> message, std::size_t buffer_size);
  ~BufferTooShort() override;
  // The whole message that did not fit.
  [[nodiscard]] const std::vector<std::byte>& message() const noexcept { return *message_; }

 private:
  detail::Ref<const std::vector<std::byte>> message_;  // shared: exceptions copy nothrow
};

namespace detail {

// Frame header: Python's `!i` length, or -1 then a `!Q` length beyond 2^31 - 1 bytes.
inline constexpr std::size_t kFrameHeaderMax = 12;
// Typed messages up to this size are encoded into (and decoded from) a buffer on the stack and
// sent with one system call; larger ones stream through a heap buffer of kFrameChunk bytes.
inline constexpr std::size_t kInlineMessage = 4096;
inline constexpr std::size_t kFrameChunk = 256 * 1024;

// Writes the header of a `size`-byte payload at `out`; returns its length (4 or 12).
inline std::size_t put_frame_header(std::byte* out, std::uint64_t size) noexcept {
  const bool small = size <= 0x7fffffffu;
  const std::uint64_t v = small ? size : 0xffffffffu;
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::byte>(v >> (24 - 8 * i));
  if (small) return 4;
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<std::byte>(size >> (56 - 8 * i));
  return 12;
}

[[noreturn]] MPROC_API void throw_size_mismatch(std::uint64_t announced, std::uint64_t written);
[[noreturn]] MPROC_API void throw_trailing_bytes(std::size_t left);
// DecodeError for a message whose decoded value did not fit in memory (std::bad_alloc).
[[noreturn]] MPROC_API void throw_too_large(std::uint64_t payload);

// Sends one typed message larger than kInlineMessage: the encoder writes into a bounded buffer
// that is flushed to the socket whenever it fills.
class MPROC_API FrameSender {
 public:
  FrameSender(Connection& conn, std::uint64_t payload);
  FrameSender(const FrameSender&) = delete;
  FrameSender& operator=(const FrameSender&) = delete;
  ~FrameSender();
  Writer& writer() noexcept { return writer_; }
  // Sends what remains; throws (and closes the connection if bytes went out) when the encoder
  // wrote another number of bytes than announced.
  void finish();
  // The encoder threw: closes the connection if part of the frame was sent.
  void abort() noexcept;

 private:
  static void refill(Writer& w, void* self);
  Connection& conn_;
  detail::Box<std::byte[]> buf_;
  std::size_t cap_ = 0;
  std::uint64_t payload_ = 0;
  std::uint64_t unplaced_ = 0;  // frame bytes beyond the current window
  std::uint64_t sent_ = 0;      // frame bytes sent
  Writer writer_;
};

// Receives one typed message larger than kInlineMessage: the decoder reads from a bounded buffer
// that is refilled from the socket, and large blocks (strings, vectors of bitwise elements)
// straight from the socket into the value being decoded.
class MPROC_API FrameReceiver {
 public:
  FrameReceiver(Connection& conn, std::uint64_t payload);
  FrameReceiver(const FrameReceiver&) = delete;
  FrameReceiver& operator=(const FrameReceiver&) = delete;
  ~FrameReceiver();
  Reader& reader() noexcept { return reader_; }
  // Throws DecodeError if the decoder left bytes of the message unread.
  void finish() const;
  // Decoding threw: reads and discards the rest of the frame so the next message can be received.
  // Throws EOFError if the peer went away before the end of the frame (the message was cut, which
  // says more than why its beginning did not decode); closes the connection if reading fails for
  // another reason, and then returns (the caller rethrows its error).
  void abandon();

 private:
  static void refill(Reader& r, void* self);
  static std::size_t direct(std::byte* out, std::size_t n, void* self);
  Connection& conn_;
  detail::Box<std::byte[]> buf_;
  std::size_t cap_ = 0;
  std::uint64_t unread_ = 0;  // payload bytes still in the socket
  Reader reader_;
};

}  // namespace detail

// One end of a connection: sends and receives whole messages (typed values or bytes).
//
// Made by `Pipe()`, or from a descriptor (`Connection(fd)`). Move-only; owns its descriptor and
// closes it on destruction. A moved-from or default-constructed Connection is closed.
//
// Errors, once for all (each method lists only what it adds):
//   * Closed("handle is closed") after `close()`, on a moved-from or default-constructed
//     Connection, or after the connection was closed by an error that broke its framing.
//   * ValueError("connection is write-only") for a receiving call on a send-only end,
//     ValueError("connection is read-only") for a sending call on a receive-only end.
//   * std::system_error for failures of the operating system.
//
// Thread safety and process safety: see the header comment (one sender and one receiver per
// direction at a time).
// Mirrors multiprocessing.connection.Connection.
class MPROC_API Connection {
 public:
  // `recv_bytes` without a limit.
  static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

  // A closed Connection (for a member assigned later).
  Connection() noexcept = default;
  // Takes ownership of `fd`, a connected stream socket or a pipe end (or anything read(2) and
  // write(2) work on), to exchange messages in the format of the header comment with whatever is
  // at the other end (another mproc Connection, or Python's). Throws ValueError("invalid handle")
  // for a negative `fd`, ValueError("at least one of `readable` and `writable` must be true") if
  // both are false, std::system_error if `fd` is not an open descriptor; on a throw the caller
  // keeps `fd`. Mirrors Connection(handle, readable, writable).
  explicit Connection(int fd, bool readable = true, bool writable = true);
  Connection(Connection&& other) noexcept;
  // Closes the current descriptor, then takes over `other`'s.
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Closes the descriptor.
  ~Connection();

  // Sends `value` as one message, encoded by `mproc::codec<T>`; `recv<T>()` at the other end gets
  // it back. Blocks while the socket's buffer is full (until the peer has read enough of a large
  // message). Small messages (up to 4 KiB encoded) are encoded on the stack and written with one
  // system call; larger ones stream through a 256 KiB buffer, so no copy of the whole encoding is
  // made. Throws std::system_error (`std::errc::broken_pipe`) if the peer has closed its end.
  // Mirrors Connection.send(obj).
  template <class T>
  void send(const T& value) {
    static_assert(detail::check_encodable<std::remove_cv_t<T>>(),
                  "mproc::Connection::send<T>: T must be encodable by mproc::codec<T> "
                  "(see codec.hpp)");
    check_writable();
    const std::size_t n = mproc::encoded_size(value);
    if (n <= detail::kInlineMessage) {
      std::byte buf[detail::kFrameHeaderMax + detail::kInlineMessage];
      const std::size_t h = detail::put_frame_header(buf, n);
      Writer w(buf + h, buf + h + n);
      mproc::encode(w, value);
      if (w.cur() != w.end())
        detail::throw_size_mismatch(n, static_cast<std::uint64_t>(w.cur() - (buf + h)));
      send_raw(buf, h + n, nullptr, 0);
      return;
    }
    detail::FrameSender frame(*this, n);
    try {
      mproc::encode(frame.writer(), value);
    } catch (...) {
      frame.abort();
      throw;
    }
    frame.finish();
  }

  // Receives one message and decodes it as a `T`. Blocks until a whole message has arrived.
  // Throws:
  //   * EOFError if the peer closed its end (or died) before or during the message (also when what
  //     arrived of a cut message did not decode);
  //   * DecodeError if the message does not decode as a `T` (sent as another type, or corrupt),
  //     including when bytes of it are left over, and when the decoded value does not fit in this
  //     process's memory (std::bad_alloc while decoding) — the message is consumed (its rest is
  //     read and discarded, for as long as the peer sends it) and the connection stays usable;
  //   * std::system_error(`std::errc::message_size`, "bad message length") if the message is
  //     longer than `maxlength` bytes (its encoded size): nothing of it is read or allocated, and
  //     the connection is closed, as for `recv_bytes(maxlength)` (its framing is lost; the peer
  //     sees EOF).
  // Memory follows the bytes that arrive, never the length the peer announced: a peer that
  // announces a 4 GiB string and sends 1 MiB of it makes this call write about 1.3 MiB and reserve
  // at most 10 MiB of address space (codec.hpp). Against an untrusted peer, pass a `maxlength`
  // too: it also bounds how long a message that does not decode keeps this call reading.
  // Mirrors Connection.recv() (Python has no maxlength for recv).
  template <class T>
  [[nodiscard]] T recv(std::size_t maxlength = kUnlimited) {
    static_assert(detail::check_encodable<std::remove_cv_t<T>>(),
                  "mproc::Connection::recv<T>: T must be encodable by mproc::codec<T> "
                  "(see codec.hpp)");
    check_readable();
    const std::uint64_t n = recv_frame_header();
    if (n > maxlength) refuse_length();
    if (n <= detail::kInlineMessage) {
      std::byte buf[detail::kInlineMessage];
      recv_payload(buf, n);
      Reader r(buf, static_cast<std::size_t>(n));
      try {
        T value = mproc::decode<T>(r);
        if (r.remaining() != 0) detail::throw_trailing_bytes(r.remaining());
        return value;
      } catch (const std::bad_alloc&) {
        detail::throw_too_large(n);
      }
    }
    detail::FrameReceiver frame(*this, n);
    try {
      T value = mproc::decode<T>(frame.reader());
      frame.finish();
      return value;
    } catch (const std::bad_alloc&) {
      frame.abandon();
      detail::throw_too_large(n);
    } catch (...) {
      frame.abandon();
      throw;
    }
  }
  // As recv<T>(maxlength), waiting at most a duration / until a time point (timeout.hpp) for a
  // message to begin; empty if none did (a message that began is received whole, however long its
  // sender takes). Python spells this `if conn.poll(timeout): conn.recv()`.
  template <class T>
  [[nodiscard]] std::optional<T> recv(Timeout timeout, std::size_t maxlength = kUnlimited) {
    return recv_at<T>(timeout.when(), maxlength);
  }
  template <class T>
  [[nodiscard]] std::optional<T> recv_until(Deadline deadline, std::size_t maxlength = kUnlimited) {
    return recv_at<T>(deadline.when(), maxlength);
  }

  // Sends the bytes of `buf` as one message (header and payload in one system call). Blocks while
  // the socket's buffer is full. Throws std::system_error (`std::errc::broken_pipe`) if the peer
  // has closed its end. Mirrors Connection.send_bytes(buf).
  //   conn.send_bytes(std::as_bytes(std::span(vec)));
  void send_bytes(std::span<const std::byte> buf);
  // Sends `buf[offset:]`, or `buf[offset:offset + size]`, as one message. Throws
  // ValueError("buffer length < offset") or ValueError("buffer length < offset + size") when the
  // range is not inside `buf`. Mirrors Connection.send_bytes(buf, offset, size).
  void send_bytes(std::span<const std::byte> buf, std::size_t offset);
  void send_bytes(std::span<const std::byte> buf, std::size_t offset, std::size_t size);

  // Receives one message as bytes. Blocks until a whole message has arrived. Throws EOFError if
  // the peer closed its end (or died) before or during the message. A message longer than
  // `maxlength` is not read: the connection is closed (its framing is lost; see the header
  // comment) and std::system_error(`std::errc::message_size`, "bad message length") is thrown, as
  // Python's OSError. The vector follows the payload as it arrives (it is written 256 KiB at a
  // time, and its capacity runs at most 8 times ahead of the bytes received; a message of up to
  // 2 MiB is one allocation of its exact size), so a peer that announces more than it sends costs
  // what it sent, not what it announced. std::bad_alloc (Python's MemoryError) if the message does
  // not fit in memory: the message is consumed and the connection stays usable.
  // Mirrors Connection.recv_bytes(maxlength).
  [[nodiscard]] std::vector<std::byte> recv_bytes(std::size_t maxlength = kUnlimited);

  // Receives one message into `buf` and returns its length; the payload goes straight into `buf`.
  // Blocks until a whole message has arrived. If the message is longer than `buf`, it is received
  // whole into a new vector (allocated as recv_bytes allocates) and BufferTooShort carrying it is
  // thrown; the connection stays usable. Throws EOFError and std::bad_alloc as recv_bytes.
  // Python's `offset` argument is `buf.subspan(offset)` here.
  // Mirrors Connection.recv_bytes_into(buf, offset).
  std::size_t recv_bytes_into(std::span<std::byte> buf);

  // Whether a message (or EOF: the peer closed its end, so that recv would throw EOFError) can be
  // read now; does not block. Readable means at least the first bytes of a message have arrived.
  // Mirrors Connection.poll() (timeout 0).
  [[nodiscard]] bool poll() { return poll_at(detail::Clock::now()); }
  // As poll(), waiting at most a duration / until a time point (timeout.hpp). Python's
  // poll(None), without limit, is `poll(std::chrono::seconds::max())` (a huge timeout means
  // "never"). Mirrors Connection.poll(timeout).
  [[nodiscard]] bool poll(Timeout timeout) { return poll_at(timeout.when()); }
  [[nodiscard]] bool poll_until(Deadline deadline) { return poll_at(deadline.when()); }

  // Closes the descriptor; later calls throw Closed. Closing again does nothing. Never blocks and
  // never throws. The peer sees EOF once every process has closed this end.
  // Mirrors Connection.close().
  void close() noexcept;
  // True after `close()`, after an error that broke the connection's framing (see the header
  // comment), and for a moved-from or default-constructed Connection. Mirrors Connection.closed.
  [[nodiscard]] bool closed() const noexcept {
    return fd_ < 0 || broken_.load(detail::order::relaxed);
  }
  // Whether this end receives / sends (both for a duplex end); unchanged by `close()`.
  // Mirror Connection.readable and Connection.writable.
  [[nodiscard]] bool readable() const noexcept { return readable_; }
  [[nodiscard]] bool writable() const noexcept { return writable_; }
  // The descriptor, for poll/epoll/select (it polls readable when a message or EOF is there).
  // Still owned by the Connection: do not close it, and do not read or write it directly.
  // Setting O_NONBLOCK on it changes nothing: calls still block for whole messages.
  // Mirrors Connection.fileno().
  [[nodiscard]] int fileno() const;

 private:
  friend class detail::FrameSender;
  friend class detail::FrameReceiver;
  friend struct codec<Connection>;

  // Travel (see the header comment; src/pipe.cpp).
  static constexpr std::size_t kTravelSize = 8;
  void encode_travel(Writer& w) const;
  static Connection decode_travel(Reader& r);

  // The implementations of the timed forms (nullopt: no limit).
  bool poll_at(const detail::Expiry& deadline);
  template <class T>
  std::optional<T> recv_at(const detail::Expiry& deadline, std::size_t maxlength) {
    if (!poll_at(deadline)) return std::nullopt;
    return recv<T>(maxlength);
  }

  // The stream can no longer be framed (part of a frame was sent or skipped): from now on the
  // connection counts as closed, and the peer sees EOF.
  void break_framing() noexcept;
  void check_open() const;
  void check_readable() const;
  void check_writable() const;
  // Writes [a, a + an) then [b, b + bn), whole. Closes the connection if it fails after part of
  // the bytes went out.
  void send_raw(const std::byte* a, std::size_t an, const std::byte* b, std::size_t bn);
  // Reads a frame header; returns the payload's length.
  std::uint64_t recv_frame_header();
  // A message longer than the caller's maxlength: closes the connection (the rest of the frame is
  // never read) and throws std::system_error(message_size).
  [[noreturn]] void refuse_length();
  // Reads exactly `n` payload bytes into `out`.
  void recv_payload(std::byte* out, std::uint64_t n);
  // Reads an `n`-byte payload into a new vector that grows as the bytes arrive.
  std::vector<std::byte> recv_payload_vector(std::uint64_t n);
  // Reads between 1 and `n` payload bytes into `out`; returns how many.
  std::size_t recv_some(std::byte* out, std::size_t n);
  // Reads and discards `n` bytes through `scratch`; false if EOF or an error came first (an error
  // closes the connection).
  bool discard(std::uint64_t n, std::byte* scratch, std::size_t scratch_size) noexcept;

  int fd_ = -1;
  bool readable_ = false;
  bool writable_ = false;
  bool socket_ = false;  // sends use MSG_NOSIGNAL; otherwise SIGPIPE is blocked around writes
  detail::Atomic<bool> broken_{false};  // set by break_framing(), possibly from another thread
};

// The codec of a Connection, used only when it travels to another process as an argument of a
// Process or of a Pool task (see "Travel" in the header comment).
template <>
struct codec<Connection> {
  static constexpr std::size_t min_size = Connection::kTravelSize;
  static std::size_t size(const Connection&) noexcept { return Connection::kTravelSize; }
  static void encode(Writer& w, const Connection& c) { c.encode_travel(w); }
  static Connection decode(Reader& r) { return Connection::decode_travel(r); }
};

// Returns a connected pair of Connections. Duplex (default): both ends send and receive.
// One-way (`duplex == false`): the first end only receives and the second only sends.
// Throws std::system_error if the sockets cannot be created (e.g. EMFILE).
// Mirrors multiprocessing.Pipe(duplex).
[[nodiscard]] MPROC_API std::pair<Connection, Connection> Pipe(bool duplex = true);

template <class T>
class Queue;
template <class T>
class SimpleQueue;
namespace detail {
class QueueCore;
struct WaitOn;
}  // namespace detail

// Something `wait` can wait for: a Connection (ready when a message or EOF can be read), a Process
// or ParentProcess (ready when it has exited), a Queue, JoinableQueue or SimpleQueue (ready when it
// holds a complete message), or any file descriptor (ready when it polls readable, or hung up, or
// in error: a pidfd, a socket, a pipe's read end, an eventfd). Holds only the descriptor, or a
// pointer to the queue handle: the object must stay open (and alive) while `wait` runs.
class MPROC_API Waitable {
 public:
  // Throws Closed if `conn` is closed, ValueError("connection is write-only") for a send-only end.
  Waitable(const Connection& conn);  // NOLINT(google-explicit-constructor): implicit on purpose
  // The process's sentinel; throws ValueError if it is closed or was never started.
  Waitable(const Process& process);                 // NOLINT(google-explicit-constructor)
  Waitable(const ParentProcess& process) noexcept;  // NOLINT(google-explicit-constructor)
  Waitable(int fd) noexcept : fd_(fd) {}            // NOLINT(google-explicit-constructor)
  // A queue (JoinableQueue too); throws Closed if this handle of it is closed.
  template <class T>
  Waitable(const Queue<T>& queue)  // NOLINT(google-explicit-constructor)
      : Waitable(queue.core_) {}
  template <class T>
  Waitable(const SimpleQueue<T>& queue)  // NOLINT(google-explicit-constructor)
      : Waitable(queue.q_) {}
  // The descriptor; -1 for a queue.
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  friend struct detail::WaitOn;
  explicit Waitable(const detail::QueueCore& queue);
  // The queue; nullptr for a descriptor.
  [[nodiscard]] const detail::QueueCore* queue() const noexcept { return queue_; }
  // The one implementation of every `wait` form (src/pipe.cpp); nullopt: no limit.
  static std::vector<std::size_t> wait_at(std::span<const Waitable> objects,
                                          const detail::Expiry& deadline);

  int fd_ = -1;
  const detail::QueueCore* queue_ = nullptr;
};

namespace detail {
// (mproc::Waitable qualified: inside mproc::detail the plain name could find a detail class.)
template <class R>
concept WaitableRange = std::ranges::input_range<R> &&
                        std::convertible_to<std::ranges::range_reference_t<R>, mproc::Waitable>;

// Hands any range of waitables to Waitable::wait_at as the span it takes (as it is when it is
// already contiguous Waitables, else converted into a vector).
struct WaitOn {
  template <class R>
  static std::vector<std::size_t> range(R& objects, const Expiry& deadline) {
    using V = std::remove_cvref_t<std::ranges::range_reference_t<R>>;
    if constexpr (std::ranges::contiguous_range<R> && std::is_same_v<V, mproc::Waitable>) {
      return mproc::Waitable::wait_at(
          std::span<const mproc::Waitable>(std::ranges::data(objects), std::ranges::size(objects)),
          deadline);
    } else {
      std::vector<mproc::Waitable> all;
      if constexpr (std::ranges::sized_range<R>) all.reserve(std::ranges::size(objects));
      for (auto&& o : objects) all.emplace_back(o);
      return mproc::Waitable::wait_at(std::span<const mproc::Waitable>(all), deadline);
    }
  }
};
}  // namespace detail

// Waits until at least one of `objects` is ready, or the deadline passes; returns the indices of
// the ready ones in increasing order (empty if none became ready in time). `objects` is a range
// of Waitable or of anything convertible to it (Connections, Processes, Queues, fds), or a braced
// list:
//
//   std::vector<mproc::Connection> workers = ...;
//   for (std::size_t i : mproc::wait(workers, 1s)) handle(workers[i].recv<Result>());
//   auto ready = mproc::wait({conn, process, some_fd});   // no timeout
//
// Queues: a queue is ready when it holds a complete message, so that a `get_nowait`/`try_get`
// would likely succeed. As with Python's readiness, another consumer (a thread or process taking
// from the same queue, or a waiter woken by the same message) may take it first: take with
// `try_get` and wait again when it returns nothing (a SimpleQueue, which has no `try_get`, takes
// with `get()`, which then blocks until the next message). `wait` itself takes nothing.
//
// The supervised pipeline: a stage that blocks on its input *and* on the process that feeds it
// notices that process's death at once, without polling, instead of waiting forever for an item
// (or a sentinel) that will never come:
//
//   for (;;) {                      // in: Queue<std::optional<Item>>, upstream: Process
//     auto ready = mproc::wait({in, upstream});
//     if (auto item = in.try_get()) {  // what upstream sent comes first
//       if (!*item) return 0;          // the end marker: upstream finished
//       out.put(work(**item));
//     } else if (!ready.empty() && ready.back() == 1) {
//       return kUpstreamLost;          // upstream ended without the end marker
//     }
//   }
//
// A process handle waited for in a child must exist before the child starts (the child inherits
// its sentinel): start upstream stages first. Only the parent that started a process reads its
// exit code; it can wait on all the stages the same way (examples/supervised_pipeline.cpp).
//
// Cost: a queue that is ready when `wait` looks costs no thread and no futex call (the
// descriptors, if any, are then polled without waiting), nor does a zero timeout. Otherwise
// `wait` sleeps on the queue's futex, in the calling thread when the queue is the only object,
// else in one helper thread per queue that wakes the poll(2) over the descriptors through an
// eventfd; the helpers are stopped and joined before `wait` returns. Puts and gets pay nothing
// while nobody waits on the queue this way; a message published while someone waits costs its
// producer one futex wake (shared by every waiter). See docs/design.md, "Queues".
//
// Timeouts: `wait(objects)` waits without limit (with an empty list it then never returns, as
// Python's wait([])); `wait(objects, Timeout)` and `wait_until(objects, Deadline)` as in
// timeout.hpp, returning an empty vector when the time passed first. Throws
// std::system_error(`std::errc::bad_file_descriptor`) if a descriptor is not open,
// std::system_error if a helper thread or its eventfd cannot be made, and what the Waitable
// conversions throw.
// Mirrors multiprocessing.connection.wait(object_list, timeout), which returns the objects (and
// waits for Python's Queue through its pipe's reader, `q._reader`).
//
// `objects` may also be a braced list of objects of different kinds, `wait({conn, process, q})`:
// the range parameter then defaults to std::initializer_list<Waitable>.
template <detail::WaitableRange R = std::initializer_list<Waitable>>
[[nodiscard]] std::vector<std::size_t> wait(R&& objects) {
  return detail::WaitOn::range(objects, detail::Expiry());
}
template <detail::WaitableRange R = std::initializer_list<Waitable>>
[[nodiscard]] std::vector<std::size_t> wait(R&& objects, Timeout timeout) {
  return detail::WaitOn::range(objects, timeout.when());
}
template <detail::WaitableRange R = std::initializer_list<Waitable>>
[[nodiscard]] std::vector<std::size_t> wait_until(R&& objects, Deadline deadline) {
  return detail::WaitOn::range(objects, deadline.when());
}

}  // namespace mproc
