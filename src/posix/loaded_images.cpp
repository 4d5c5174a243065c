// The loaded images as the dynamic loader lists them, and the loader calls (see loaded_images.hpp).
#include "posix/loaded_images.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <link.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstring>

#include "posix/error.hpp"

namespace mproc::detail {
namespace {

// The vdso's program headers (dlpi_phdr of its entry), or null when the kernel gave none.
const ElfW(Phdr) * vdso_phdrs() noexcept {
  const auto ehdr = static_cast<std::uintptr_t>(::getauxval(AT_SYSINFO_EHDR));
  if (ehdr == 0) return nullptr;
  const auto* e = reinterpret_cast<const ElfW(Ehdr)*>(ehdr);
  return reinterpret_cast<const ElfW(Phdr)*>(ehdr + e->e_phoff);
}

// The hull of the executable PT_LOAD segments; false when there is none.
bool code_hull(const dl_phdr_info& info, std::uintptr_t& lo, std::uintptr_t& hi) noexcept {
  bool any = false;
  for (ElfW(Half) i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info.dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0 || ph.p_memsz == 0) continue;
    const std::uintptr_t a = info.dlpi_addr + ph.p_vaddr;
    const std::uintptr_t b = a + ph.p_memsz;
    if (!any || a < lo) lo = a;
    if (!any || b > hi) hi = b;
    any = true;
  }
  return any;
}

struct Walk {
  const ElfW(Phdr) * vdso = nullptr;
  const void* wanted = nullptr;  // find_loaded_image: the address; null: list every image
  std::vector<LoadedImage>* all = nullptr;
  LoadedImage* found = nullptr;
  bool hash_code = true;
  bool hit = false;
  unsigned seen = 0;
};

int visit(dl_phdr_info* info, std::size_t, void* data) {
  auto& w = *static_cast<Walk*>(data);
  const bool main = w.seen++ == 0;
  if (info->dlpi_phdr == w.vdso && w.vdso != nullptr) return 0;
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (!main && name[0] == '\0') return 0;  // no file
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;
  if (!code_hull(*info, lo, hi)) return 0;
  if (w.wanted != nullptr) {
    const auto p = reinterpret_cast<std::uintptr_t>(w.wanted);
    if (p < lo || p >= hi) return 0;
  }
  LoadedImage img;
  img.base = info->dlpi_addr;
  img.code_lo = lo;
  img.code_hi = hi;
  img.main = main;
  img.name = main ? std::string() : std::string(name);
  img.identity = image_identity(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum, w.hash_code);
  if (w.wanted != nullptr) {
    *w.found = std::move(img);
    w.hit = true;
    return 1;  // stops the walk
  }
  w.all->push_back(std::move(img));
  return 0;
}

// The GNU build-id among the notes of [at, at + size) (aligned to `align`); empty if none.
std::string build_id_in(const unsigned char* at, std::size_t size, std::size_t align) {
  const auto up = [align](std::size_t n) { return (n + align - 1) & ~(align - 1); };
  std::size_t pos = 0;
  while (size - pos >= sizeof(ElfW(Nhdr))) {
    ElfW(Nhdr) nh;
    std::memcpy(&nh, at + pos, sizeof nh);
    pos += sizeof nh;
    const std::size_t name_len = up(nh.n_namesz);
    if (name_len > size - pos) break;
    const unsigned char* name = at + pos;
    pos += name_len;
    const std::size_t desc_len = up(nh.n_descsz);
    if (nh.n_descsz > size - pos) break;
    if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0)
      return std::string(reinterpret_cast<const char*>(at + pos), nh.n_descsz);
    if (desc_len > size - pos) break;
    pos += desc_len;
  }
  return {};
}

// A 64-bit hash of `n` bytes, eight at a time (not cryptographic: it tells files apart that were
// built differently, as a build-id would; nobody chooses them to collide).
std::uint64_t hash_bytes(const unsigned char* p, std::size_t n, std::uint64_t h) noexcept {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * kMul;
  h ^= n;
  h *= kMul;
  return h ^ (h >> 32);
}

}  // namespace

std::string image_identity(std::uintptr_t base, const void* phdrs, std::size_t phnum,
                           bool hash_code) {
  const auto* ph = static_cast<const ElfW(Phdr)*>(phdrs);
  for (std::size_t i = 0; i < phnum; ++i) {
    if (ph[i].p_type != PT_NOTE) continue;
    const std::size_t align = ph[i].p_align == 8 ? 8 : 4;
    std::string id = build_id_in(reinterpret_cast<const unsigned char*>(base + ph[i].p_vaddr),
                                 ph[i].p_filesz, align);
    if (!id.empty()) return id;
  }
  if (!hash_code) return {};
  std::uint64_t h = 0xCBF29CE484222325ULL;
  for (std::size_t i = 0; i < phnum; ++i) {
    if (ph[i].p_type != PT_LOAD || (ph[i].p_flags & PF_X) == 0) continue;
    h = hash_bytes(reinterpret_cast<const unsigned char*>(base + ph[i].p_vaddr), ph[i].p_filesz, h);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string id = "code-hash:";
  for (int s = 60; s >= 0; s -= 4) id += kHex[(h >> s) & 0xF];
  return id;
}

std::vector<LoadedImage> loaded_images(bool hash_code) {
  std::vector<LoadedImage> all;
  Walk w;
  w.hash_code = hash_code;
  w.vdso = vdso_phdrs();
  w.all = &all;
  ::dl_iterate_phdr(visit, &w);
  return all;
}

bool find_loaded_image(const void* p, LoadedImage& out) {
  if (p == nullptr) return false;
  Walk w;
  w.vdso = vdso_phdrs();
  w.wanted = p;
  w.found = &out;
  ::dl_iterate_phdr(visit, &w);
  return w.hit;
}

std::error_code executable_path(std::string& path) {
  char buf[PATH_MAX + 1];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) return last_error();
  path.assign(buf, static_cast<std::size_t>(n));
  return {};
}

bool pin_image(const std::string& name, std::uintptr_t base, std::string& error) {
  void* h = ::dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
  if (h == nullptr) {
    const char* e = ::dlerror();
    error = e != nullptr ? e : "dlopen(RTLD_NOLOAD) found no image of that name";
    return false;
  }
  link_map* lm = nullptr;
  const bool same = ::dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm != nullptr && lm->l_addr == base;
  ::dlclose(h);
  if (!same) error = "the image of that name is no longer loaded at the same address";
  return same;
}

bool image_origin(const std::string& name, std::string& origin) {
  void* h = ::dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (h == nullptr) return false;
  char buf[PATH_MAX + 1] = {};
  const bool ok = ::dlinfo(h, RTLD_DI_ORIGIN, buf) == 0;
  ::dlclose(h);
  if (ok) origin = buf;
  return ok;
}

bool load_image(const std::string& path, void*& handle, std::uintptr_t& base, std::string& error) {
  handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = ::dlerror();
    error = e != nullptr ? e : "dlopen failed";
    return false;
  }
  link_map* lm = nullptr;
  if (::dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || lm == nullptr) {
    const char* e = ::dlerror();
    error = e != nullptr ? e : "dlinfo(RTLD_DI_LINKMAP) failed";
    ::dlclose(handle);
    handle = nullptr;
    return false;
  }
  base = lm->l_addr;
  return true;
}

void unload_image(void* handle) noexcept {
  if (handle != nullptr) ::dlclose(handle);
}

}  // namespace mproc::detail
