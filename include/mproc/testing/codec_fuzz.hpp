// mproc/testing/codec_fuzz.hpp — checks that a codec decodes untrusted bytes safely: the
// properties of mproc's own codec fuzzer, for any type, as a function and as a libFuzzer target.
//
// A `mproc::codec<T>` specialisation (docs/codec.md) decodes bytes that may come from a damaged or
// hostile peer. This header checks, for one type and one input, everything mproc's codec fuzzer
// checks for the built-in types:
//
//   // A libFuzzer target for your types, in one line (the first byte of each input picks the
//   // type, and the size of the windows the bytes stream through):
//   #include <mproc/testing/codec_fuzz.hpp>
//   MPROC_CODEC_FUZZ_TARGET(money::Decimal, geo::Polygon<double>, std::vector<money::Decimal>)
//
//   // The same properties in a unit test, without libFuzzer (a finding is returned, not fatal):
//   std::optional<std::string> f = mproc::testing::check_codec_input<money::Decimal>(bytes);
//   std::optional<std::string> g = mproc::testing::check_codec_value(money::Decimal(1250, 2));
//   using mproc::testing::by_value;  // compare decoded values, not bytes (see below)
//   auto h = mproc::testing::check_codec_input<by_value<std::unordered_set<int>>>(bytes);
//
// Also: `check_codec_fuzz_input<codec_fuzz_types<Ts...>>(input)` checks one input as the target
// does (selector byte first), `codec_fuzz_seed<codec_fuzz_types<Ts...>>(sample)` makes a seed
// file's bytes for a corpus, and `kCodecFuzzChecksAllocations` says whether this build checks the
// allocation bound.
//
// The properties (each broken one is a finding: a one-line message naming it):
//   * decoding may only throw mproc::DecodeError (any other exception is a finding: a library's
//     std::invalid_argument or std::bad_alloc escaping decode is a bug of the codec);
//   * decoding through small windows (`window` bytes each, fresh heap memory each, so that reading
//     outside a window is an AddressSanitizer report) gives the same outcome as decoding the whole
//     buffer, and uses the same number of bytes;
//   * decoding through the same windows from a Reader told that the message holds 2^40 bytes more
//     than the input (a sender that announces more than it sends, then goes away as a Connection's
//     peer does) gives the same outcome too, failing with DecodeError or the sender's going away
//     when the whole-buffer decode failed; where the sanitizer allocator hooks are available
//     (AddressSanitizer or MemorySanitizer, e.g. `-fsanitize=fuzzer,address`), no single
//     allocation it makes exceeds 1 MiB (4 MiB unless MPROC_CODEC_GROW_STEP is lowered, as the fuzz
//     targets do) + 1024 bytes per input byte: memory follows the bytes that arrived, never the
//     announced total (`Reader::buffered()`, not `remaining()`);
//   * a decoded value's `encoded_size` is exactly the number of bytes it was decoded from (for a
//     `by_value<T>` type, which may have several encodings of one value: the size of its
//     re-encoding), and the bytes it was decoded from are at least the codec's `min_size` hint;
//   * it re-encodes (`to_bytes`: size() agrees with encode()), and the re-encoding decodes again,
//     to the same bytes (or, for a type listed as `by_value<T>`, to an equal value);
//   * for a canonical type (the default), the re-encoding is exactly the input bytes it came from;
//   * `from_bytes` rejects an input with bytes left after the value, with "mproc: trailing bytes";
//   * a type whose codec sets the `bitwise` hint decodes any `sizeof(T)` bytes, and encodes an
//     object to exactly its object bytes (what containers of T assume when they copy blocks).
// Crashes and undefined behaviour (reading outside the message, use after free) are the
// sanitizers' findings: build the fuzz target with `-fsanitize=fuzzer,address,undefined`.
//
// Canonical or by value: most codecs write one byte sequence per value, so decoding then encoding
// gives the input back, and the harness compares bytes (no operator== needed). A type whose
// decoded value may re-encode differently (an unordered container, a codec that normalises, e.g.
// 1.50 and 1.5 decoding to one value) is listed, and checked, as `mproc::testing::by_value<T>`:
// values are compared with `==` instead. (A compile-time choice: `==` is required, and
// instantiated, only for those.)
//
// Why findings are returned and not only fatal: the same check serves a fuzz target (where a
// finding must abort so that libFuzzer saves the input) and a unit test (which runs it over a seed
// corpus or generated inputs and asserts which property failed, without a death test: no fork,
// runs under qemu-user and ThreadSanitizer alike). `check_codec_input` and `check_codec_value`
// return the finding; `codec_fuzz_one_input` and the macro print it and call std::abort().
//
// Dependencies: mproc's header-only codec and the standard library (plus the sanitizer runtime's
// malloc hook when built with AddressSanitizer or MemorySanitizer); libFuzzer only
// for the macro's target, at link time. Define MPROC_CODEC_FUZZ_ALLOCATION_HOOKS to 0 or 1 to
// turn the allocation bound off or on explicitly.
//
// Thread safety: the checks may run on one thread at a time (the allocation bound is process-wide
// state). Not for production code: a check decodes each input three times and allocates freely.
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mproc/codec.hpp>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define MPROC_CODEC_FUZZ_DEMANGLE 1
#endif

