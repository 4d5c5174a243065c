// libFuzzer target for types written for cereal, sent through <mproc/codec/cereal.hpp>
// (cereal_fuzz_types.hpp), checked against every property of mproc/testing/codec_fuzz.hpp.
#include <mproc/testing/codec_fuzz.hpp>

#include "cereal_fuzz_types.hpp"

MPROC_CODEC_FUZZ_TARGET(cereal_fuzz::Types)
