// mproc/codec/unordered_map.hpp — makes std::unordered_map and std::unordered_multimap encodable by
// mproc::codec.
//
// Opt-in, as cereal's `cereal/types/*.hpp`: <mproc/codec.hpp> does not include the standard
// containers it does not need, so that a file which sends none of them does not compile them.
// Include this header before the first use of such a type with mproc (a Queue<T>, send<T>,
// to_bytes), in every file that encodes or decodes one; without it, the codec rejects the type at
// compile time with an error naming this header. Wire format: mproc/codec.hpp.
#pragma once

#include <mproc/codec.hpp>
#include <mproc/detail/codec_associative.hpp>
#include <unordered_map>

namespace mproc::detail {

template <class K, class V, class H, class E, class A>
struct builtin_codec<std::unordered_map<K, V, H, E, A>>
    : map_codec_if<std::unordered_map<K, V, H, E, A>, true> {};
template <class K, class V, class H, class E, class A>
struct builtin_codec<std::unordered_multimap<K, V, H, E, A>>
    : map_codec_if<std::unordered_multimap<K, V, H, E, A>, false> {};

}  // namespace mproc::detail
