// mproc/detail/codec_associative.hpp — the codec rules shared by the opt-in headers of the
// associative containers (<mproc/codec/map.hpp>, set.hpp, unordered_map.hpp, unordered_set.hpp).
//
// No stability promise. Wire format: mproc/codec.hpp (maps: the count, then key, value, key,
// value, ... in iteration order; sets: the count, then each key). A decoder reserves at most what
// the bytes received justify (`reserve_count`) and rejects a duplicate key in a container with
// unique keys (DecodeError).
#pragma once

#include <cstddef>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <type_traits>
#include <utility>

namespace mproc::detail {

template <class M, bool kUnique>
struct map_codec {
  using K = typename M::key_type;
  using V = typename M::mapped_type;
  static constexpr std::size_t min_size = kCountBytes;

  static std::size_t size(const M& m) {
    if constexpr (bitwise_v<K> && bitwise_v<std::remove_cv_t<V>>) {
      return kCountBytes + m.size() * (sizeof(K) + sizeof(V));
    } else {
      std::size_t n = kCountBytes;
      for (const auto& [k, v] : m) n += codec<K>::size(k) + elem_codec<V>::size(v);
      return n;
    }
  }
  static void encode(Writer& w, const M& m) {
    write_count(w, m.size());
    for (const auto& [k, v] : m) {
      codec<K>::encode(w, k);
      elem_codec<V>::encode(w, v);
    }
  }
  static M decode(Reader& r) {
    const std::size_t n = read_count(r, min_size_v<K> + min_size_v<std::remove_cv_t<V>>);
    M m;
    if constexpr (requires { m.reserve(n); }) m.reserve(reserve_count(r, n, sizeof(void*)));
    for (std::size_t i = 0; i < n; ++i) {
      K k = codec<K>::decode(r);
      V v = elem_codec<V>::decode(r);
      const std::size_t before = m.size();
      m.emplace_hint(m.end(), std::move(k), std::move(v));
      if (kUnique && m.size() == before)
        throw DecodeError("mproc: corrupt message: a duplicate key in a map");
    }
    return m;
  }
};

template <class S, bool kUnique>
struct set_codec {
  using K = typename S::key_type;
  static constexpr std::size_t min_size = kCountBytes;

  static std::size_t size(const S& s) {
    if constexpr (bitwise_v<K>) {
      return kCountBytes + s.size() * sizeof(K);
    } else {
      std::size_t n = kCountBytes;
      for (const auto& k : s) n += codec<K>::size(k);
      return n;
    }
  }
  static void encode(Writer& w, const S& s) {
    write_count(w, s.size());
    for (const auto& k : s) codec<K>::encode(w, k);
  }
  static S decode(Reader& r) {
    const std::size_t n = read_count(r, min_size_v<K>);
    S s;
    if constexpr (requires { s.reserve(n); }) s.reserve(reserve_count(r, n, sizeof(void*)));
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t before = s.size();
      s.emplace_hint(s.end(), codec<K>::decode(r));
      if (kUnique && s.size() == before)
        throw DecodeError("mproc: corrupt message: a duplicate key in a set");
    }
    return s;
  }
};

template <class M, bool kUnique>
using map_codec_if =
    codec_if<elem_encodable_v<typename M::key_type> && elem_encodable_v<typename M::mapped_type>,
             map_codec<M, kUnique>, M, typename M::key_type, typename M::mapped_type>;
template <class S, bool kUnique>
using set_codec_if = codec_if<elem_encodable_v<typename S::key_type>, set_codec<S, kUnique>, S,
                              typename S::key_type>;

}  // namespace mproc::detail