#ifndef MPROC_CODEC_FUZZ_ALLOCATION_HOOKS
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define MPROC_CODEC_FUZZ_ALLOCATION_HOOKS 1
#endif
#endif
#if !defined(MPROC_CODEC_FUZZ_ALLOCATION_HOOKS) && defined(__SANITIZE_ADDRESS__)
#define MPROC_CODEC_FUZZ_ALLOCATION_HOOKS 1
#endif
#ifndef MPROC_CODEC_FUZZ_ALLOCATION_HOOKS
#define MPROC_CODEC_FUZZ_ALLOCATION_HOOKS 0
#endif
#endif

#if MPROC_CODEC_FUZZ_ALLOCATION_HOOKS
#if __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#else
// GCC ships the sanitizer runtimes without their interface headers: the declaration, as there.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             std::size_t),
                                                         void (*free_hook)(const volatile void*));
#endif
#endif

namespace mproc::testing {

// Lists `T` in a fuzz target, or checks it, by value: its decoded values are compared with `==`,
// and re-encoding need not give the input bytes back (see the header comment).
template <class T>
struct by_value {
  static_assert(std::equality_comparable<T>, "mproc::testing::by_value<T>: T needs operator==");
  using type = T;
};

// How one input is checked.
struct CodecFuzzOptions {
  // The size of each window of the streamed decodes (at least 1).
  std::size_t window = 1;
};

// True when the allocation bound is checked in this build (a sanitizer's allocator hooks).
inline constexpr bool kCodecFuzzChecksAllocations = MPROC_CODEC_FUZZ_ALLOCATION_HOOKS != 0;

namespace codec_fuzz_detail {

// A property broken inside a refill (a Reader asked for bytes past the message): thrown through
// the codec's decode, turned into the finding.
struct harness_finding {
  std::string what;
};

// Thrown by the over-announcing sender's refill once the input is spent (a Connection throws
// EOFError there).
struct peer_gone {};

inline std::string demangled(const char* mangled) {
#ifdef MPROC_CODEC_FUZZ_DEMANGLE
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status == 0 && s != nullptr) {
    std::string out(s);
    std::free(s);
    return out;
  }
  std::free(s);
#endif
  return mangled;
}

template <class T>
std::string type_name() {
  return demangled(typeid(T).name());
}

inline std::string exception_name(const std::exception& e) { return demangled(typeid(e).name()); }

// Copies the message into a fresh heap window of `window_` bytes at each refill, so that reading
// past a window, or from a released one, is an AddressSanitizer report.
class WindowedSource {
 public:
  WindowedSource(std::span<const std::byte> all, std::size_t window)
      : all_(all), window_(window == 0 ? 1 : window) {}
  Reader reader() { return Reader(nullptr, nullptr, all_.size(), &WindowedSource::refill, this); }

