// mproc/codec/protobuf.hpp — Protocol Buffers messages travel through mproc in their own wire
// format: `Queue<MyMessage>`, `Connection::send/recv<MyMessage>`, Pool arguments and results.
//
//   #include <mproc/codec/protobuf.hpp>
//   #include "order.pb.h"
//   mproc::Queue<shop::Order> q;            // shop::Order is a generated message
//   q.put(order);                           // order.SerializeWithCachedSizes..., framed
//   shop::Order back = q.get();             // parsed from its frame
//
// Opt-in, as the other headers of mproc/codec/: including this header makes `mproc::codec<T>`
// cover every class T derived from `google::protobuf::MessageLite` (full and lite runtime
// messages alike), in every file that includes it; the core library does not depend on protobuf.
// Link the program with protobuf (CMake: `find_package(Protobuf)`, `protobuf::libprotobuf` or
// `protobuf::libprotobuf-lite`). Include it before the first use of a message type with mproc,
// in every file that sends or receives one. Python counterpart: pickle of a protobuf message,
// which pickles its SerializeToString() bytes.
//
// Wire format: the message's length as a uint64 (host byte order, as mproc's counts), then the
// message in protobuf's binary wire format (exactly `SerializeToString()`'s bytes). The length
// makes the message self-delimiting, so it nests in vectors, tuples, optionals and serialize()
// members like any other value; the frame is the same as a std::string holding those bytes.
// `encoded_size(m)` is exact: 8 + `m.ByteSizeLong()`. Messages of 2 GiB or more (protobuf's own
// limit) throw ValueError at encode.
//
// Encoding: `ByteSizeLong()` (which also caches the sizes of submessages), then, when the
// Writer's window has room for the whole frame (from_bytes, a Queue record smaller than a
// quarter of its ring, a small Connection message), the message is serialised straight into it:
// no copy. Otherwise it streams into the Writer's windows through a ZeroCopyOutputStream that
// hands protobuf each window in turn, and, while the Writer has to be refilled, an 8 KiB buffer
// that is written (and the window refilled) when protobuf asks for more room: the memory used is
// bounded whatever the message's size. A proto2 message with required fields not set throws
// ValueError naming the type and the fields, before anything is written (protobuf's
// SerializeToString fails on it too, and the receiver's parse would reject it).
//
// Decoding: the length is checked against the bytes that remain before anything is allocated.
// A frame whole in the Reader's window is parsed in place (ParsePartialFromArray, no copy). A frame
// that is streamed (a Queue message larger than a quarter of its ring, a large Connection message)
// is first gathered as the codec gathers a std::string (memory grows with the bytes received, at
// most 8 times them; mproc/codec.hpp), then parsed: one extra copy, for large messages only.
// Bytes that protobuf does not parse (invalid wire format, nesting beyond protobuf's recursion
// limit of 100) throw DecodeError naming the message type (`GetTypeName()`), as do a proto2
// message without its required fields (named, and checked by mproc so that protobuf does not log
// it) and a length of 2 GiB or more. protobuf's parser itself logs (GOOGLE_LOG(ERROR), to
// stderr) a proto3 string field that is not valid UTF-8 before it fails; a program that receives
// from untrusted peers can route or drop protobuf's log with google::protobuf::SetLogHandler.
// Protobuf's parser is written for untrusted input: it reads nothing beyond the frame, and a length
// inside the message is checked against the frame before it allocates (a string field reserves at
// most min(length, 50 MB), repeated fields grow with the elements read), so decoding is bounded by
// the frame.
//
// Rule order: this is a constrained partial specialisation of `mproc::codec<T>`; a user's full
// specialisation for a particular message type still wins over it.
//
// Thread safety: as the message's const methods (ByteSizeLong writes the cached sizes, which
// protobuf keeps in relaxed atomics). Encoding a message while another thread modifies it is a
// data race, as with SerializeToString.
#pragma once

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/message_lite.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <string>
#include <type_traits>

namespace mproc {

namespace detail::protobuf_codec {

inline constexpr std::size_t kLengthBytes = sizeof(std::uint64_t);
inline constexpr std::size_t kMaxMessage =
    static_cast<std::size_t>(std::numeric_limits<int>::max());

// Hands protobuf the Writer's windows, and a bounded buffer while the Writer must be refilled
// (a Writer refills only inside write()).
class WriterOutputStream final : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  explicit WriterOutputStream(Writer& w) noexcept : w_(&w) {}
  WriterOutputStream(const WriterOutputStream&) = delete;
  WriterOutputStream& operator=(const WriterOutputStream&) = delete;

  bool Next(void** data, int* size) override {
    // A buffer handed out before is full: write it, which refills the Writer. The refill may
    // throw (Full, Closed): that is kept and rethrown once protobuf has returned, since protobuf
    // may ask for more room again while it unwinds (its stream's destructor flushes).
    if (error_) return false;
    try {
      flush();
    } catch (...) {
      error_ = std::current_exception();
      return false;
    }
    const auto room = static_cast<std::size_t>(w_->end() - w_->cur());
    if (room > 0) {
      const int k = room > kMaxMessage ? static_cast<int>(kMaxMessage) : static_cast<int>(room);
      *data = w_->cur();
      *size = k;
      w_->set_window(w_->cur() + k, w_->end());
      in_buffer_ = false;
      count_ += k;
    } else {
      *data = buffer_;
      *size = static_cast<int>(sizeof(buffer_));
      in_buffer_ = true;
      buffered_ = sizeof(buffer_);
      count_ += static_cast<std::int64_t>(sizeof(buffer_));
    }
    return true;
  }
  void BackUp(int count) override {
    if (in_buffer_)
      buffered_ -= static_cast<std::size_t>(count);
    else
      w_->set_window(w_->cur() - count, w_->end());
    count_ -= count;
  }
  std::int64_t ByteCount() const override { return count_; }

