// libFuzzer target: decodes arbitrary bytes as one of several types (chosen by the first byte).
//
// Decoding may only ever throw mproc::DecodeError. A crash, a sanitizer report, any other
// exception (it escapes and aborts), or a broken property below is a finding:
//   * decoding through small windows (1-8 bytes, from the first byte) gives the same outcome as
//     decoding the whole buffer;
//   * decoding through the same windows from a Reader told that the message holds 2^40 bytes more
//     than the input (a sender that announces more than it sends; its refill throws PeerGone once
//     the input is spent, as a Connection throws EOFError) gives the same outcome too, ending in
//     DecodeError or PeerGone when the whole-buffer decode failed, and no single allocation it
//     makes exceeds 1 MiB + 1024 bytes per input byte (the growth logic of the codec's block reads
//     and reservations follows the bytes that arrived, never the announced total);
//   * a decoded value re-encodes to exactly the number of bytes it was decoded from;
//   * the re-encoding decodes again, to the same bytes (or, for types with unordered containers,
//     to an equal value); for canonical types it equals the input bytes;
//   * from_bytes rejects the input if bytes remain after the value, with "trailing bytes".
#include <sanitizer/allocator_interface.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mproc/codec.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "codec_fuzz_types.hpp"

namespace {

[[noreturn]] void finding(const char* what, unsigned type) {
  std::fprintf(stderr, "codec_fuzz: type %u: %s\n", type, what);
  std::abort();
}

// Copies the message into a fresh heap window of `window_` bytes at each refill, so that reading
// past a window, or from a released one, is an ASan report.
class WindowedSource {
 public:
  WindowedSource(std::span<const std::byte> all, std::size_t window) : all_(all), window_(window) {}
  mproc::Reader reader() {
    return mproc::Reader(nullptr, nullptr, all_.size(), &WindowedSource::refill, this);
  }

 private:
  static void refill(mproc::Reader& r, void* ctx) {
    auto* self = static_cast<WindowedSource*>(ctx);
    const std::size_t k = std::min(self->window_, self->all_.size() - self->pos_);
    if (k == 0) finding("refill past the end of the message", 0);
    self->buf_ = std::make_unique<std::byte[]>(k);
    std::memcpy(self->buf_.get(), self->all_.data() + self->pos_, k);
    self->pos_ += k;
    r.set_window(self->buf_.get(), self->buf_.get() + k);
  }
  std::span<const std::byte> all_;
  std::size_t window_;
  std::size_t pos_ = 0;
  std::unique_ptr<std::byte[]> buf_;
};

// Thrown by OverAnnouncedSource's refill once the input is spent.
struct PeerGone {};

// A sender that announces 2^40 bytes more than the input and sends the input, in fresh heap
// windows of `window_` bytes, then goes away. Large reads (Reader::kDirectMin and more) may also
// be placed straight into the decoder's memory, a few windows' worth at a time, as a Connection
// does.
class OverAnnouncedSource {
 public:
  static constexpr std::size_t kExtra = std::size_t{1} << 40;
  OverAnnouncedSource(std::span<const std::byte> all, std::size_t window)
      : all_(all), window_(window) {}
  mproc::Reader reader() {
    mproc::Reader r(nullptr, nullptr, all_.size() + kExtra, &OverAnnouncedSource::refill, this);
    r.set_direct(&OverAnnouncedSource::place);
    return r;
  }

