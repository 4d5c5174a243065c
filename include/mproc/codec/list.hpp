// mproc/codec/list.hpp — makes std::list encodable by mproc::codec.
//
// Opt-in, as cereal's `cereal/types/*.hpp`: <mproc/codec.hpp> does not include the standard
// containers it does not need, so that a file which sends none of them does not compile them.
// Include this header before the first use of such a type with mproc (a Queue<T>, send<T>,
// to_bytes), in every file that encodes or decodes one; without it, the codec rejects the type at
// compile time with an error naming this header. Wire format: mproc/codec.hpp.
#pragma once

#include <list>
#include <mproc/codec.hpp>

namespace mproc::detail {

template <class T, class A>
struct builtin_codec<std::list<T, A>>
    : codec_if<elem_encodable_v<T>, sequence_codec<std::list<T, A>>, std::list<T, A>, T> {};

}  // namespace mproc::detail
