// libFuzzer target: decodes arbitrary bytes as one of several types (chosen by the first byte).
//
// Decoding may only ever throw mproc::DecodeError. A crash, a sanitizer report, any other
// exception (it escapes and aborts), or a broken property below is a finding:
//   * decoding through small windows (1-8 bytes, from the first byte) gives the same outcome as
//     decoding the whole buffer;
//   * a decoded value re-encodes to exactly the number of bytes it was decoded from;
//   * the re-encoding decodes again, to the same bytes (or, for types with unordered containers,
//     to an equal value); for canonical types it equals the input bytes;
//   * from_bytes rejects the input if bytes remain after the value, with "trailing bytes".
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

template <class T>
void check(std::span<const std::byte> in, std::size_t window, bool canonical, unsigned type) {
  std::optional<T> v;
  const auto used = try_decode<T>(mproc::Reader(in.data(), in.size()), v);

  WindowedSource source(in, window);
  std::optional<T> w;
  const auto used_windowed = try_decode<T>(source.reader(), w);
  if (used.has_value() != used_windowed.has_value() || (used && *used != *used_windowed))
    finding("windowed decoding disagrees with whole-buffer decoding", type);
  if (!used) return;

  if (mproc::encoded_size(*v) != *used) finding("encoded_size differs from the bytes used", type);
  const std::vector<std::byte> bytes = mproc::to_bytes(*v);
  if (bytes != mproc::to_bytes(*w)) finding("windowed decoding gave another value", type);
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
