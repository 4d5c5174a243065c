// mproc/codec.hpp — `mproc::codec<T>`: turns values into bytes and back, for queues and pipes.
//
// Every typed message that crosses a process boundary (Queue<T>, Connection::send/recv<T>) goes
// through the functions below. They write to an `mproc::Writer` and read from an `mproc::Reader`
// (byte_stream.hpp), so a value streams straight into a queue's ring or a pipe's buffer, whatever
// its size, and each byte is copied once.
//
//   std::vector<std::pair<std::string, int>> v = {{"a", 1}, {"b", 2}};
//   std::vector<std::byte> bytes = mproc::to_bytes(v);
//   auto back = mproc::from_bytes<std::vector<std::pair<std::string, int>>>(bytes);  // == v
//
// This is mproc's pickle, with one difference: Python pickles any object at run time; here the
// set of types is decided at compile time, and a type that cannot be encoded is a compile-time
// error that says why.
//
// What is encodable (built in):
//   * arithmetic types (bool, char types, integers, floating point), enums, std::byte;
//   * trivially copyable classes and unions (aggregates of the above, std::complex, std::bitset,
//     ...): sent as their object bytes, one copy;
//   * std::basic_string (std::string, std::u8string, ...), std::vector (std::vector<bool> too),
//     std::array, std::optional, std::tuple, std::pair, std::chrono::duration,
//     std::chrono::time_point of system_clock, steady_clock or file_clock;
//   * with one more include each (opt-in, as cereal's `cereal/types/*.hpp`, so that a file that
//     sends none of them does not compile their headers):
//       <mproc/codec/map.hpp>            std::map, std::multimap
//       <mproc/codec/set.hpp>            std::set, std::multiset
//       <mproc/codec/unordered_map.hpp>  std::unordered_map, std::unordered_multimap
//       <mproc/codec/unordered_set.hpp>  std::unordered_set, std::unordered_multiset
//       <mproc/codec/deque.hpp>          std::deque
//       <mproc/codec/list.hpp>           std::list
//       <mproc/codec/variant.hpp>        std::variant, std::monostate
//     Include it before the first use of the type with the codec (a Queue<T>, send<T>, to_bytes),
//     in every file that sends or receives it; without it such a type is rejected at compile time
//     by an error that names the header to include;
//   * any nesting of these, e.g. `std::map<std::string, std::vector<std::optional<V>>>`;
//   * user types with a `serialize(Archive&)` member or a free `serialize(Archive&, T&)` found by
//     argument-dependent lookup (cereal's convention, cereal not required):
//
//       struct Order {
//         std::string symbol;
//         std::vector<double> prices;
//         template <class Archive>
//         void serialize(Archive& ar) { ar(symbol, prices); }
//       };
//
//     `ar(a, b, ...)` takes any number of encodable members (C arrays of them too), in the same
//     order for encoding and decoding. A private `serialize` works after
//     `friend class mproc::codec_access;`. `Archive::is_loading` / `Archive::is_saving` are
//     `std::true_type` / `std::false_type` as in cereal. Decoding builds a `T{}` and fills it, so
//     such a type must be default-constructible (a readable compile-time error otherwise).
//     Every other form of cereal's (split `save`/`load`, `save_minimal`/`load_minimal`,
//     versioning, `make_nvp` / `CEREAL_NVP`, `base_class`, `binary_data`, cereal's
//     `types/*.hpp`) works with `#include <mproc/codec/cereal.hpp>` (needs cereal), through which
//     cereal's own dispatch handles every type it can serialize; without it, a type using one of
//     them is a compile-time error naming that header;
//   * with one more include each, the types of other libraries (docs/adapters.md): protobuf
//     messages (<mproc/codec/protobuf.hpp>), Boost.Serialization types
//     (<mproc/codec/boost_serialization.hpp>), nlohmann::json values (<mproc/codec/json.hpp>);
//   * any type for which `mproc::codec<T>` is specialised (see `codec` below).
//
// Which rule wins: a specialisation of `mproc::codec<T>` (full or partial) always wins; then a
// built-in rule for a standard library template above; then, with <mproc/codec/cereal.hpp>, a
// class cereal can serialize (through cereal's dispatch; the bytes of a plain `serialize` are the
// same either way); then `serialize` (also for a type that is trivially copyable — the author's
// intent wins over the bitwise copy); then the arithmetic, enum and trivially-copyable rules. A
// class with one of cereal's other forms and no `serialize` is rejected without that header
// rather than copied bitwise.
//
// What is rejected at compile time, with a message saying why: raw pointers (T*, function
// pointers), member pointers and std::nullptr_t (an address means nothing in another process);
// C arrays as a whole value (use std::array or std::string; inside `serialize` they are fine);
// std::string_view, std::span and std::reference_wrapper (they refer to memory they do not own);
// std::unique_ptr, std::shared_ptr and std::weak_ptr; a time_point of another clock (its epoch may
// differ between processes); and any other type without a rule, e.g. a class holding a
// std::unique_ptr. A container, pair, tuple, optional or variant is encodable exactly when its
// element types are.
//
// The error names the type at fault in its failed condition (Clang prints it on the error line,
// GCC in the note below it):
//   * a struct without serialize() that is not trivially copyable (an aggregate: the usual first
//     record type): `record_member_is_encodable_v<Rec, M>` names its first member type `M` that
//     is not encodable either, found by aggregate-initialising Rec from probes (C++20 has no
//     reflection; the codec still never encodes members it was not told about), or, when every
//     member is encodable, `record_has_serialize_v<Rec>` says that only serialize() is missing;
//   * a serialize() that passes `ar(...)` a member whose type is not encodable:
//     `serialize_member_is_encodable_v<M>` names that type (encode `M` alone to see why).
//
// Wire format. Producer and consumer run on the same machine with the same build, so the format
// is host byte order and host type sizes, and carries no type tags or version: the receiver names
// the type it expects (`decode<T>`), and bytes sent as another type are a DecodeError at best.
//   * arithmetic, enum, std::byte, trivially copyable class/union: `sizeof(T)` bytes, the object
//     representation (padding bytes included, unspecified). bool: one byte, 0 or 1.
//   * counts and lengths: a fixed-width uint64. A fixed width keeps the size of a vector of
//     trivially copyable elements computable without looking at the elements, and decoding it a
//     single bounded read; a varint would save up to 7 bytes per container.
//   * std::basic_string<C>: count, then `count * sizeof(C)` bytes.
//   * std::vector<T>, std::deque<T>, std::list<T>, sets: count, then each element in order (so
//     the same elements give the same bytes in any of them). For a T with a bitwise rule (see
//     `codec` below) the elements are `count * sizeof(T)` object bytes, which a vector writes and
//     reads as one block. std::vector<bool>: count, then one byte (0 or 1) each.
//   * maps: count, then key, value, key, value, ... in iteration order.
//   * std::array<T, N>: the N elements, no count (one block when T is bitwise); N == 0: one 0 byte.
//   * std::optional<T>: one byte (0 empty, 1 engaged), then the value if engaged.
//   * std::variant<Ts...>: the index (uint8 for up to 255 alternatives, else uint32), then the
//     active alternative.
//   * std::pair, std::tuple: the members in order, no framing. std::tuple<>: one 0 byte.
//   * std::monostate: one 0 byte.
//   * std::chrono::duration: its `count()` as `Rep`; time_point: its `time_since_epoch()`.
//     steady_clock is CLOCK_MONOTONIC, which on Linux is one clock for the whole machine, so its
//     time points mean the same in every process.
//   * a `serialize` type: its archived members in order, no framing; if it archives nothing, one 0
//     byte.
// Every value encodes to at least one byte. That invariant lets a decoder bound any count by the
// bytes that remain before it allocates.
//
// Decoding untrusted or damaged bytes: decode never reads outside the message and never allocates
// in proportion to a count it read before checking that count against the bytes that remain
// (`Reader::check_count`, using each element type's minimum encoded size). Nor does it allocate in
// proportion to the bytes that remain when they have not arrived yet: for a message streamed
// through a Reader (a Connection's frame, a Queue message larger than a quarter of its ring) the
// bytes that remain are what the sender announced. A block (a string, a vector of bitwise
// elements) longer than the bytes in the Reader's window (`Reader::buffered()`) is read in pieces
// of max(window, 256 KiB): the memory written (resident) is at most one piece beyond the bytes
// received, and the capacity (address space reserved, not yet written) at most 8 times the bytes
// received; the reallocations copy at most 1/7 of the block in all, and a Reader that can place
// bytes directly (a Connection) fills the block without going through its window. Memory
// reserved ahead of decoding the elements of other containers is at most 8 times the bytes in
// the window; they then grow as elements decode. A message that is whole in its window (a Queue
// record, a Connection message of up to 4 KiB, `from_bytes`) takes the direct path: one
// allocation of the exact size, one copy. A decoded value can still hold more memory than its
// bytes when its type's objects are larger than their smallest encoding (a vector of empty
// optionals of a large array: 1 byte each on the wire); that ratio is the receiver's choice of
// type, not a length chosen by the sender. Everything that does not decode throws DecodeError:
// truncation, a count larger than the rest of the message, a bool, optional flag or padding byte
// that is not 0/1, a variant index out of range, a duplicate key in a map or set that has unique
// keys. Deliberately accepted: any value of an enum's underlying type
// (as C++ itself allows), and any bytes for a trivially copyable class — the codec cannot validate
// its members, so a struct holding a `bool` or a pointer decoded from damaged bytes is as damaged
// as the bytes. Keep such types to trusted peers, or give them a `serialize`.
//
// Recursion: built-in types nest only as deep as their C++ type does; a recursive user type (a
// tree holding a vector of itself) is decoded recursively, as deep as the bytes nest, so bytes from
// an untrusted peer can exhaust the stack through such a type.
//
// Performance: a trivially copyable T is one write/read of `sizeof(T)` bytes; a vector of them is
// the count and one bulk copy; sizes of fixed-size values are compile-time constants. No virtual
// calls, no allocation other than the decoded objects' own.
//
// Thread safety: the functions are stateless; a Writer or Reader must not be shared by threads
// without synchronisation. Process safety: none needed (no shared state).
#pragma once