 private:
  static void refill(Reader& r, void* ctx) {
    auto* self = static_cast<WindowedSource*>(ctx);
    const std::size_t k = std::min(self->window_, self->all_.size() - self->pos_);
    if (k == 0) throw harness_finding{"the Reader asked for a refill past the end of the message"};
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

// A sender that announces 2^40 bytes more than the input and sends the input, in fresh heap
// windows of `window_` bytes, then goes away. Large reads (Reader::kDirectMin and more) may also
// be placed straight into the decoder's memory, a few windows' worth at a time, as a Connection
// does.
class OverAnnouncedSource {
 public:
  static constexpr std::size_t kExtra = std::size_t{1} << 40;
  OverAnnouncedSource(std::span<const std::byte> all, std::size_t window)
      : all_(all), window_(window == 0 ? 1 : window) {}
  Reader reader() {
    Reader r(nullptr, nullptr, all_.size() + kExtra, &OverAnnouncedSource::refill, this);
    r.set_direct(&OverAnnouncedSource::place);
    return r;
  }

 private:
  static void refill(Reader& r, void* ctx) {
    auto* self = static_cast<OverAnnouncedSource*>(ctx);
    const std::size_t k = std::min(self->window_, self->all_.size() - self->pos_);
    if (k == 0) throw peer_gone{};
    self->buf_ = std::make_unique<std::byte[]>(k);
    std::memcpy(self->buf_.get(), self->all_.data() + self->pos_, k);
    self->pos_ += k;
    r.set_window(self->buf_.get(), self->buf_.get() + k);
  }
  static std::size_t place(std::byte* out, std::size_t n, void* ctx) {
    auto* self = static_cast<OverAnnouncedSource*>(ctx);
    const std::size_t k = std::min({n, 1000 * self->window_ + 1, self->all_.size() - self->pos_});
    if (k == 0) throw peer_gone{};
    std::memcpy(out, self->all_.data() + self->pos_, k);
    self->pos_ += k;
    return k;
  }
  std::span<const std::byte> all_;
  std::size_t window_;
  std::size_t pos_ = 0;
  std::unique_ptr<std::byte[]> buf_;
};

// The allocation bound of a decode from an over-announcing sender, beyond 1024 bytes per input
// byte: 1 MiB, or what a block read's first piece may reserve (codec.hpp, read_block_growing:
// kReserveAhead times a growth step), twice over, when that is larger (256 KiB steps by default: 4
// MiB; fuzz targets build with MPROC_CODEC_GROW_STEP=16 so that growth happens in small inputs).
inline constexpr std::size_t kAllocationSlack =
    std::max(std::size_t{1} << 20, 2 * detail::kReserveAhead * detail::kGrowStep);

// The largest allocation made while tracking is on (a sanitizer malloc hook; nothing without one).
inline std::atomic<bool> g_track_allocations{false};
inline std::atomic<std::size_t> g_largest_allocation{0};

#if MPROC_CODEC_FUZZ_ALLOCATION_HOOKS
inline void on_malloc(const volatile void*, std::size_t size) {
  if (!g_track_allocations.load(std::memory_order_relaxed)) return;
  std::size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
  while (size > seen &&
         !g_largest_allocation.compare_exchange_weak(seen, size, std::memory_order_relaxed)) {
  }
}
inline void on_free(const volatile void*) {}
#endif

// Installs the hook once; false when the sanitizer refused it.
inline bool allocation_hooks_ready() {
#if MPROC_CODEC_FUZZ_ALLOCATION_HOOKS
  static const bool installed =
      __sanitizer_install_malloc_and_free_hooks(&on_malloc, &on_free) != 0;
  return installed;
#else
  return true;
#endif
}

// The outcome of one decode: the bytes it used (nullopt: it failed as allowed), or a finding.
struct decoded {
  std::optional<std::size_t> used;
  std::optional<std::string> finding;
};

// Decodes one T from `r` into `out`. DecodeError, and peer_gone from an over-announcing sender,
// are allowed failures; any other exception is a finding.
template <class T>
decoded try_decode(Reader r, std::optional<T>& out, const char* how) {
  const std::size_t before = r.remaining();
  try {
    out.emplace(mproc::decode<T>(r));
  } catch (const DecodeError&) {
    return {};
  } catch (const peer_gone&) {
    return {};
  } catch (const harness_finding& f) {
    return {std::nullopt, f.what + " (" + how + ")"};
  } catch (const std::exception& e) {
    return {std::nullopt, std::string("decode threw ") + exception_name(e) +
                              ", not mproc::DecodeError (" + how + "): " + e.what()};
  } catch (...) {
    return {std::nullopt, std::string("decode threw an exception that is not a std::exception, "
                                      "not mproc::DecodeError (") +
                              how + ")"};
  }
  return {before - r.remaining(), std::nullopt};
}

// Runs `f()`, which re-encodes or decodes a valid value: any exception is a finding.
template <class F>
std::optional<std::string> must_not_throw(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return std::string(what) + " threw " + exception_name(e) + ": " + e.what();
  } catch (...) {
    return std::string(what) + " threw an exception that is not a std::exception";
  }
  return std::nullopt;
}

template <class T>
struct unwrap {
  using type = T;
  static constexpr bool canonical = true;
};
template <class T>
struct unwrap<by_value<T>> {
  using type = T;
  static constexpr bool canonical = false;
};

template <class T>
inline constexpr bool is_by_value_v = !unwrap<T>::canonical;

}  // namespace codec_fuzz_detail

// Checks every property of the header comment for one `T` decoded from `in` (any bytes: most
// inputs simply fail to decode, which is allowed). `Entry` is `T`, or `by_value<T>` to compare
// values instead of bytes. Returns the first broken property as a one-line message, or nullopt.
// Never aborts; crashes and sanitizer reports are not caught.
template <class Entry>
std::optional<std::string> check_codec_input(std::span<const std::byte> in,
                                             const CodecFuzzOptions& options = {}) {
  namespace d = codec_fuzz_detail;
  using T = typename d::unwrap<Entry>::type;
  constexpr bool canonical = d::unwrap<Entry>::canonical;
  static_assert(is_encodable_v<T>, "check_codec_input<T>: T must be encodable");

  std::optional<T> v;
  const d::decoded whole = d::try_decode<T>(Reader(in.data(), in.size()), v, "whole buffer");
  if (whole.finding) return whole.finding;
  const std::optional<std::size_t> used = whole.used;

  d::WindowedSource source(in, options.window);
  std::optional<T> w;
  const d::decoded windowed = d::try_decode<T>(source.reader(), w, "windowed");
  if (windowed.finding) return windowed.finding;
  if (used.has_value() != windowed.used.has_value() || (used && *used != *windowed.used))
    return "windowed decoding disagrees with whole-buffer decoding";

  std::optional<T> o;
  d::decoded over;
  {
    if (!d::allocation_hooks_ready()) return "cannot install the sanitizer's malloc hook";
    d::OverAnnouncedSource announced(in, options.window);
    d::g_largest_allocation.store(0, std::memory_order_relaxed);
    d::g_track_allocations.store(true, std::memory_order_relaxed);
    over = d::try_decode<T>(announced.reader(), o, "from a sender that announced more");
    d::g_track_allocations.store(false, std::memory_order_relaxed);
  }
  if (over.finding) return over.finding;
  if (used.has_value() != over.used.has_value() || (used && *used != *over.used))
    return "decoding from a sender that announced more disagrees with whole-buffer decoding";
  if (d::g_largest_allocation.load(std::memory_order_relaxed) >
      d::kAllocationSlack + 1024 * in.size())
    return "an allocation followed the announced length, not the bytes that arrived";

  constexpr bool kBitwise = detail::bitwise_v<T>;
  if (!used) {
    if (kBitwise && in.size() >= sizeof(T))
      return "codec<T>::bitwise is set, but decode rejected sizeof(T) bytes (a bitwise type must "
             "decode any bytes: containers copy its elements without calling decode)";
    return std::nullopt;
  }

  if (*used < detail::min_size_v<T>)
    return "a value decoded from fewer bytes than codec<T>::min_size";
  std::size_t size = 0;
  if (auto f = d::must_not_throw("encoded_size() of a decoded value",
                                 [&] { size = mproc::encoded_size(*v); }))
    return f;
  // A canonical encoding is the one encoding of its value: re-encoding takes the bytes it came
  // from. A by-value type may have several encodings of one value (a varint or a MessagePack
  // number in more bytes than needed, a normalising codec): its re-encoding may be shorter, and
  // must agree with encoded_size() (to_bytes checks that size() and encode() agree).
  if (canonical && size != *used)
    return "encoded_size() of a decoded value is " + std::to_string(size) +
           " bytes, but decoding it used " + std::to_string(*used);
  std::vector<std::byte> bytes;
  if (auto f = d::must_not_throw("re-encoding a decoded value (to_bytes)",
                                 [&] { bytes = mproc::to_bytes(*v); }))
    return f;
  if (bytes.size() != size)
    return "encoded_size() of a decoded value is " + std::to_string(size) +
           " bytes, but to_bytes gave " + std::to_string(bytes.size());

  // Unordered containers built with other reservations may iterate in another order: compare
  // their values, and the bytes of the others.
  std::optional<std::string> failed;
  auto same = [&](const T& x) {
    if constexpr (!canonical) {
      return x == *v;
    } else {
      std::vector<std::byte> xb;
      if (auto f = d::must_not_throw("re-encoding a decoded value (to_bytes)",
                                     [&] { xb = mproc::to_bytes(x); }))
        failed = f;
      return xb == bytes;
    }
  };
  if (!same(*w)) return failed ? *failed : std::string("windowed decoding gave another value");
  if (!same(*o))
    return failed ? *failed
                  : std::string("decoding from a sender that announced more gave another value");
  if constexpr (canonical) {
    if (std::memcmp(bytes.data(), in.data(), bytes.size()) != 0)
      return "re-encoding differs from the input";
  }

  std::optional<T> again;
  try {
    again.emplace(mproc::from_bytes<T>(bytes));
  } catch (const DecodeError& e) {
    return std::string("the re-encoding of a decoded value does not decode: ") + e.what();
  } catch (const std::exception& e) {
    return "decoding the re-encoding threw " + d::exception_name(e) + ": " + e.what();
  }
  if constexpr (canonical) {
    std::vector<std::byte> again_bytes;
    if (auto f = d::must_not_throw("re-encoding a decoded value (to_bytes)",
                                   [&] { again_bytes = mproc::to_bytes(*again); }))
      return f;
    if (again_bytes != bytes) return "second round trip differs";
  } else if (!(*again == *v)) {
    return "second round trip gave another value";
  }

  if (*used < in.size()) {
    try {
      (void)mproc::from_bytes<T>(in);
      return "from_bytes accepted trailing bytes";
    } catch (const DecodeError& e) {
      if (std::strncmp(e.what(), "mproc: trailing bytes: ", 23) != 0)
        return std::string("from_bytes threw another DecodeError for trailing bytes: ") + e.what();
    } catch (const std::exception& e) {
      return "from_bytes threw " + d::exception_name(e) + " for trailing bytes: " + e.what();
    }
  }

  if constexpr (kBitwise) {
    // The object made of the input's first sizeof(T) bytes (what a container's block copy makes)
    // must encode to those bytes.
    alignas(T) std::byte storage[sizeof(T)];
    std::memcpy(storage, in.data(), sizeof(T));
    const T& object = *std::launder(reinterpret_cast<const T*>(storage));
    std::vector<std::byte> object_bytes;
    if (auto f = d::must_not_throw("encoding an object copied from the input (bitwise)",
                                   [&] { object_bytes = mproc::to_bytes(object); }))
      return f;
    if (*used != sizeof(T) || object_bytes.size() != sizeof(T) ||
        std::memcmp(object_bytes.data(), in.data(), sizeof(T)) != 0)
      return "codec<T>::bitwise is set, but the encoding is not the sizeof(T) object bytes";
  }
  return std::nullopt;
}

namespace codec_fuzz_detail {

template <class Entry>
std::optional<std::string> check_value(const typename unwrap<Entry>::type& value,
                                       const CodecFuzzOptions& options) {
  using T = typename unwrap<Entry>::type;
  constexpr bool canonical = unwrap<Entry>::canonical;
  std::size_t size = 0;
  if (auto f = must_not_throw("encoded_size()", [&] { size = mproc::encoded_size(value); }))
    return f;
  if (size == 0) return "a value encodes to 0 bytes (every value must take at least one)";
  std::vector<std::byte> bytes;
  if (auto f = must_not_throw("encoding a value (size() and encode() must agree)",
                              [&] { bytes = mproc::to_bytes(value); }))
    return f;
  std::optional<T> back;
  try {
    back.emplace(mproc::from_bytes<T>(bytes));
  } catch (const DecodeError& e) {
    return std::string("the encoding of a value does not decode: ") + e.what();
  } catch (const std::exception& e) {
    return "decoding the encoding of a value threw " + exception_name(e) + ": " + e.what();
  }
  if constexpr (canonical) {
    std::vector<std::byte> back_bytes;
    if (auto f = must_not_throw("re-encoding a decoded value (to_bytes)",
                                [&] { back_bytes = mproc::to_bytes(*back); }))
      return f;
    if (back_bytes != bytes) return "a value's round trip gave other bytes";
  } else if (!(*back == value)) {
    return "a value's round trip gave another value";
  }
  return check_codec_input<Entry>(bytes, options);
}

}  // namespace codec_fuzz_detail

// Checks a value the program made: its encoding has size() bytes and decodes, to the same bytes
// (`check_codec_value(v)`) or an equal value (`check_codec_value<by_value<T>>(v)`), then every
// property of check_codec_input on that encoding. For unit tests and seed corpora: a codec whose
// decode reads more than its encode wrote fails here on the first value, where fuzzing would need
// an input with extra bytes.
template <class T>
  requires(!codec_fuzz_detail::is_by_value_v<T>)
std::optional<std::string> check_codec_value(const T& value, const CodecFuzzOptions& options = {}) {
  return codec_fuzz_detail::check_value<T>(value, options);
}
template <class Entry>
  requires codec_fuzz_detail::is_by_value_v<Entry>
std::optional<std::string> check_codec_value(const typename Entry::type& value,
                                             const CodecFuzzOptions& options = {}) {
  return codec_fuzz_detail::check_value<Entry>(value, options);
}

// A list of types for one fuzz target: the first byte of an input picks the type (its index is
// the byte modulo the number of types) and the window size (1 + (byte / number of types) % 8).
// An element may be `by_value<T>`.
template <class... Ts>
struct codec_fuzz_types {
  static constexpr std::size_t size = sizeof...(Ts);
};

namespace codec_fuzz_detail {

// A list given as the macro's one argument: codec_fuzz_types<codec_fuzz_types<Ts...>>.
template <class List>
struct list_of {
  using type = List;
};
template <class... Ts>
struct list_of<codec_fuzz_types<codec_fuzz_types<Ts...>>> {
  using type = codec_fuzz_types<Ts...>;
};

template <class List>
struct dispatch;
template <class... Ts>
struct dispatch<codec_fuzz_types<Ts...>> {
  static_assert(sizeof...(Ts) > 0 && sizeof...(Ts) <= 256,
                "mproc codec fuzz: between 1 and 256 types (the first byte picks one)");
  // Calls `f.template operator()<Entry>()` for the entry numbered `index`.
  template <class F>
  static void visit(std::size_t index, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (void)((index == I ? (f.template operator()<Ts>(), true) : false) || ...);
    }(std::index_sequence_for<Ts...>{});
  }
  // The index of the first entry whose type is T.
  template <class T>
  static constexpr std::size_t index_of() {
    constexpr bool kMatch[] = {std::is_same_v<typename unwrap<Ts>::type, T>...};
    for (std::size_t i = 0; i < sizeof...(Ts); ++i)
      if (kMatch[i]) return i;
    return sizeof...(Ts);
  }
};

}  // namespace codec_fuzz_detail

