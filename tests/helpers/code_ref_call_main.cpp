// Resolves a code address sent by another program and calls it, as a freshly executed image of a
// start method would (code_ref_image_test). Usage:
//   code_ref_call_main <records hex> <code ref hex> <argument> [<path fragment>]
// <records hex>: mproc::to_bytes of the sender's std::vector<ImageRecord>; <code ref hex>: of a
// CodeRef naming a function int(int). Prints "result N" and exits 0, or prints
// "error <type>: <what()>" and exits 3. With a path fragment it then prints "still-loaded 1" if an
// image whose path contains it is loaded after the failure ("still-loaded 0" otherwise).
#include <link.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/errors.hpp>
#include <string>
#include <vector>

namespace {

std::vector<std::byte> from_hex(const char* s) {
  std::vector<std::byte> out;
  const std::size_t n = std::strlen(s) / 2;
  for (std::size_t i = 0; i < n; ++i) {
    unsigned v = 0;
    if (std::sscanf(s + 2 * i, "%2x", &v) != 1) std::exit(2);
    out.push_back(static_cast<std::byte>(v));
  }
  return out;
}

int loaded_with(dl_phdr_info* info, std::size_t, void* fragment) {
  const char* name = info->dlpi_name;
  return name != nullptr && std::strstr(name, static_cast<const char*>(fragment)) != nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  using mproc::detail::CodeRef;
  using mproc::detail::ImageRecord;
  int rc = 0;
  try {
    const auto records = mproc::from_bytes<std::vector<ImageRecord>>(from_hex(argv[1]));
    const auto ref = mproc::from_bytes<CodeRef>(from_hex(argv[2]));
    mproc::detail::learn_images(records);
    const void* code = mproc::detail::resolve_code(ref);
    const auto fn = reinterpret_cast<int (*)(int)>(const_cast<void*>(code));
    if (mproc::detail::resolve_code(ref) != code) {  // again: from the receiver's cache
      std::printf("error: a second resolution differs\n");
      return 4;
    }
    std::printf("result %d\n", fn(std::atoi(argv[3])));
  } catch (const mproc::ProcessError& e) {
    std::printf("error ProcessError: %s\n", e.what());
    rc = 3;
  } catch (const mproc::DecodeError& e) {
    std::printf("error DecodeError: %s\n", e.what());
    rc = 3;
  } catch (const std::exception& e) {
    std::printf("error other: %s\n", e.what());
    rc = 3;
  }
  if (rc != 0 && argc > 4) {
    std::printf("still-loaded %d\n", dl_iterate_phdr(loaded_with, argv[4]));
  }
  return rc;
}
