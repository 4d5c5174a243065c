// mproc/codec/json.hpp — nlohmann::json values travel through mproc (Queue, Connection::send/recv,
// Pool arguments and results), in MessagePack; and so do user types that have nlohmann's
// to_json/from_json, once named with MPROC_CODEC_JSON.
//
//   #include <mproc/codec/json.hpp>
//   mproc::Queue<nlohmann::json> q;
//   q.put({{"symbol", "ACME"}, {"prices", {1.5, 2.5}}});
//   nlohmann::json back = q.get();
//
//   struct Quote { std::string symbol; double price; };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Quote, symbol, price)  // or to_json/from_json by hand
//   MPROC_CODEC_JSON(Quote);                                   // at global scope
//   mproc::Queue<Quote> quotes;                                // travels as its JSON
//
// Opt-in, as the other headers of mproc/codec/: the core library does not depend on nlohmann's
// json (header-only; CMake: `find_package(nlohmann_json)`, `nlohmann_json::nlohmann_json`).
// Include it before the first use of a JSON type with mproc, in every file that sends or receives
// one. Python counterpart: pickle of the dict/list value (or json.dumps of it).
//
// Which types: every `nlohmann::basic_json<...>` (nlohmann::json, nlohmann::ordered_json, and
// other instantiations), by a constrained partial specialisation of `mproc::codec<T>`. A user
// type T with `to_json(nlohmann::json&, const T&)` and `from_json(const nlohmann::json&, T&)` (or
// an adl_serializer) after `MPROC_CODEC_JSON(T);` at global scope: it is sent as
// `nlohmann::json(value)` and received as `json.get<T>()`. That opt-in is explicit because having
// to_json/from_json does not tell which convention the sender means (a type may also have a
// serialize(), or a cereal form), and a full specialisation wins over every other rule.
//
// Wire format: the length of the MessagePack bytes as a uint64 (host byte order, as mproc's
// counts), then the value as nlohmann's `to_msgpack` writes it. MessagePack rather than CBOR:
// both are compact binary forms of the same data model, about the same size and speed in
// nlohmann's implementation, but a binary value's subtype is a MessagePack ext type that
// nlohmann's public sax_parse reads back, while with CBOR it is a tag that parse functions
// reject unless given a tag handler sax_parse does not take: MessagePack round-trips every value
// nlohmann::json can hold. Round trip: equal values (`==`); integers keep their value but a
// non-negative number_integer comes back as number_unsigned (as through to_msgpack/from_msgpack),
// an object keeps its key order for ordered_json. A discarded value (the result of a failed
// parse with allow_exceptions=false) cannot be sent: ValueError. `encoded_size(j)` is exact: 8 +
// the MessagePack bytes. For a user type, JSON's own limits apply (e.g. a NaN double is sent as
// a MessagePack float, but a user's to_json decides what a field becomes).
//
// Encoding: `size()` writes the MessagePack into a counting adapter (no memory); `encode()` writes
// it straight into the Writer's window when the whole frame fits there (one pass, no copy), and
// otherwise counts, writes the length, and writes the MessagePack through the Writer (its windows,
// refilled as they fill: memory bounded whatever the value's size).
//
// Decoding untrusted bytes: bounded. The frame length is checked against the bytes that remain
// before anything is allocated; a frame whole in the Reader's window is parsed in place, a
// streamed one is first gathered as the codec gathers a std::string (memory grows with the bytes
// received). nlohmann's MessagePack reader reserves nothing from the counts it reads: strings,
// binaries, arrays and objects grow as their bytes are read, so memory follows the bytes (a
// decoded value takes more memory than its bytes: a 1-byte nil in an array becomes a 16-byte json
// element; about 16 to 32 times at worst). Nesting deeper than MPROC_JSON_MAX_DEPTH arrays and
// objects (default 1000, as Python's recursion limit; define it before including this header to
// change it) is rejected before the parser recurses further, so hostile bytes cannot exhaust the
// stack. Invalid MessagePack, bytes left in the frame after the value, and too deep a nesting
// throw DecodeError naming the type; so does a user type's from_json that throws (a missing key,
// a wrong type: nlohmann's message is included). A MessagePack map with a key twice keeps the
// last value (as JSON objects do).
//
// Thread safety: as nlohmann::json (concurrent const use of one value is safe).
#pragma once

#include <cxxabi.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <typeinfo>

#ifndef MPROC_JSON_MAX_DEPTH
#define MPROC_JSON_MAX_DEPTH 1000
#endif