// Checks one fuzz input against the list `List` (a codec_fuzz_types<...>): the first byte picks
// the type and the window size, the rest is decoded. Returns the finding prefixed with
// "type N (name): ", or nullopt (also for an empty input).
template <class List>
std::optional<std::string> check_codec_fuzz_input(std::span<const std::byte> data) {
  using L = typename codec_fuzz_detail::list_of<List>::type;
  if (data.empty()) return std::nullopt;
  const auto selector = static_cast<unsigned>(data[0]);
  const std::size_t index = selector % L::size;
  CodecFuzzOptions options;
  options.window = 1 + (selector / L::size) % 8;
  std::optional<std::string> finding;
  codec_fuzz_detail::dispatch<L>::visit(index, [&]<class Entry>() {
    using U = codec_fuzz_detail::unwrap<Entry>;
    finding = check_codec_input<Entry>(data.subspan(1), options);
    if (finding)
      finding = "type " + std::to_string(index) + " (" +
                codec_fuzz_detail::type_name<typename U::type>() + "), window " +
                std::to_string(options.window) + ": " + *finding;
  });
  return finding;
}

// A seed for a fuzz target of `List`: the selector byte of `sample`'s type (window 1), then its
// encoding. Write one file per type into the target's corpus directory.
template <class List, class T>
std::vector<std::uint8_t> codec_fuzz_seed(const T& sample) {
  using L = typename codec_fuzz_detail::list_of<List>::type;
  constexpr std::size_t index = codec_fuzz_detail::dispatch<L>::template index_of<T>();
  static_assert(index < L::size, "codec_fuzz_seed: the sample's type is not in the list");
  const std::vector<std::byte> bytes = mproc::to_bytes(sample);
  std::vector<std::uint8_t> out(1 + bytes.size());
  out[0] = static_cast<std::uint8_t>(index);
  if (!bytes.empty()) std::memcpy(out.data() + 1, bytes.data(), bytes.size());
  return out;
}

// The body of a fuzz target: checks one input; a finding is printed to stderr
// ("mproc codec fuzz: type N (name), window W: <property>") and aborts, so that libFuzzer saves
// the input. Returns 0 otherwise.
template <class List>
int codec_fuzz_one_input(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size);
  if (const std::optional<std::string> finding = check_codec_fuzz_input<List>(bytes)) {
    std::fprintf(stderr, "mproc codec fuzz: %s\n", finding->c_str());
    std::abort();
  }
  return 0;
}

}  // namespace mproc::testing

// Defines libFuzzer's entry point for the listed types (each a type, or `by_value<T>` spelled
// `mproc::testing::by_value<T>`; template arguments with commas are fine), or for one
// `mproc::testing::codec_fuzz_types<...>` list. Use once per fuzz target, at namespace scope.
#define MPROC_CODEC_FUZZ_TARGET(...)                                                  \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return ::mproc::testing::codec_fuzz_one_input<                                    \
        ::mproc::testing::codec_fuzz_types<__VA_ARGS__>>(data, size);                 \
  }