#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mproc/byte_stream.hpp>
#include <mproc/detail/std_light.hpp>  // std::chrono, std::reference_wrapper
#include <mproc/errors.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace mproc {

// The codec trait: how a `T` becomes bytes and back.
//
// A specialisation (written by this header for the built-in types, or by a user) provides:
//
//   static std::size_t size(const T& v);      // exactly the number of bytes encode(w, v) writes
//   static void encode(Writer& w, const T& v);  // writes those bytes; may throw what w throws
//   static T decode(Reader& r);                // reads one T; throws DecodeError on bad bytes
//
// and may provide two hints that make containers of T faster and their decoding tighter:
//
//   static constexpr std::size_t min_size = ...;  // no value of T encodes to fewer bytes
//   static constexpr bool bitwise = true;         // the encoding is exactly the sizeof(T) object
//                                                 // bytes, and any bytes decode (memcpy-able)
//
// A user specialisation must encode every value to at least one byte (containers bound their
// counts by the bytes that remain, one byte per element at least). It may use `Enable` for SFINAE
// (`template <class T> struct codec<Mine<T>, std::enable_if_t<...>>`) or a requires-clause; either
// way it wins over every built-in rule. Specialise before the first use of `codec<T>`.
//
//   struct Celsius { double v; };  // (trivially copyable anyway: just an example)
//   template <>
//   struct mproc::codec<Celsius> {
//     static std::size_t size(const Celsius&) { return sizeof(double); }
//     static void encode(Writer& w, const Celsius& c) { w.write_value(c.v); }
//     static Celsius decode(Reader& r) { return Celsius{r.read_value<double>()}; }
//   };
template <class T, class Enable = void>
struct codec;

// Lets `mproc::codec` call a private `serialize` member: `friend class mproc::codec_access;`.
class codec_access {
 public:
  template <class Archive, class T>
  static auto serialize(Archive& ar, T& t) -> decltype(t.serialize(ar)) {
    return t.serialize(ar);
  }
};

namespace detail {

template <class T>
struct builtin_codec;

template <class>
inline constexpr bool dependent_false_v = false;

// A codec for T exists but says that T cannot be encoded (it defines this member type and a
// `mproc_codec_reject_()` whose static_assert explains why).
template <class T>
concept rejected_codec = requires { typename codec<T>::mproc_codec_rejected_; };

template <class T>
concept complete_codec = requires(const T& v, Writer& w, Reader& r) {
  { codec<T>::size(v) } -> std::same_as<std::size_t>;
  codec<T>::encode(w, v);
  { codec<T>::decode(r) } -> std::same_as<T>;
};

template <class T>
concept encodable = std::is_object_v<T> && !rejected_codec<T> && complete_codec<T>;

}  // namespace detail

// The primary template: the built-in rules (see the header comment). Not to be specialised by
// deriving from it; specialise `codec<T>` itself.
template <class T, class Enable>
struct codec : detail::builtin_codec<T> {};

// True when `T` (cv-qualifiers ignored) can be encoded and decoded: it has a built-in rule, a
// `serialize`, or a specialisation of `codec` providing size/encode/decode.
template <class T>
inline constexpr bool is_encodable_v = detail::encodable<std::remove_cv_t<T>>;

namespace detail {

// True for an encodable T; otherwise a compile-time error that says why.
template <class T>
constexpr bool check_encodable() {
  if constexpr (encodable<T>) {
    return true;
  } else if constexpr (!std::is_object_v<T>) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T must be an object type (not a reference, function or void)");
    return false;
  } else if constexpr (rejected_codec<T>) {
    codec<T>::mproc_codec_reject_();
    return false;
  } else {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: a specialisation of mproc::codec<T> must provide static "
                  "`std::size_t size(const T&)`, `void encode(Writer&, const T&)` and "
                  "`T decode(Reader&)`");
    return false;
  }
}

[[noreturn]] inline void unreachable() { __builtin_unreachable(); }

}  // namespace detail

// The number of bytes `encode(w, v)` writes for `v`: exact, so a caller can reserve room (a
// message slot, a frame header) before encoding. O(1) for fixed-size values and for vectors of
// trivially copyable elements; otherwise it walks the value. Throws ValueError for a value that
// cannot be encoded at run time (a valueless std::variant); user codecs may throw their own.
template <class T>
std::size_t encoded_size(const T& v) {
  if constexpr (detail::check_encodable<T>()) {
    return codec<T>::size(v);
  } else {
    detail::unreachable();
  }
}

