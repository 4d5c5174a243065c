// mproc/codec/variant.hpp — makes std::variant and std::monostate encodable by mproc::codec.
//
// Opt-in, as cereal's `cereal/types/*.hpp`: <mproc/codec.hpp> does not include the standard
// containers it does not need, so that a file which sends none of them does not compile them.
// Include this header before the first use of such a type with mproc (a Queue<T>, send<T>,
// to_bytes), in every file that encodes or decodes one; without it, the codec rejects the type at
// compile time with an error naming this header. Wire format: mproc/codec.hpp.
//
// std::monostate: without this header it is an empty trivially copyable class, one object byte on
// the wire as here, but neither written as 0 nor checked when decoded; send it (or a type holding
// it) from files that include this header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace mproc::detail {

template <class... Ts>
struct variant_codec {
  using V = std::variant<Ts...>;
  using index_t = std::conditional_t<(sizeof...(Ts) < 256), std::uint8_t, std::uint32_t>;
  static constexpr std::size_t min_size = sizeof(index_t) + [] {
    std::size_t m = static_cast<std::size_t>(-1);
    ((m = smaller(m, min_size_v<std::remove_cv_t<Ts>>)), ...);
    return m;
  }();

  static void check_valued(const V& v) {
    if (v.valueless_by_exception())
      throw ValueError("mproc: a valueless std::variant cannot be encoded");
  }
  static std::size_t size(const V& v) {
    check_valued(v);
    return sizeof(index_t) +
           std::visit([](const auto& x) { return elem_codec<decltype(x)>::size(x); }, v);
  }
  static void encode(Writer& w, const V& v) {
    check_valued(v);
    w.write_value(static_cast<index_t>(v.index()));
    std::visit([&w](const auto& x) { elem_codec<decltype(x)>::encode(w, x); }, v);
  }
  template <std::size_t I>
  static V decode_alternative(Reader& r) {
    return V(std::in_place_index<I>, elem_codec<std::variant_alternative_t<I, V>>::decode(r));
  }
  static V decode(Reader& r) {
    static constexpr auto kDecoders = []<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<V (*)(Reader&), sizeof...(Ts)>{&decode_alternative<I>...};
    }(std::index_sequence_for<Ts...>{});
    const auto i = r.read_value<index_t>();
    if (i >= sizeof...(Ts))
      throw DecodeError("mproc: corrupt message: variant index " + std::to_string(i) +
                        " is out of range (" + std::to_string(sizeof...(Ts)) + " alternatives)");
    return kDecoders[i](r);
  }
};

template <class... Ts>
struct builtin_codec<std::variant<Ts...>>
    : codec_if<(elem_encodable_v<Ts> && ...), variant_codec<Ts...>, std::variant<Ts...>, Ts...> {};

template <>
struct builtin_codec<std::monostate> {
  static constexpr std::size_t min_size = 1;
  static constexpr std::size_t size(std::monostate) noexcept { return 1; }
  static void encode(Writer& w, std::monostate) { write_pad(w); }
  static std::monostate decode(Reader& r) {
    read_pad(r);
    return {};
  }
};

}  // namespace mproc::detail