  // Writes what the buffer still holds. Call after protobuf's CodedOutputStream is destroyed.
  void flush() {
    if (!in_buffer_) return;
    w_->write(buffer_, buffered_);
    in_buffer_ = false;  // only now: if the write threw, a BackUp still applies to the buffer
    buffered_ = 0;
  }
  // Rethrows what a refill threw while protobuf was writing.
  void rethrow_if_failed() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  Writer* w_;
  std::exception_ptr error_;
  bool in_buffer_ = false;
  std::size_t buffered_ = 0;
  std::int64_t count_ = 0;
  std::byte buffer_[8192];
};

inline std::size_t checked_size(const google::protobuf::MessageLite& m) {
  const std::size_t n = m.ByteSizeLong();
  if (n > kMaxMessage)
    throw ValueError("mproc: protobuf message " + m.GetTypeName() + " is " + std::to_string(n) +
                     " bytes, over protobuf's limit of 2 GiB");
  return n;
}

inline void encode(Writer& w, const google::protobuf::MessageLite& m) {
  if (!m.IsInitialized())
    throw ValueError("mproc: cannot encode protobuf message " + m.GetTypeName() +
                     ": required fields not set: " + m.InitializationErrorString());
  const std::size_t n = checked_size(m);  // also caches the submessages' sizes
  w.write_value(static_cast<std::uint64_t>(n));
  if (n <= static_cast<std::size_t>(w.end() - w.cur())) {
    auto* begin = reinterpret_cast<std::uint8_t*>(w.cur());
    std::uint8_t* end = m.SerializeWithCachedSizesToArray(begin);
    if (static_cast<std::size_t>(end - begin) != n)
      throw Error("mproc: protobuf message " + m.GetTypeName() +
                  " changed size while it was encoded (modified by another thread?)");
    w.set_window(w.cur() + n, w.end());
    return;
  }
  WriterOutputStream stream(w);
  {
    google::protobuf::io::CodedOutputStream out(&stream);
    m.SerializeWithCachedSizes(&out);
    stream.rethrow_if_failed();
    if (out.HadError() || static_cast<std::size_t>(out.ByteCount()) != n)
      throw Error("mproc: protobuf message " + m.GetTypeName() +
                  " changed size while it was encoded (modified by another thread?)");
  }  // the CodedOutputStream gives back what it did not use (BackUp)
  stream.flush();
}

[[noreturn]] inline void parse_failed(const google::protobuf::MessageLite& m, std::size_t n) {
  throw DecodeError("mproc: corrupt message: the " + std::to_string(n) +
                    " bytes do not parse as protobuf message " + m.GetTypeName() +
                    " (invalid wire format, or nested deeper than protobuf's recursion limit)");
}

// ParsePartial* and then the check of required fields, which ParseFrom* would make too but also
// log to stderr (a peer sending bad bytes should not fill the receiver's log).
inline void parse(google::protobuf::MessageLite& m, const void* data, std::size_t n) {
  if (n > kMaxMessage || !m.ParsePartialFromArray(data, static_cast<int>(n))) parse_failed(m, n);
  if (!m.IsInitialized())
    throw DecodeError("mproc: corrupt message: protobuf message " + m.GetTypeName() +
                      " lacks required fields: " + m.InitializationErrorString());
}

template <class T>
T decode(Reader& r) {
  T m;
  std::uint64_t n = 0;
  if (r.buffered() >= kLengthBytes) {
    std::memcpy(&n, r.cur(), kLengthBytes);
    if (n <= r.buffered() - kLengthBytes) {  // the whole frame has arrived: parse it in place
      r.skip(kLengthBytes);
      parse(m, r.cur(), static_cast<std::size_t>(n));
      r.skip(n);
      return m;
    }
  }
  n = r.read_value<std::uint64_t>();
  if (n > r.remaining())
    throw DecodeError("mproc: corrupt message: the length of protobuf message " + m.GetTypeName() +
                      " (" + std::to_string(n) + " bytes) exceeds the " +
                      std::to_string(r.remaining()) + " bytes that remain");
  if (n > kMaxMessage) parse_failed(m, n);
  std::string bytes;
  mproc::detail::read_block(r, bytes, static_cast<std::size_t>(n));  // grows as bytes arrive
  parse(m, bytes.data(), bytes.size());
  return m;
}

}  // namespace detail::protobuf_codec

// Every protobuf message type (generated classes derive from google::protobuf::MessageLite).
template <class T>
  requires(std::derived_from<T, google::protobuf::MessageLite> && !std::is_abstract_v<T>)
struct codec<T> {
  static constexpr std::size_t min_size = detail::protobuf_codec::kLengthBytes;

  static std::size_t size(const T& m) {
    return detail::protobuf_codec::kLengthBytes + detail::protobuf_codec::checked_size(m);
  }
  static void encode(Writer& w, const T& m) { detail::protobuf_codec::encode(w, m); }
  static T decode(Reader& r) { return detail::protobuf_codec::decode<T>(r); }
};

}  // namespace mproc