// Writes `v` to `w`: exactly `encoded_size(v)` bytes. Throws ValueError for a valueless
// std::variant, and whatever the writer's refill throws (e.g. Full, Closed); a message cut short
// by an exception is the writer's owner's to roll back.
template <class T>
void encode(Writer& w, const T& v) {
  if constexpr (detail::check_encodable<T>()) codec<T>::encode(w, v);
}

// Reads one `T` from `r` (cv-qualifiers of T ignored). Consumes exactly the bytes `encode` wrote
// for the value. Throws DecodeError when the bytes are truncated or do not form a valid `T` (see
// the header comment), and whatever the reader's refill throws. Never reads outside the message.
template <class T>
T decode(Reader& r) {
  using U = std::remove_cv_t<T>;
  if constexpr (detail::check_encodable<U>()) {
    return codec<U>::decode(r);
  } else {
    detail::unreachable();
  }
}

// Encodes `v` into a new byte vector of exactly `encoded_size(v)` bytes. Throws what `encode`
// throws, and mproc::Error if a user codec's size() disagrees with what its encode() wrote.
template <class T>
std::vector<std::byte> to_bytes(const T& v) {
  std::vector<std::byte> out(mproc::encoded_size(v));
  Writer w(out.data(), out.data() + out.size());
  mproc::encode(w, v);
  if (w.cur() != out.data() + out.size())
    throw Error("mproc: codec<T>::size() is larger than what codec<T>::encode() wrote");
  return out;
}

// Decodes one `T` that must span all of `bytes`. Throws DecodeError when the bytes are truncated
// or invalid, and DecodeError("mproc: trailing bytes: ...") when bytes remain after the value.
template <class T>
T from_bytes(std::span<const std::byte> bytes) {
  Reader r(bytes.data(), bytes.size());
  T v = mproc::decode<T>(r);
  if (r.remaining() != 0)
    throw DecodeError("mproc: trailing bytes: " + std::to_string(r.remaining()) +
                      " bytes remain after the decoded value");
  return v;
}

