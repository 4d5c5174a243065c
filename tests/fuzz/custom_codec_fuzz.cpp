// libFuzzer target for a user's codec: the `mproc::codec` specialisations of the example
// examples/custom_codec.cpp (money::Decimal, geo::Polygon<C>; examples/custom_codec.hpp), alone and
// inside the codec's containers, checked against every property of mproc/testing/codec_fuzz.hpp
// (docs/codec.md, "Fuzzing your codec"). This file is all a user needs for their own types.
#include <mproc/testing/codec_fuzz.hpp>

#include "custom_codec_fuzz_types.hpp"

MPROC_CODEC_FUZZ_TARGET(custom_codec_fuzz::Types)
