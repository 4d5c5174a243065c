// mproc/codec/unordered_set.hpp — makes std::unordered_set and std::unordered_multiset encodable by
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
#include <unordered_set>

namespace mproc::detail {

template <class K, class H, class E, class A>
struct builtin_codec<std::unordered_set<K, H, E, A>>
    : set_codec_if<std::unordered_set<K, H, E, A>, true> {};
template <class K, class H, class E, class A>
struct builtin_codec<std::unordered_multiset<K, H, E, A>>
    : set_codec_if<std::unordered_multiset<K, H, E, A>, false> {};

}  // namespace mproc::detail