namespace detail {

// ---- helpers -----------------------------------------------------------------------------------

// The smallest number of bytes any value of T encodes to (at least 1: see the header comment).
template <class T>
constexpr std::size_t min_size_v = [] {
  if constexpr (requires { codec<T>::min_size; })
    return codec<T>::min_size > 0 ? std::size_t{codec<T>::min_size} : std::size_t{1};
  else
    return std::size_t{1};
}();

// The encoding of T is its sizeof(T) object bytes, and any bytes decode: arrays of T move as one
// block.
template <class T>
constexpr bool bitwise_v = [] {
  if constexpr (requires { codec<T>::bitwise; })
    return bool{codec<T>::bitwise} && std::is_trivially_copyable_v<T>;
  else
    return false;
}();

constexpr std::size_t smaller(std::size_t a, std::size_t b) noexcept { return b < a ? b : a; }
constexpr std::size_t larger(std::size_t a, std::size_t b) noexcept { return a < b ? b : a; }

using count_t = std::uint64_t;
inline constexpr std::size_t kCountBytes = sizeof(count_t);

inline void write_count(Writer& w, std::size_t n) { w.write_value(static_cast<count_t>(n)); }

// Reads a count of elements that each take at least `min_bytes`, and checks it against the bytes
// that remain before anyone allocates for it.
inline std::size_t read_count(Reader& r, std::size_t min_bytes) {
  const auto n = r.read_value<count_t>();
  r.check_count(n, min_bytes);
  return static_cast<std::size_t>(n);
}

// How many elements of `elem_bytes` bytes each to reserve ahead of decoding `n` of them: all of
// them unless that would exceed 8 times the bytes that have arrived (`buffered()`, which for a
// message that is whole in its window is all that remains); then growth follows the elements that
// actually decode. Bounding by the bytes that remain would trust a streamed message's announced
// total; bounding by 8 times the bytes keeps element types whose objects are much larger than
// their smallest encoding (e.g. optional<big>) from reserving far more than the bytes justify.
inline std::size_t reserve_count(const Reader& r, std::size_t n, std::size_t elem_bytes) {
  constexpr std::size_t kFactor = 8;
  std::size_t have = std::numeric_limits<std::size_t>::max() / kFactor;
  if (r.remaining() < have) have = r.remaining();
  if (r.buffered() < have) have = r.buffered();
  const std::size_t budget = have * kFactor / elem_bytes + 1;
  return n < budget ? n : budget;
}

// A block longer than what has arrived is read in pieces of what the window holds, at least
// kGrowStep bytes: each piece is sized (and its memory touched) just before its bytes are read.
// Not a tuning knob: the codec fuzzer (tests/fuzz) lowers it so that its small inputs reach the
// growth of the capacity.
#ifndef MPROC_CODEC_GROW_STEP
#define MPROC_CODEC_GROW_STEP 262144
#endif
inline constexpr std::size_t kGrowStep = MPROC_CODEC_GROW_STEP;
// How far the capacity of a block may run ahead of the bytes received (as reserve_count's factor):
// reserved address space not yet touched is not resident, and a large factor means few
// reallocations (each copies what was received so far: at most 1/7 of the block in all).
inline constexpr std::size_t kReserveAhead = 8;

// Reads `n` elements of a bitwise type into the contiguous sequence `s` (a std::basic_string or a
// std::vector) as the bytes arrive: the capacity grows to at most kReserveAhead times the bytes
// received (and never past `n`), the size (the memory written) to at most one piece beyond them.
// The count was checked against the bytes that remain (a truncated message still throws
// DecodeError, or whatever the refill throws).
template <class Seq>
[[gnu::noinline]] void read_block_growing(Reader& r, Seq& s, std::size_t n) {
  using T = typename Seq::value_type;
  std::size_t done = 0;
  while (done < n) {
    const std::size_t have = larger(r.buffered(), kGrowStep) / sizeof(T);
    const std::size_t piece = smaller(n - done, larger(have, 1));
    const std::size_t upto = done + piece;
    if (upto > s.capacity()) s.reserve(upto > n / kReserveAhead ? n : upto * kReserveAhead);
    s.resize(upto);
    r.read(s.data() + done, piece * sizeof(T));
    done = upto;
  }
}

// Reads a block of `n` bitwise elements into `s`. When the whole block has arrived (always, for a
// message that is whole in its window: a Queue record, a small Connection message, from_bytes) it
// is one allocation of exactly `n` and one copy; otherwise it grows with the bytes that arrive.
template <class Seq>
inline void read_block(Reader& r, Seq& s, std::size_t n) {
  using T = typename Seq::value_type;
  if (n <= r.buffered() / sizeof(T)) [[likely]] {
    s.resize(n);
    r.read(s.data(), n * sizeof(T));
    return;
  }
  read_block_growing(r, s, n);
}

inline void write_pad(Writer& w) { w.write_value(std::uint8_t{0}); }

inline void read_pad(Reader& r) {
  if (r.read_value<std::uint8_t>() != 0)
    throw DecodeError("mproc: corrupt message: a padding byte is not 0");
}

inline bool read_flag(Reader& r, const char* what) {
  const auto b = r.read_value<std::uint8_t>();
  if (b > 1) throw DecodeError(std::string("mproc: corrupt message: ") + what);
  return b != 0;
}

// The codec of an element type, cv-qualifiers removed (pair<const K, V> and the like).
template <class T>
using elem_codec = codec<std::remove_cvref_t<T>>;

template <class T>
inline constexpr bool elem_encodable_v = is_encodable_v<T>;

// ---- rejections --------------------------------------------------------------------------------

// Naming the member that is not encodable. C++20 cannot list a struct's members, but it can
// aggregate-initialise one from objects that convert to any type, and see which conversions work:
// that finds the first initializer position (a member, or an element of a C array member) whose
// type is not encodable, and a last conversion at that position instantiates a check whose
// static_assert names the record and the member's type. Only the error path does this.
namespace reflect {

// Converts to anything: fills the positions before and after the one examined.
struct any_field {
  template <class U>
  operator U() const;  // never defined: used in unevaluated operands only
};
template <std::size_t>
using any_at = any_field;

// Converts to encodable types only (deleted for the others, so that the position is not skipped
// by brace elision where the compiler honours a deleted conversion).
struct encodable_field {
  template <class U>
    requires is_encodable_v<U>
  operator U() const;
  template <class U>
    requires(!is_encodable_v<U>)
  operator U() const = delete;
};

// Whether `T{F0, ..., F(i-1), Probe, F(i+1), ... F(n-1)}` is valid, the F being any_field.
template <class T, std::size_t I, std::size_t N, class Probe>
constexpr bool init_with() {
  return
      []<std::size_t... A, std::size_t... B>(std::index_sequence<A...>, std::index_sequence<B...>) {
        return requires { T{any_at<A>{}..., Probe{}, any_at<B>{}...}; };
      }(std::make_index_sequence<I>{}, std::make_index_sequence<N - I - 1>{});
}

inline constexpr std::size_t kMaxFields = 64;
inline constexpr std::size_t kNone = static_cast<std::size_t>(-1);

// The number of initializer positions of the aggregate T (members, C array members counting one
// per element), at most kMaxFields.
template <class T, std::size_t N = 0>
constexpr std::size_t positions() {
  if constexpr (N < kMaxFields && init_with<T, N, N + 1, any_field>())
    return positions<T, N + 1>();
  else
    return N;
}

// The first position whose type is not encodable, or kNone.
template <class T, std::size_t N, std::size_t I = 0>
constexpr std::size_t first_unencodable() {
  if constexpr (I >= N)
    return kNone;
  else if constexpr (!init_with<T, I, N, encodable_field>() ||
                     init_with<T, I, N + 1, encodable_field>())
    return I;  // not convertible, or the probe went into the member's own members (elision)
  else
    return first_unencodable<T, N, I + 1>();
}

}  // namespace reflect

// True when `Member` is encodable; named so that the failed assertion names both types.
template <class Record, class Member>
inline constexpr bool record_member_is_encodable_v = is_encodable_v<Member>;

template <class Record, class Member>
struct record_member_check {
  static_assert(record_member_is_encodable_v<Record, Member>,
                "mproc::codec<T>: T is not encodable: it has no serialize(Archive&), is not "
                "trivially copyable, and has a member whose type is not encodable either "
                "(record_member_is_encodable_v<T, Member> names both). Give T a "
                "serialize(Archive&) and make that member's type encodable (a "
                "serialize(Archive&) or an mproc::codec specialisation for it, or a supported "
                "type; see mproc/codec.hpp).");
  using type = void;
};

namespace reflect {
// Converts to anything; the conversion to a type that is not encodable fails the check above.
// The second conversion keeps the position converted (no brace elision into the member's own
// members, which would report them too) once the first has failed.
template <class Record>
struct reporting_field {
  template <class U, class = typename record_member_check<Record, U>::type>
  operator U() const;
  template <class U>
  operator U() const;
};
}  // namespace reflect

// Named so that the failed assertion names the record.
template <class Record>
inline constexpr bool record_has_serialize_v = false;

// The error for an aggregate class T without serialize(): names its first member whose type is
// not encodable, or says that T itself needs a serialize().
template <class T>
constexpr void reject_record() {
  constexpr std::size_t n = reflect::positions<T>();
  constexpr std::size_t bad = reflect::first_unencodable<T, n>();
  if constexpr (bad != reflect::kNone) {
    (void)reflect::init_with<T, bad, n, reflect::reporting_field<T>>();
  } else {
    static_assert(record_has_serialize_v<T>,
                  "mproc::codec<T>: T is not encodable: it is a struct without "
                  "serialize(Archive&) and is not trivially copyable (mproc does not reflect "
                  "members). Add `template <class Archive> void serialize(Archive& ar) { "
                  "ar(member1, member2, ...); }` listing its members, or specialise "
                  "mproc::codec<T> (see mproc/codec.hpp).");
  }
}

// Standard library types this header does not include, recognised by their shape on the error
// path only, so that the error can name the header that adds their rule (or say why they are
// rejected). A user type of the same shape gets the same advice, worded for the standard type.
namespace shape {
template <class T>
concept keyed = requires { typename T::key_type; };
template <class T>
concept mapped = requires { typename T::mapped_type; };
template <class T>
concept ordered = requires { typename T::key_compare; };
template <class T>
concept hashed = requires { typename T::hasher; };
template <class T>
concept deque_like = requires(T& c, const typename T::value_type& v) {
  c.push_front(v);
  c[0];
  c.size();
};
template <class T>
concept list_like = requires(T& c, const typename T::value_type& v) {
  c.push_front(v);
  c.size();
  c.splice(c.begin(), c);
};
template <class T>
concept variant_like = requires(const T& v) {
  v.index();
  v.valueless_by_exception();
};
// std::unique_ptr, std::shared_ptr, std::weak_ptr (never trivially copyable: they reach this path).
template <class T>
concept smart_pointer_like =
    requires { typename T::element_type; } &&
    (
        requires(const T& p) { p.get(); } || requires(const T& p) { p.lock(); });
}  // namespace shape

enum class std_shape {
  none,
  map,
  unordered_map,
  set,
  unordered_set,
  deque,
  list,
  variant,
  pointer
};

template <class T>
constexpr std_shape shape_of() {
  if constexpr (!std::is_class_v<T>)
    return std_shape::none;
  else if constexpr (shape::keyed<T> && shape::mapped<T> && shape::ordered<T>)
    return std_shape::map;
  else if constexpr (shape::keyed<T> && shape::mapped<T> && shape::hashed<T>)
    return std_shape::unordered_map;
  else if constexpr (shape::keyed<T> && shape::ordered<T>)
    return std_shape::set;
  else if constexpr (shape::keyed<T> && shape::hashed<T>)
    return std_shape::unordered_set;
  else if constexpr (shape::deque_like<T>)
    return std_shape::deque;
  else if constexpr (shape::list_like<T>)
    return std_shape::list;
  else if constexpr (shape::variant_like<T>)
    return std_shape::variant;
  else if constexpr (shape::smart_pointer_like<T>)
    return std_shape::pointer;
  else
    return std_shape::none;
}

// The error for a type of the shape of a standard type whose rule is opt-in or rejected (the
// header to include, or why).
template <class T>
constexpr void reject_by_shape() {
  constexpr std_shape kShape = shape_of<T>();
  if constexpr (kShape == std_shape::map) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is a std::map or std::multimap, whose rule is opt-in: "
                  "#include <mproc/codec/map.hpp> (before the first use of T with mproc).");
  } else if constexpr (kShape == std_shape::unordered_map) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is a std::unordered_map or std::unordered_multimap, whose "
                  "rule is opt-in: #include <mproc/codec/unordered_map.hpp> (before the first use "
                  "of T with mproc).");
  } else if constexpr (kShape == std_shape::set) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is a std::set or std::multiset, whose rule is opt-in: "
                  "#include <mproc/codec/set.hpp> (before the first use of T with mproc).");
  } else if constexpr (kShape == std_shape::unordered_set) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is a std::unordered_set or std::unordered_multiset, whose "
                  "rule is opt-in: #include <mproc/codec/unordered_set.hpp> (before the first use "
                  "of T with mproc).");
  } else if constexpr (kShape == std_shape::deque) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is a std::deque, whose rule is opt-in: "
                  "#include <mproc/codec/deque.hpp> (before the first use of T with mproc).");
  } else if constexpr (kShape == std_shape::list) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is a std::list, whose rule is opt-in: "
                  "#include <mproc/codec/list.hpp> (before the first use of T with mproc).");
  } else if constexpr (kShape == std_shape::variant) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is a std::variant, whose rule is opt-in: "
                  "#include <mproc/codec/variant.hpp> (before the first use of T with mproc).");
  } else if constexpr (kShape == std_shape::pointer) {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: smart pointers (std::unique_ptr, std::shared_ptr, "
                  "std::weak_ptr) are not encodable; send the pointed-to value, or a "
                  "std::optional of it.");
  }
}