 private:
  static void refill(mproc::Reader& r, void* ctx) {
    auto* self = static_cast<OverAnnouncedSource*>(ctx);
    const std::size_t k = std::min(self->window_, self->all_.size() - self->pos_);
    if (k == 0) throw PeerGone{};
    self->buf_ = std::make_unique<std::byte[]>(k);
    std::memcpy(self->buf_.get(), self->all_.data() + self->pos_, k);
    self->pos_ += k;
    r.set_window(self->buf_.get(), self->buf_.get() + k);
  }
  static std::size_t place(std::byte* out, std::size_t n, void* ctx) {
    auto* self = static_cast<OverAnnouncedSource*>(ctx);
    const std::size_t k = std::min({n, 1000 * self->window_ + 1, self->all_.size() - self->pos_});
    if (k == 0) throw PeerGone{};
    std::memcpy(out, self->all_.data() + self->pos_, k);
    self->pos_ += k;
    return k;
  }
  std::span<const std::byte> all_;
  std::size_t window_;
  std::size_t pos_ = 0;
  std::unique_ptr<std::byte[]> buf_;
};

// The largest allocation made while `g_track_allocations` is set (sanitizer malloc hook).
bool g_track_allocations = false;
std::size_t g_largest_allocation = 0;

void on_malloc(const volatile void*, std::size_t size) {
  if (g_track_allocations && size > g_largest_allocation) g_largest_allocation = size;
}
void on_free(const volatile void*) {}

// Decodes one T; the bytes it used, or nullopt after a DecodeError.
template <class T>
std::optional<std::size_t> try_decode(mproc::Reader r, std::optional<T>& out) {
  const std::size_t before = r.remaining();
  try {
    out.emplace(mproc::decode<T>(r));
  } catch (const mproc::DecodeError&) {
    return std::nullopt;
  }
  return before - r.remaining();
}

// As try_decode, from a sender that announced more than it sent; also nullopt when it went away.
template <class T>
std::optional<std::size_t> try_decode_over_announced(std::span<const std::byte> in,
                                                     std::size_t window, std::optional<T>& out) {
  OverAnnouncedSource source(in, window);
  mproc::Reader r = source.reader();
  const std::size_t before = r.remaining();
  g_largest_allocation = 0;
  g_track_allocations = true;
  try {
    out.emplace(mproc::decode<T>(r));
  } catch (const mproc::DecodeError&) {
    g_track_allocations = false;
    return std::nullopt;
  } catch (const PeerGone&) {
    g_track_allocations = false;
    return std::nullopt;
  }
  g_track_allocations = false;
  return before - r.remaining();
}

template <class T>
void check(std::span<const std::byte> in, std::size_t window, bool canonical, unsigned type) {
  std::optional<T> v;
  const auto used = try_decode<T>(mproc::Reader(in.data(), in.size()), v);

  WindowedSource source(in, window);
  std::optional<T> w;
  const auto used_windowed = try_decode<T>(source.reader(), w);
  if (used.has_value() != used_windowed.has_value() || (used && *used != *used_windowed))
    finding("windowed decoding disagrees with whole-buffer decoding", type);

  std::optional<T> o;
  const auto used_over = try_decode_over_announced<T>(in, window, o);
  if (used.has_value() != used_over.has_value() || (used && *used != *used_over))
    finding("decoding from a sender that announced more disagrees with whole-buffer decoding",
            type);
  if (g_largest_allocation > (std::size_t{1} << 20) + 1024 * in.size())
    finding("an allocation followed the announced length, not the bytes that arrived", type);
  if (!used) return;

  if (mproc::encoded_size(*v) != *used) finding("encoded_size differs from the bytes used", type);
  const std::vector<std::byte> bytes = mproc::to_bytes(*v);
  // Unordered containers built with other reservations may iterate in another order: compare
  // their values, and the bytes of the others.
  auto same = [&](const T& x) { return canonical ? mproc::to_bytes(x) == bytes : x == *v; };
  if (!same(*w)) finding("windowed decoding gave another value", type);
  if (!same(*o)) finding("decoding from a sender that announced more gave another value", type);
  if (canonical && std::memcmp(bytes.data(), in.data(), bytes.size()) != 0)
    finding("re-encoding differs from the input", type);

  T again = mproc::from_bytes<T>(bytes);
  if (canonical) {
    if (mproc::to_bytes(again) != bytes) finding("second round trip differs", type);
  } else if (!(again == *v)) {
    finding("second round trip gave another value", type);
  }

  if (*used < in.size()) {
    try {
      (void)mproc::from_bytes<T>(in);
      finding("from_bytes accepted trailing bytes", type);
    } catch (const mproc::DecodeError& e) {
      if (std::strncmp(e.what(), "mproc: trailing bytes: ", 23) != 0)
        finding("from_bytes threw another DecodeError for trailing bytes", type);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (__sanitizer_install_malloc_and_free_hooks(&on_malloc, &on_free) == 0) {
    std::fprintf(stderr, "codec_fuzz: cannot install the sanitizer's malloc hook\n");
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned selector = data[0];
  const std::size_t window = 1 + (selector / codec_fuzz::kTypes) % 8;
  const std::span<const std::byte> body(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  codec_fuzz::with_type(selector, [&]<class T>(codec_fuzz::Case<T> c, const T&) {
    check<T>(body, window, c.canonical, selector % codec_fuzz::kTypes);
  });
  return 0;
}
