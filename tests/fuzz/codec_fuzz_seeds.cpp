// Writes the codec fuzzer's seed corpus: one file per fuzzed type, holding the type's number and
// the encoding of a sample value. `codec_fuzz_seeds tests/fuzz/corpus` regenerates the committed
// seeds after a change of the wire format.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "codec_fuzz_types.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  for (unsigned i = 0; i < codec_fuzz::kTypes; ++i) {
    codec_fuzz::with_type(i, [&]<class T>(codec_fuzz::Case<T>, const T& sample) {
      std::vector<std::byte> bytes = mproc::to_bytes(sample);
      bytes.insert(bytes.begin(), static_cast<std::byte>(i));
      const std::string path = std::string(argv[1]) + "/seed-" + std::to_string(i);
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
      if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        std::exit(1);
      }
    });
  }
  return 0;
}