// cereal's forms that only mproc's cereal support understands (<mproc/codec/cereal.hpp>),
// recognised so that the error can name the header: a class's split save/load, save_minimal,
// versioned serialize (found with `Probe`, any archive type: the user's functions are templates
// on it), and cereal's wrappers, declared here (as cereal declares them) so that they are known
// exactly whether or not cereal is included. Without this a wrapper, being trivially copyable,
// would be taken for a bitwise value and its pointer sent.
}  // namespace detail
}  // namespace mproc
namespace cereal {
template <class T>
class NameValuePair;
template <class T>
struct BinaryData;
template <class T>
class SizeTag;
template <class Base>
struct base_class;
template <class Base>
struct virtual_base_class;
}  // namespace cereal
namespace mproc {
namespace detail {
namespace cereal_shape {
struct Probe {
  template <class... Ts>
  void operator()(Ts&&...);
};
template <class T>
concept split_members =
    requires(const T& c, Probe& ar) { c.save(ar); } || requires(T& t, Probe& ar) { t.load(ar); } ||
    requires(const T& c, Probe& ar) { c.save_minimal(ar); } ||
    requires(const T& c, Probe& ar) { c.save(ar, 0u); } ||
    requires(T& t, Probe& ar) { t.load(ar, 0u); } ||
    requires(T& t, Probe& ar) { t.serialize(ar, 0u); };
void save() = delete;  // hide enclosing namespaces' names; argument-dependent lookup still works
void load() = delete;
void save_minimal() = delete;
void serialize() = delete;
template <class T>
concept split_free = requires(const T& c, Probe& ar) { save(ar, c); } ||
                     requires(T& t, Probe& ar) { load(ar, t); } ||
                     requires(const T& c, Probe& ar) { save_minimal(ar, c); } ||
                     requires(T& t, Probe& ar) { serialize(ar, t, 0u); };
template <class T>
inline constexpr bool wrapper = false;
template <class T>
inline constexpr bool wrapper<::cereal::NameValuePair<T>> = true;
template <class T>
inline constexpr bool wrapper<::cereal::BinaryData<T>> = true;
template <class T>
inline constexpr bool wrapper<::cereal::SizeTag<T>> = true;
template <class T>
inline constexpr bool wrapper<::cereal::base_class<T>> = true;
template <class T>
inline constexpr bool wrapper<::cereal::virtual_base_class<T>> = true;
}  // namespace cereal_shape

// True when T is not one of cereal's forms; named so that the failed assertion names T.
template <class T>
inline constexpr bool needs_no_cereal_support_v = false;

template <class T>
constexpr bool uses_cereal_forms() {
  if constexpr (std::is_class_v<T>)
    return cereal_shape::wrapper<std::remove_cv_t<T>> || cereal_shape::split_members<T> ||
           cereal_shape::split_free<T>;
  else
    return false;
}

template <class T>
constexpr void reject_cereal_form() {
  static_assert(needs_no_cereal_support_v<T>,
                "mproc::codec<T>: T uses a form of cereal's that mproc's own archives do not "
                "understand (split save/load, save_minimal/load_minimal, a versioned "
                "serialize(Archive&, std::uint32_t), or one of cereal's wrappers: make_nvp / "
                "CEREAL_NVP, base_class, virtual_base_class, binary_data, make_size_tag). "
                "#include <mproc/codec/cereal.hpp> (needs cereal) before the first use of T with "
                "mproc: every form cereal accepts then works unchanged. (A Boost.Serialization "
                "type, whose serialize(Archive&, unsigned) looks like cereal's versioned form: "
                "MPROC_CODEC_BOOST_SERIALIZATION(T) from <mproc/codec/boost_serialization.hpp>.)");
}

template <class T>
struct reject_unsupported {
  using mproc_codec_rejected_ = void;
  static constexpr void mproc_codec_reject_() {
    if constexpr (shape_of<T>() != std_shape::none) {
      reject_by_shape<T>();
    } else if constexpr (uses_cereal_forms<T>()) {
      reject_cereal_form<T>();
    } else if constexpr (std::is_class_v<T> && std::is_aggregate_v<T>) {
      reject_record<T>();
    } else {
      static_assert(dependent_false_v<T>,
                    "mproc::codec<T>: T is not encodable. Provide a serialize(Archive&) member or "
                    "a free serialize(Archive&, T&), specialise mproc::codec<T>, or use a "
                    "supported type (see mproc/codec.hpp). If T is a container, pair, tuple, "
                    "optional or variant, one of its element types is the one that is not "
                    "encodable.");
    }
  }
};

// No rule for T: the primary template.
template <class T>
struct builtin_codec : reject_unsupported<T> {};

// The first of `Ts` that is not encodable explains why (its own error, e.g. the header to include).
template <class... Ts>
struct explain_first_unencodable {
  static constexpr void explain() {}
};
template <class T, class... Ts>
struct explain_first_unencodable<T, Ts...> {
  static constexpr void explain() {
    if constexpr (!elem_encodable_v<T>)
      (void)check_encodable<std::remove_cv_t<T>>();
    else
      explain_first_unencodable<Ts...>::explain();
  }
};

// A standard template `T` whose element types `Elems` are not all encodable.
template <class T, class... Elems>
struct reject_elements {
  using mproc_codec_rejected_ = void;
  using mproc_codec_elements_ = void;
  static constexpr void mproc_codec_reject_() {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: T is not encodable: it is a container, pair, tuple, optional "
                  "or variant, and one of its element types is the one that is not encodable "
                  "(the error that follows names it and says why).");
    explain_first_unencodable<Elems...>::explain();
  }
};

// The rule `Codec` of the standard template `T` when all its element types are encodable.
template <bool kOk, class Codec, class T, class... Elems>
using codec_if = std::conditional_t<kOk, Codec, reject_elements<T, Elems...>>;

template <class T>
struct reject_pointer {
  using mproc_codec_rejected_ = void;
  static constexpr void mproc_codec_reject_() {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: raw pointers, member pointers and std::nullptr_t cannot be "
                  "encoded: an address means nothing in another process. Send the value it points "
                  "to (std::string for text, std::optional<T> for a nullable value).");
  }
};

