// Writes a fuzz target's seed corpus: one file per fuzzed type, holding the type's number and the
// encoding of a sample value (mproc::testing::codec_fuzz_seed). After a change of the wire format:
//   codec_fuzz_seeds tests/fuzz/corpus                  (codec_fuzz, codec_fuzz_types.hpp)
//   codec_fuzz_seeds --custom tests/fuzz/custom_corpus  (custom_codec_fuzz,
//   custom_codec_fuzz_types.hpp)
//   codec_fuzz_seeds --cereal tests/fuzz/cereal_corpus  (cereal_fuzz, cereal_fuzz_types.hpp)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cereal_fuzz_types.hpp"
#include "codec_fuzz_types.hpp"
#include "custom_codec_fuzz_types.hpp"

namespace {

template <class List, class Samples>
void write_seeds(const std::string& dir, const Samples& samples) {
  std::set<unsigned> written;
  std::apply(
      [&](const auto&... sample) {
        (
            [&] {
              const std::vector<std::uint8_t> seed = mproc::testing::codec_fuzz_seed<List>(sample);
              const std::string path = dir + "/seed-" + std::to_string(seed[0]);
              std::ofstream out(path, std::ios::binary);
              out.write(reinterpret_cast<const char*>(seed.data()),
                        static_cast<std::streamsize>(seed.size()));
              if (!out) {
                std::fprintf(stderr, "cannot write %s\n", path.c_str());
                std::exit(1);
              }
              written.insert(seed[0]);
            }(),
            ...);
      },
      samples);
  if (written.size() != List::size) {
    std::fprintf(stderr, "%zu types but %zu distinct samples\n", List::size, written.size());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool custom = argc == 3 && std::strcmp(argv[1], "--custom") == 0;
  const bool cereal = argc == 3 && std::strcmp(argv[1], "--cereal") == 0;
  if (argc != 2 && !custom && !cereal) {
    std::fprintf(stderr, "usage: %s [--custom|--cereal] <corpus-dir>\n", argv[0]);
    return 2;
  }
  if (custom)
    write_seeds<custom_codec_fuzz::Types>(argv[2], custom_codec_fuzz::samples());
  else if (cereal)
    write_seeds<cereal_fuzz::Types>(argv[2], cereal_fuzz::samples());
  else
    write_seeds<codec_fuzz::Types>(argv[1], codec_fuzz::samples());
  return 0;
}