namespace mproc {

// This adapter uses four names of nlohmann's `detail` namespace, which the library documents as
// internal: `output_adapter_protocol` (to count and stream MessagePack without a buffer),
// `binary_writer` (to write MessagePack through it), `json_sax_dom_parser` (to build the value
// while the depth is checked) and `is_basic_json` (to recognise json, ordered_json and other
// basic_json instances). They are stable in nlohmann 3.x (3.11.2 in Debian 12, the version the
// tests run against); a release that renames them breaks this header at compile time, not at
// run time.
namespace detail::json_codec {

inline constexpr std::size_t kLengthBytes = sizeof(std::uint64_t);
inline constexpr std::size_t kMaxDepth = MPROC_JSON_MAX_DEPTH;

template <class J>
std::string json_name() {
  if constexpr (std::is_same_v<J, nlohmann::json>)
    return "nlohmann::json";
  else if constexpr (std::is_same_v<J, nlohmann::ordered_json>)
    return "nlohmann::ordered_json";
  else
    return "nlohmann::basic_json";
}

template <class T>
std::string type_name() {
  int status = 0;
  char* s = abi::__cxa_demangle(typeid(T).name(), nullptr, nullptr, &status);
  std::string name = status == 0 && s != nullptr ? std::string(s) : std::string(typeid(T).name());
  std::free(s);
  return name;
}

using Protocol = nlohmann::detail::output_adapter_protocol<std::uint8_t>;

class CountAdapter final : public Protocol {
 public:
  void write_character(std::uint8_t) override { ++count; }
  void write_characters(const std::uint8_t*, std::size_t n) override { count += n; }
  std::size_t count = 0;
};

struct WindowFull {};

// Writes into a fixed span; a write that does not fit throws WindowFull.
class SpanAdapter final : public Protocol {
 public:
  SpanAdapter(std::byte* begin, std::byte* end) noexcept : cur(begin), end_(end) {}
  void write_character(std::uint8_t c) override {
    if (cur == end_) throw WindowFull{};
    *cur++ = static_cast<std::byte>(c);
  }
  void write_characters(const std::uint8_t* s, std::size_t n) override {
    if (n > static_cast<std::size_t>(end_ - cur)) throw WindowFull{};
    std::memcpy(cur, s, n);
    cur += n;
  }
  std::byte* cur;

 private:
  std::byte* end_;
};

// Writes through a Writer, which refills its windows (and may throw, e.g. Full or Closed).
class WriterAdapter final : public Protocol {
 public:
  explicit WriterAdapter(Writer& w) noexcept : w_(&w) {}
  void write_character(std::uint8_t c) override {
    w_->write(&c, 1);
    ++count;
  }
  void write_characters(const std::uint8_t* s, std::size_t n) override {
    w_->write(s, n);
    count += n;
  }
  std::size_t count = 0;

 private:
  Writer* w_;
};

template <class J, class Adapter>
void write_msgpack(const J& j, const std::shared_ptr<Adapter>& out) {
  nlohmann::detail::binary_writer<J, std::uint8_t>(out).write_msgpack(j);
}

template <class J>
void check_sendable(const J& j) {
  if (j.is_discarded())
    throw ValueError("mproc: a discarded " + json_name<J>() + " value cannot be encoded");
}

template <class J>
std::size_t payload_size(const J& j) {
  check_sendable(j);
  auto count = std::make_shared<CountAdapter>();
  write_msgpack(j, count);
  return count->count;
}

template <class J>
void encode(Writer& w, const J& j) {
  check_sendable(j);
  const auto room = static_cast<std::size_t>(w.end() - w.cur());
  if (room > kLengthBytes) {  // try the window first: one pass, no copy
    auto span = std::make_shared<SpanAdapter>(w.cur() + kLengthBytes, w.end());
    try {
      write_msgpack(j, span);
      const auto n = static_cast<std::uint64_t>(span->cur - (w.cur() + kLengthBytes));
      std::memcpy(w.cur(), &n, kLengthBytes);
      w.set_window(span->cur, w.end());
      return;
    } catch (const WindowFull&) {
    }
  }
  const std::size_t n = payload_size(j);
  w.write_value(static_cast<std::uint64_t>(n));
  auto out = std::make_shared<WriterAdapter>(w);
  write_msgpack(j, out);
  if (out->count != n)
    throw Error("mproc: a " + json_name<J>() + " value changed while it was encoded");
}

// nlohmann's DOM builder, refusing to nest deeper than kMaxDepth (before the parser recurses).
template <class J>
class DepthLimitedSax {
 public:
  using number_integer_t = typename J::number_integer_t;
  using number_unsigned_t = typename J::number_unsigned_t;
  using number_float_t = typename J::number_float_t;
  using string_t = typename J::string_t;
  using binary_t = typename J::binary_t;

