// posix/loaded_images.hpp — the images (main executable, shared libraries) loaded in this process,
// as the dynamic loader lists them (dl_iterate_phdr), their identities read from memory (GNU
// build-id notes), and the loader calls that load, pin and unload them (dlopen, dlinfo, dlclose).
//
// Same convention as the rest of src/posix: noexcept where nothing allocates, errno never left for
// the caller. The loader reports its failures as text (dlerror), not as an errno: the functions
// that call it return false and give that text in `error`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

namespace mproc::detail {

// One loaded image, as seen by dl_iterate_phdr. Addresses are absolute in this process.
struct LoadedImage {
  std::uintptr_t base = 0;     // the load bias (dlpi_addr); offsets are counted from it
  std::uintptr_t code_lo = 0;  // [code_lo, code_hi): the hull of its executable PT_LOAD segments
  std::uintptr_t code_hi = 0;
  bool main = false;     // the main executable (dl_iterate_phdr's first object)
  std::string name;      // the loader's name for it (dlpi_name; empty for the main executable)
  std::string identity;  // see image_identity below
};

// Every image with a file, in the loader's order: the main executable first, then the shared
// libraries. The vdso and objects without a name (other than the main executable) are left out,
// as are objects without an executable PT_LOAD segment. Without `hash_code`, an image without a
// build-id gets an empty identity (its code is not hashed: a caller that looks for a build-id
// saves a pass over every such image's code).
std::vector<LoadedImage> loaded_images(bool hash_code);

// The image whose executable segments hold `p`, into `out`; false when none does (heap, stack,
// data, the vdso, an anonymous JIT page).
bool find_loaded_image(const void* p, LoadedImage& out);

// The identity of a loaded image: the bytes of its GNU build-id (NT_GNU_BUILD_ID, read from its
// PT_NOTE segments in memory), or, for an image without one, "code-hash:" and 16 hex digits of a
// 64-bit hash of the bytes of its executable segments (identical in every process that maps the
// same file: position-independent code has no relocations in its text). Empty for an image without
// a build-id when `hash_code` is false.
std::string image_identity(std::uintptr_t base, const void* phdrs, std::size_t phnum,
                           bool hash_code = true);

// readlink("/proc/self/exe") into `path`.
std::error_code executable_path(std::string& path);

// Makes the loaded image `name` (a dlpi_name) whose load bias is `base` permanent: dlopen(name,
// RTLD_NOLOAD | RTLD_NODELETE), checked against `base` (a same-named image in another link-map
// namespace is not it), then dlclose of that extra reference. false with the loader's message (or
// a description) in `error` when it is not loaded (any more) at `base`.
bool pin_image(const std::string& name, std::uintptr_t base, std::string& error);

// The directory the loader found `name` in (dlinfo RTLD_DI_ORIGIN, absolute: computed when the
// image was loaded). false when it is not loaded.
bool image_origin(const std::string& name, std::string& origin);

// dlopen(path, RTLD_NOW | RTLD_LOCAL): the handle and the loaded image's load bias, or false with
// dlerror's text.
bool load_image(const std::string& path, void*& handle, std::uintptr_t& base, std::string& error);

// dlclose(handle) (the image is unloaded when this was its last reference).
void unload_image(void* handle) noexcept;

}  // namespace mproc::detail