template <class T>
struct reject_array {
  using mproc_codec_rejected_ = void;
  static constexpr void mproc_codec_reject_() {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: a C array cannot be a value of its own (it cannot be "
                  "returned); use std::array, or std::string for text. Inside serialize(Archive&) "
                  "C array members are fine.");
  }
};

template <class T>
struct reject_view {
  using mproc_codec_rejected_ = void;
  static constexpr void mproc_codec_reject_() {
    static_assert(
        dependent_false_v<T>,
        "mproc::codec<T>: std::string_view, std::span and std::reference_wrapper refer to "
        "memory they do not own and cannot be decoded; send a std::string, std::vector "
        "or std::array (or the referred value) instead.");
  }
};

template <class T>
struct reject_clock {
  using mproc_codec_rejected_ = void;
  static constexpr void mproc_codec_reject_() {
    static_assert(dependent_false_v<T>,
                  "mproc::codec<T>: a std::chrono::time_point is encodable only for system_clock, "
                  "steady_clock and file_clock, whose epochs are the same in every process; send "
                  "time_since_epoch() or specialise mproc::codec for this time_point.");
  }
};

// ---- serialize() -------------------------------------------------------------------------------

class SizeArchive;

template <class T>
concept has_member_serialize = requires(SizeArchive& ar, T& t) { codec_access::serialize(ar, t); };

namespace adl {
// Hides any `serialize` of enclosing namespaces; argument-dependent lookup still finds the user's.
void serialize() = delete;

template <class T>
concept has_free_serialize = requires(SizeArchive& ar, T& t) { serialize(ar, t); };

template <class Archive, class T>
void call_serialize(Archive& ar, T& t) {
  serialize(ar, t);
}
}  // namespace adl

template <class T>
concept has_serialize = has_member_serialize<T> || adl::has_free_serialize<T>;

// A member serialize wins over a free one.
template <class Archive, class T>
void invoke_serialize(Archive& ar, T& t) {
  if constexpr (has_member_serialize<T>)
    codec_access::serialize(ar, t);
  else
    adl::call_serialize(ar, t);
}

// True when `Member` is encodable; named so that the failed assertion names the member's type.
template <class Member>
inline constexpr bool serialize_member_is_encodable_v = is_encodable_v<Member>;

// The error for a member passed to `ar(...)` whose type is not encodable: names that type (one
// error; encoding that type alone, e.g. with to_bytes, says why it is not encodable).
template <class Member>
constexpr void reject_serialize_member() {
  if constexpr (shape_of<Member>() != std_shape::none) {
    reject_by_shape<Member>();  // e.g. a std::map member without <mproc/codec/map.hpp>
  } else if constexpr (uses_cereal_forms<Member>()) {
    reject_cereal_form<Member>();  // e.g. CEREAL_NVP(x) without <mproc/codec/cereal.hpp>
  } else {
    static_assert(serialize_member_is_encodable_v<Member>,
                  "mproc::codec<T>: T is not encodable, and a serialize(Archive&) passes a member "
                  "of type T to ar(...) (serialize_member_is_encodable_v<T> names it). Give that "
                  "type a serialize(Archive&) or an mproc::codec specialisation, or use a "
                  "supported type (see mproc/codec.hpp).");
    // A container (pair, optional, ...) member: its element type says why.
    if constexpr (requires { typename codec<Member>::mproc_codec_elements_; })
      codec<Member>::mproc_codec_reject_();
  }
}

// The three archives a `serialize(Archive&)` is called with: one counts bytes, one writes them,
// one reads them. Each accepts encodable values and C arrays of them.
class SizeArchive {
 public:
  using is_loading = std::false_type;
  using is_saving = std::true_type;

  template <class... Ts>
  void operator()(const Ts&... vs) {
    fields_ += sizeof...(Ts);
    ((bytes_ += field_size(vs)), ...);
  }

  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t fields() const noexcept { return fields_; }

 private:
  template <class T>
  static std::size_t field_size(const T& v) {
    if constexpr (std::is_array_v<T>) {
      if constexpr (bitwise_v<std::remove_cv_t<std::remove_all_extents_t<T>>>) {
        return sizeof(T);
      } else {
        std::size_t n = 0;
        for (const auto& e : v) n += field_size(e);
        return n;
      }
    } else if constexpr (cereal_shape::wrapper<std::remove_cv_t<T>> || !is_encodable_v<T>) {
      reject_serialize_member<T>();
      return 0;
    } else {
      return mproc::encoded_size(v);
    }
  }

  std::size_t bytes_ = 0;
  std::size_t fields_ = 0;
};

class EncodeArchive {
 public:
  using is_loading = std::false_type;
  using is_saving = std::true_type;

  explicit EncodeArchive(Writer& w) noexcept : w_(&w) {}

  template <class... Ts>
  void operator()(const Ts&... vs) {
    fields_ += sizeof...(Ts);
    (field(vs), ...);
  }

  std::size_t fields() const noexcept { return fields_; }

 private:
  template <class T>
  void field(const T& v) {
    if constexpr (std::is_array_v<T>) {
      if constexpr (bitwise_v<std::remove_cv_t<std::remove_all_extents_t<T>>>) {
        w_->write(std::addressof(v), sizeof(T));
      } else {
        for (const auto& e : v) field(e);
      }
    } else if constexpr (cereal_shape::wrapper<std::remove_cv_t<T>> || !is_encodable_v<T>) {
      reject_serialize_member<T>();
    } else {
      mproc::encode(*w_, v);
    }
  }

  Writer* w_;
  std::size_t fields_ = 0;
};

class DecodeArchive {
 public:
  using is_loading = std::true_type;
  using is_saving = std::false_type;

  explicit DecodeArchive(Reader& r) noexcept : r_(&r) {}

  template <class... Ts>
  void operator()(Ts&... vs) {
    fields_ += sizeof...(Ts);
    (field(vs), ...);
  }

  std::size_t fields() const noexcept { return fields_; }

 private:
  template <class T>
  void field(T& v) {
    if constexpr (std::is_array_v<T>) {
      if constexpr (bitwise_v<std::remove_cv_t<std::remove_all_extents_t<T>>>) {
        r_->read(std::addressof(v), sizeof(T));
      } else {
        for (auto& e : v) field(e);
      }
    } else if constexpr (cereal_shape::wrapper<std::remove_cv_t<T>> || !is_encodable_v<T>) {
      reject_serialize_member<T>();
    } else {
      v = mproc::decode<T>(*r_);
    }
  }

  Reader* r_;
  std::size_t fields_ = 0;
};

template <class T>
struct serialize_codec {
  static constexpr std::size_t min_size = 1;

  static std::size_t size(const T& v) {
    SizeArchive ar;
    invoke_serialize(ar, const_cast<T&>(v));
    return ar.fields() == 0 ? 1 : ar.bytes();
  }
  static void encode(Writer& w, const T& v) {
    EncodeArchive ar(w);
    invoke_serialize(ar, const_cast<T&>(v));
    if (ar.fields() == 0) write_pad(w);
  }
  static T decode(Reader& r) {
    if constexpr (std::is_default_constructible_v<T>) {
      T v{};
      DecodeArchive ar(r);
      invoke_serialize(ar, v);
      if (ar.fields() == 0) read_pad(r);
      return v;
    } else {
      static_assert(dependent_false_v<T>,
                    "mproc::codec<T>: a type decoded through serialize(Archive&) must be "
                    "default-constructible (decode builds a T{} and fills it); add a default "
                    "constructor or specialise mproc::codec<T>.");
      unreachable();
    }
  }
};