  explicit DepthLimitedSax(J& result) : dom_(result, true) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) { return dom_.number_float(v, s); }
  bool string(string_t& v) { return dom_.string(v); }
  bool binary(binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool key(string_t& v) { return dom_.key(v); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t pos, const std::string& token, const Exception& e) {
    return dom_.parse_error(pos, token, e);  // throws e
  }

  bool too_deep() const noexcept { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ <= kMaxDepth) return true;
    too_deep_ = true;
    return false;
  }

  nlohmann::detail::json_sax_dom_parser<J> dom_;
  std::size_t depth_ = 0;
  bool too_deep_ = false;
};

template <class J>
J parse(const std::byte* data, std::size_t n) {
  J j;
  DepthLimitedSax<J> sax(j);
  const auto* p = reinterpret_cast<const std::uint8_t*>(data);
  bool ok = false;
  try {
    ok = J::sax_parse(p, p + n, &sax, J::input_format_t::msgpack, true);
  } catch (const std::exception& e) {
    throw DecodeError("mproc: corrupt message: the " + std::to_string(n) + " bytes of a " +
                      json_name<J>() + " are not one MessagePack value: " + e.what());
  }
  if (sax.too_deep())
    throw DecodeError("mproc: corrupt message: a " + json_name<J>() +
                      " nests arrays and objects deeper than " + std::to_string(kMaxDepth) +
                      " levels (MPROC_JSON_MAX_DEPTH)");
  if (!ok)
    throw DecodeError("mproc: corrupt message: the " + std::to_string(n) + " bytes of a " +
                      json_name<J>() + " are not one MessagePack value");
  return j;
}

template <class J>
J decode(Reader& r) {
  std::uint64_t n = 0;
  if (r.buffered() >= kLengthBytes) {
    std::memcpy(&n, r.cur(), kLengthBytes);
    if (n <= r.buffered() - kLengthBytes) {  // the whole frame has arrived: parse it in place
      r.skip(kLengthBytes);
      J j = parse<J>(r.cur(), static_cast<std::size_t>(n));
      r.skip(static_cast<std::size_t>(n));
      return j;
    }
  }
  n = r.read_value<std::uint64_t>();
  if (n > r.remaining())
    throw DecodeError("mproc: corrupt message: the length of a " + json_name<J>() + " (" +
                      std::to_string(n) + " bytes) exceeds the " + std::to_string(r.remaining()) +
                      " bytes that remain");
  std::string bytes;
  mproc::detail::read_block(r, bytes, static_cast<std::size_t>(n));  // grows as bytes arrive
  return parse<J>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
}

}  // namespace detail::json_codec

// Every nlohmann::basic_json<...> value (nlohmann::json, nlohmann::ordered_json, ...).
template <class J>
  requires(nlohmann::detail::is_basic_json<J>::value)
struct codec<J> {
  static constexpr std::size_t min_size = detail::json_codec::kLengthBytes;

  static std::size_t size(const J& j) {
    return detail::json_codec::kLengthBytes + detail::json_codec::payload_size(j);
  }
  static void encode(Writer& w, const J& j) { detail::json_codec::encode(w, j); }
  static J decode(Reader& r) { return detail::json_codec::decode<J>(r); }
};

// The codec of a user type sent as its nlohmann::json (to_json / from_json): its frame is the
// json's. Specialise mproc::codec<T> as deriving from it, or use MPROC_CODEC_JSON.
template <class T>
struct json_value_codec {
  static constexpr std::size_t min_size = detail::json_codec::kLengthBytes;

  static std::size_t size(const T& v) { return codec<nlohmann::json>::size(nlohmann::json(v)); }
  static void encode(Writer& w, const T& v) { codec<nlohmann::json>::encode(w, nlohmann::json(v)); }
  static T decode(Reader& r) {
    const nlohmann::json j = codec<nlohmann::json>::decode(r);
    try {
      return j.template get<T>();
    } catch (const std::exception& e) {
      throw DecodeError("mproc: corrupt message: the nlohmann::json received is not a " +
                        detail::json_codec::type_name<T>() + " (from_json: " + e.what() + ")");
    }
  }
};

}  // namespace mproc

// Makes `mproc::codec<T>` send T as its nlohmann::json (to_json / from_json). At global scope.
#define MPROC_CODEC_JSON(...) \
  template <>                 \
  struct mproc::codec<__VA_ARGS__> : ::mproc::json_value_codec<__VA_ARGS__> {}
