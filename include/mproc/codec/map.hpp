// mproc/codec/map.hpp — makes std::map and std::multimap encodable by mproc::codec.
//
// Opt-in, as cereal's `cereal/types/*.hpp`: <mproc/codec.hpp> does not include the standard
// containers it does not need, so that a file which sends none of them does not compile them.
// Include this header before the first use of such a type with mproc (a Queue<T>, send<T>,
// to_bytes), in every file that encodes or decodes one; without it, the codec rejects the type at
// compile time with an error naming this header. Wire format: mproc/codec.hpp.
#pragma once

#include <map>
#include <mproc/codec.hpp>
#include <mproc/detail/codec_associative.hpp>

namespace mproc::detail {

template <class K, class V, class C, class A>
struct builtin_codec<std::map<K, V, C, A>> : map_codec_if<std::map<K, V, C, A>, true> {};
template <class K, class V, class C, class A>
struct builtin_codec<std::multimap<K, V, C, A>> : map_codec_if<std::multimap<K, V, C, A>, false> {};

}  // namespace mproc::detail