// ---- bitwise: arithmetic, enums, trivially copyable classes ------------------------------------

template <class T>
struct bitwise_codec {
  static constexpr bool bitwise = true;
  static constexpr std::size_t min_size = sizeof(T);

  static constexpr std::size_t size(const T&) noexcept { return sizeof(T); }
  static void encode(Writer& w, const T& v) { w.write(std::addressof(v), sizeof(T)); }
  static T decode(Reader& r) {
    if constexpr (std::is_default_constructible_v<T>) {
      T v;
      r.read(std::addressof(v), sizeof(T));
      return v;
    } else {
      std::array<std::byte, sizeof(T)> b;
      r.read(b.data(), sizeof(T));
      return std::bit_cast<T>(b);
    }
  }
};

// The rule an adapter header adds for class types that no rule of this header covers but a
// library's own convention does: <mproc/codec/cereal.hpp> specialises it (with a requires-clause)
// as `{ using type = <the codec>; }` for the types cereal can serialize. It wins over serialize()
// (with cereal present, cereal's dispatch is the one that understands every form of it) and over
// the bitwise copy, never over a standard-template rule or a user's specialisation of codec<T>.
template <class T, class Enable = void>
struct adapter_codec {};

template <class T>
concept has_adapter_codec = requires { typename adapter_codec<T>::type; };

// Which generic rule applies to a type that no standard-template rule matched.
enum class rule { none, pointer, array, adapter, serialize, bitwise };

template <class T>
constexpr rule rule_of() {
  if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T> || std::is_null_pointer_v<T>)
    return rule::pointer;
  else if constexpr (std::is_array_v<T>)
    return rule::array;
  else if constexpr ((std::is_class_v<T> || std::is_union_v<T>)&&has_adapter_codec<T>)
    return rule::adapter;
  else if constexpr (std::is_class_v<T> && !has_serialize<T> && uses_cereal_forms<T>())
    return rule::none;  // written for cereal: <mproc/codec/cereal.hpp> (see reject_unsupported)
  else if constexpr ((std::is_class_v<T> || std::is_union_v<T> ||
                      std::is_enum_v<T>)&&has_serialize<T>)
    return rule::serialize;
  else if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T> ||
                     ((std::is_class_v<T> || std::is_union_v<T>)&&std::is_trivially_copyable_v<T>))
    return rule::bitwise;
  else
    return rule::none;
}

template <class T>
  requires(rule_of<T>() == rule::pointer)
struct builtin_codec<T> : reject_pointer<T> {};

template <class T>
  requires(rule_of<T>() == rule::array)
struct builtin_codec<T> : reject_array<T> {};

template <class T>
  requires(rule_of<T>() == rule::adapter)
struct builtin_codec<T> : adapter_codec<T>::type {};

template <class T>
  requires(rule_of<T>() == rule::serialize)
struct builtin_codec<T> : serialize_codec<T> {};

template <class T>
  requires(rule_of<T>() == rule::bitwise)
struct builtin_codec<T> : bitwise_codec<T> {};

template <>
struct builtin_codec<bool> {
  static constexpr std::size_t min_size = 1;
  static constexpr std::size_t size(bool) noexcept { return 1; }
  static void encode(Writer& w, bool v) { w.write_value(static_cast<std::uint8_t>(v ? 1 : 0)); }
  static bool decode(Reader& r) { return read_flag(r, "a bool is neither 0 nor 1"); }
};

// ---- standard templates that are rejected ------------------------------------------------------

template <class C, class Tr>
struct builtin_codec<std::basic_string_view<C, Tr>> : reject_view<std::basic_string_view<C, Tr>> {};
template <class T, std::size_t E>
struct builtin_codec<std::span<T, E>> : reject_view<std::span<T, E>> {};
template <class T>
struct builtin_codec<std::reference_wrapper<T>> : reject_view<std::reference_wrapper<T>> {};

// ---- strings -----------------------------------------------------------------------------------

template <class S>
struct string_codec {
  using C = typename S::value_type;
  static constexpr std::size_t min_size = kCountBytes;

  static std::size_t size(const S& s) noexcept { return kCountBytes + s.size() * sizeof(C); }
  static void encode(Writer& w, const S& s) {
    write_count(w, s.size());
    w.write(s.data(), s.size() * sizeof(C));
  }
  static S decode(Reader& r) {
    const std::size_t n = read_count(r, sizeof(C));
    S s;
    read_block(r, s, n);
    return s;
  }
};

// ---- sequences ---------------------------------------------------------------------------------

template <class Seq>
struct sequence_codec {
  using T = typename Seq::value_type;
  static constexpr bool kBlock = bitwise_v<T> && requires(const Seq& s) { s.data(); };
  static constexpr std::size_t min_size = kCountBytes;

  static std::size_t size(const Seq& s) {
    if constexpr (bitwise_v<T>) {
      return kCountBytes + s.size() * sizeof(T);
    } else {
      std::size_t n = kCountBytes;
      for (const auto& e : s) n += codec<T>::size(e);
      return n;
    }
  }
  static void encode(Writer& w, const Seq& s) {
    write_count(w, s.size());
    if constexpr (kBlock) {
      w.write(s.data(), s.size() * sizeof(T));
    } else {
      for (const auto& e : s) codec<T>::encode(w, e);
    }
  }
  static Seq decode(Reader& r) {
    const std::size_t n = read_count(r, min_size_v<T>);
    Seq s;
    if constexpr (kBlock && std::is_default_constructible_v<T>) {
      read_block(r, s, n);
    } else {
      if constexpr (requires { s.reserve(n); }) s.reserve(reserve_count(r, n, sizeof(T)));
      for (std::size_t i = 0; i < n; ++i) s.push_back(codec<T>::decode(r));
    }
    return s;
  }
};

template <class C, class Tr, class A>
struct builtin_codec<std::basic_string<C, Tr, A>>
    : std::conditional_t<std::is_arithmetic_v<C>, string_codec<std::basic_string<C, Tr, A>>,
                         reject_unsupported<std::basic_string<C, Tr, A>>> {};
template <class T, class A>
struct builtin_codec<std::vector<T, A>>
    : codec_if<elem_encodable_v<T>, sequence_codec<std::vector<T, A>>, std::vector<T, A>, T> {};

// std::vector<bool>: the count, then one byte (0 or 1) per element, moved in chunks.
template <class A>
struct builtin_codec<std::vector<bool, A>> {
  using V = std::vector<bool, A>;
  static constexpr std::size_t min_size = kCountBytes;
  static constexpr std::size_t kChunk = 256;

  static std::size_t size(const V& v) noexcept { return kCountBytes + v.size(); }
  static void encode(Writer& w, const V& v) {
    write_count(w, v.size());
    std::array<std::uint8_t, kChunk> buf;
    std::size_t i = 0;
    while (i < v.size()) {
      const std::size_t k = smaller(kChunk, v.size() - i);
      for (std::size_t j = 0; j < k; ++j) buf[j] = v[i + j] ? 1 : 0;
      w.write(buf.data(), k);
      i += k;
    }
  }
  static V decode(Reader& r) {
    const std::size_t n = read_count(r, 1);
    V v;
    v.reserve(smaller(n, r.buffered()));  // then growth follows the bytes that arrive
    std::array<std::uint8_t, kChunk> buf;
    std::size_t i = 0;
    while (i < n) {
      const std::size_t k = smaller(kChunk, n - i);
      r.read(buf.data(), k);
      for (std::size_t j = 0; j < k; ++j) {
        if (buf[j] > 1) throw DecodeError("mproc: corrupt message: a bool is neither 0 nor 1");
        v.push_back(buf[j] != 0);
      }
      i += k;
    }
    return v;
  }
};

