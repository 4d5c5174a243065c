// mproc/byte_stream.hpp — `Writer` and `Reader`: the byte sink and source every codec uses.
//
// A `Writer` fills a window of memory [cur, end) — a slot in a queue's ring,
// a socket buffer, a std::vector — and, when the window is full, asks its owner for the next one
// (`refill`), so a value far larger than the window streams through it: each byte is copied once.
// A `Reader` is the mirror image. Both keep the fast path (the bytes fit in the window) inline and
// branch-light; the slow path is a plain function pointer.
//
// Bounds: a Reader knows how many bytes the whole message still holds (`remaining()`), and every
// read checks against it first: reading past the end throws DecodeError, never reads out of bounds.
// Codecs use `remaining()` to reject a corrupt length before allocating for it.
//
// Trust: `remaining()` of a streamed message is the total its sender announced, which an untrusted
// sender can make far larger than what it will ever send. `buffered()` is what has actually
// arrived and not yet been read (the current window). Codecs size their allocations by
// `buffered()` and grow them as bytes arrive (codec.hpp), so memory follows the bytes received,
// never the announced total.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mproc/errors.hpp>
#include <type_traits>

namespace mproc {

class Writer {
 public:
  // Called when the window [cur, end) is full and more bytes must be written: the owner commits
  // what was written and installs the next window (set_window). It may block (a full ring) and may
  // throw (e.g. Full on timeout, Closed); the writer's owner then rolls the message back.
  using RefillFn = void (*)(Writer& w, void* ctx);

  Writer() = default;
  Writer(std::byte* begin, std::byte* end, RefillFn refill = nullptr, void* ctx = nullptr) noexcept
      : cur_(begin), end_(end), refill_(refill), ctx_(ctx) {}

  void write(const void* data, std::size_t n) {
    if (n <= static_cast<std::size_t>(end_ - cur_)) [[likely]] {
      if (n) std::memcpy(cur_, data, n);
      cur_ += n;
      return;
    }
    write_slow(static_cast<const std::byte*>(data), n);
  }

  template <class T>
  void write_value(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    write(&v, sizeof(T));
  }

  std::byte* cur() const noexcept { return cur_; }
  std::byte* end() const noexcept { return end_; }
  void set_window(std::byte* begin, std::byte* end) noexcept {
    cur_ = begin;
    end_ = end;
  }

 private:
  void write_slow(const std::byte* data, std::size_t n) {
    while (n > 0) {
      std::size_t room = static_cast<std::size_t>(end_ - cur_);
      if (room == 0) {
        if (!refill_) throw Error("mproc: encoded value larger than its buffer");
        refill_(*this, ctx_);
        continue;
      }
      std::size_t k = n < room ? n : room;
      std::memcpy(cur_, data, k);
      cur_ += k;
      data += k;
      n -= k;
    }
  }

  std::byte* cur_ = nullptr;
  std::byte* end_ = nullptr;
  RefillFn refill_ = nullptr;
  void* ctx_ = nullptr;
};

class Reader {
 public:
  // Called when the window [cur, end) is exhausted but the message has more bytes: the owner
  // releases what was read and installs the next window. It may block and may throw.
  using RefillFn = void (*)(Reader& r, void* ctx);
  // Optional (`set_direct`): places between 1 and `n` of the message's next bytes straight into
  // `out` and returns how many, bypassing the window (a socket read into the string being
  // decoded, one copy instead of two). Called only while the window is empty, for a read of at
  // least kDirectMin bytes. It may block and may throw, as the refill.
  using DirectFn = std::size_t (*)(std::byte* out, std::size_t n, void* ctx);
  static constexpr std::size_t kDirectMin = 4096;

  Reader() = default;
  // `total` is the number of bytes of the whole message from `begin` on (>= end - begin).
  Reader(const std::byte* begin, const std::byte* end, std::size_t total, RefillFn refill = nullptr,
         void* ctx = nullptr) noexcept
      : cur_(begin), end_(end), remaining_(total), refill_(refill), ctx_(ctx) {}
  Reader(const std::byte* begin, std::size_t n) noexcept : Reader(begin, begin + n, n) {}

  void read(void* out, std::size_t n) {
    if (n > remaining_) [[unlikely]]
      throw DecodeError("mproc: truncated message: a value needs more bytes than remain");
    if (n <= static_cast<std::size_t>(end_ - cur_)) [[likely]] {
      if (n) std::memcpy(out, cur_, n);
      cur_ += n;
      remaining_ -= n;
      return;
    }
    read_slow(static_cast<std::byte*>(out), n);
  }

  template <class T>
  T read_value() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    read(&v, sizeof(T));
    return v;
  }

  // Discards the next `n` bytes of the message (across windows, refilling as `read` does), without
  // allocating. Throws DecodeError when fewer than `n` remain. `skip(remaining())` drains the
  // rest of a message after a failed decode, so its owner can consume it whole.
  void skip(std::size_t n) {
    if (n > remaining_) [[unlikely]]
      throw DecodeError("mproc: truncated message: skipping more bytes than remain");
    while (n > 0) {
      std::size_t have = static_cast<std::size_t>(end_ - cur_);
      if (have == 0) {
        if (!refill_) throw DecodeError("mproc: truncated message");
        refill_(*this, ctx_);
        continue;
      }
      std::size_t k = n < have ? n : have;
      cur_ += k;
      n -= k;
      remaining_ -= k;
    }
  }

  // Bytes of the message not yet read (across windows). For a streamed message this is what its
  // sender announced: a bound for checking counts, not a size to allocate (see `buffered()`).
  std::size_t remaining() const noexcept { return remaining_; }
  // Bytes of the message readable now without a refill: the rest of the current window, which the
  // owner has received. At most `remaining()` for a well-formed owner.
  std::size_t buffered() const noexcept { return static_cast<std::size_t>(end_ - cur_); }
  // Throws DecodeError unless `count` items of at least `min_bytes` each can still follow.
  void check_count(std::uint64_t count, std::size_t min_bytes) const {
    if (min_bytes == 0) min_bytes = 1;
    if (count > remaining_ / min_bytes)
      throw DecodeError("mproc: corrupt message: a length exceeds the bytes that remain");
  }

  const std::byte* cur() const noexcept { return cur_; }
  const std::byte* end() const noexcept { return end_; }
  void set_window(const std::byte* begin, const std::byte* end) noexcept {
    cur_ = begin;
    end_ = end;
  }
  // Installs the owner's DirectFn (called with the refill's `ctx`).
  void set_direct(DirectFn direct) noexcept { direct_ = direct; }

 private:
  void read_slow(std::byte* out, std::size_t n) {
    while (n > 0) {
      std::size_t have = static_cast<std::size_t>(end_ - cur_);
      if (have == 0) {
        if (direct_ != nullptr && n >= kDirectMin) {
          const std::size_t k = direct_(out, n, ctx_);
          out += k;
          n -= k;
          remaining_ -= k;
          continue;
        }
        if (!refill_) throw DecodeError("mproc: truncated message");
        refill_(*this, ctx_);
        continue;
      }
      std::size_t k = n < have ? n : have;
      std::memcpy(out, cur_, k);
      cur_ += k;
      out += k;
      n -= k;
      remaining_ -= k;
    }
  }

  const std::byte* cur_ = nullptr;
  const std::byte* end_ = nullptr;
  std::size_t remaining_ = 0;
  RefillFn refill_ = nullptr;
  void* ctx_ = nullptr;
  DirectFn direct_ = nullptr;
};

}  // namespace mproc