// std::array<T, N>: the elements, no count; N == 0 is one 0 byte.
template <class T, std::size_t N>
struct array_codec {
  using Arr = std::array<T, N>;
  static constexpr bool bitwise = N > 0 && bitwise_v<T> && sizeof(Arr) == N * sizeof(T);
  static constexpr std::size_t min_size = N == 0 ? 1 : N * min_size_v<T>;

  static std::size_t size(const Arr& a) {
    if constexpr (N == 0) {
      return 1;
    } else if constexpr (bitwise) {
      return sizeof(Arr);
    } else {
      std::size_t n = 0;
      for (const auto& e : a) n += codec<T>::size(e);
      return n;
    }
  }
  static void encode(Writer& w, const Arr& a) {
    if constexpr (N == 0) {
      write_pad(w);
    } else if constexpr (bitwise) {
      w.write(a.data(), sizeof(Arr));
    } else {
      for (const auto& e : a) codec<T>::encode(w, e);
    }
  }
  static Arr decode(Reader& r) {
    if constexpr (N == 0) {
      read_pad(r);
      return Arr{};
    } else if constexpr (bitwise && std::is_default_constructible_v<T>) {
      Arr a;
      r.read(a.data(), sizeof(Arr));
      return a;
    } else if constexpr (std::is_default_constructible_v<T>) {
      Arr a;
      for (auto& e : a) e = codec<T>::decode(r);
      return a;
    } else {
      // Braced initialisation evaluates the decodes left to right.
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return Arr{{(static_cast<void>(I), codec<T>::decode(r))...}};
      }(std::make_index_sequence<N>{});
    }
  }
};

// ---- optional, tuple, pair ----------------------------------------------------------------

template <class T>
struct optional_codec {
  static constexpr std::size_t min_size = 1;

  static std::size_t size(const std::optional<T>& o) {
    return 1 + (o ? elem_codec<T>::size(*o) : 0);
  }
  static void encode(Writer& w, const std::optional<T>& o) {
    w.write_value(static_cast<std::uint8_t>(o ? 1 : 0));
    if (o) elem_codec<T>::encode(w, *o);
  }
  static std::optional<T> decode(Reader& r) {
    if (!read_flag(r, "an optional's flag is neither 0 nor 1")) return std::nullopt;
    return std::optional<T>(std::in_place, elem_codec<T>::decode(r));
  }
};

template <class... Ts>
struct tuple_codec {
  using Tup = std::tuple<Ts...>;
  static constexpr std::size_t min_size =
      sizeof...(Ts) == 0 ? 1 : (std::size_t{0} + ... + min_size_v<std::remove_cv_t<Ts>>);

  static std::size_t size(const Tup& t) {
    if constexpr (sizeof...(Ts) == 0) {
      return 1;
    } else {
      return std::apply([](const auto&... x) { return (elem_codec<Ts>::size(x) + ...); }, t);
    }
  }
  static void encode(Writer& w, const Tup& t) {
    if constexpr (sizeof...(Ts) == 0) {
      write_pad(w);
    } else {
      std::apply([&w](const auto&... x) { (elem_codec<Ts>::encode(w, x), ...); }, t);
    }
  }
  static Tup decode(Reader& r) {
    if constexpr (sizeof...(Ts) == 0) {
      read_pad(r);
      return Tup{};
    } else {
      // Braced initialisation evaluates the decodes left to right.
      return Tup{elem_codec<Ts>::decode(r)...};
    }
  }
};

template <class A, class B>
struct pair_codec {
  using P = std::pair<A, B>;
  static constexpr std::size_t min_size =
      min_size_v<std::remove_cv_t<A>> + min_size_v<std::remove_cv_t<B>>;

  static std::size_t size(const P& p) {
    return elem_codec<A>::size(p.first) + elem_codec<B>::size(p.second);
  }
  static void encode(Writer& w, const P& p) {
    elem_codec<A>::encode(w, p.first);
    elem_codec<B>::encode(w, p.second);
  }
  static P decode(Reader& r) {
    // Braced initialisation evaluates the decodes left to right.
    return P{elem_codec<A>::decode(r), elem_codec<B>::decode(r)};
  }
};

// ---- chrono ------------------------------------------------------------------------------------

template <class Rep, class Period>
struct duration_codec {
  using D = std::chrono::duration<Rep, Period>;
  static constexpr bool bitwise = bitwise_v<Rep> && sizeof(D) == sizeof(Rep);
  static constexpr std::size_t min_size = min_size_v<Rep>;

  static std::size_t size(const D& d) { return codec<Rep>::size(d.count()); }
  static void encode(Writer& w, const D& d) { codec<Rep>::encode(w, d.count()); }
  static D decode(Reader& r) { return D(codec<Rep>::decode(r)); }
};

template <class Clock>
inline constexpr bool process_wide_clock_v = std::is_same_v<Clock, std::chrono::system_clock> ||
                                             std::is_same_v<Clock, std::chrono::steady_clock> ||
                                             std::is_same_v<Clock, std::chrono::file_clock>;

template <class Clock, class Dur>
struct time_point_codec {
  using TP = std::chrono::time_point<Clock, Dur>;
  static constexpr bool bitwise = bitwise_v<Dur> && sizeof(TP) == sizeof(Dur);
  static constexpr std::size_t min_size = min_size_v<Dur>;

  static std::size_t size(const TP& t) { return codec<Dur>::size(t.time_since_epoch()); }
  static void encode(Writer& w, const TP& t) { codec<Dur>::encode(w, t.time_since_epoch()); }
  static TP decode(Reader& r) { return TP(codec<Dur>::decode(r)); }
};

template <class T, std::size_t N>
struct builtin_codec<std::array<T, N>>
    : codec_if<elem_encodable_v<T>, array_codec<T, N>, std::array<T, N>, T> {};
template <class T>
struct builtin_codec<std::optional<T>>
    : codec_if<elem_encodable_v<T>, optional_codec<T>, std::optional<T>, T> {};
template <class... Ts>
struct builtin_codec<std::tuple<Ts...>>
    : codec_if<(elem_encodable_v<Ts> && ...), tuple_codec<Ts...>, std::tuple<Ts...>, Ts...> {};
template <class A, class B>
struct builtin_codec<std::pair<A, B>> : codec_if<elem_encodable_v<A> && elem_encodable_v<B>,
                                                 pair_codec<A, B>, std::pair<A, B>, A, B> {};
template <class Rep, class Period>
struct builtin_codec<std::chrono::duration<Rep, Period>>
    : codec_if<elem_encodable_v<Rep>, duration_codec<Rep, Period>,
               std::chrono::duration<Rep, Period>, Rep> {};
template <class Clock, class Dur>
struct builtin_codec<std::chrono::time_point<Clock, Dur>>
    : std::conditional_t<process_wide_clock_v<Clock>,
                         codec_if<elem_encodable_v<Dur>, time_point_codec<Clock, Dur>,
                                  std::chrono::time_point<Clock, Dur>, Dur>,
                         reject_clock<std::chrono::time_point<Clock, Dur>>> {};

}  // namespace detail
}  // namespace mproc
