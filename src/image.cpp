// Code addresses that travel to a fresh program image, as (image, offset) (see
// <mproc/detail/travel.hpp>; the descriptors beside a value are in src/travel.cpp).
//
// Sender. A process-wide, append-only table of the images whose code addresses were sent: index ->
// path, identity, load bias and the hull of the image's executable segments. `code_ref_of(p)`
// first tries the calling thread's cache of the last image it met (two loads and a compare: no
// lock, no system call); then the table's published entries (acquire loads, no lock); only for an
// image new to the table, under the table's mutex, the loader (dl_iterate_phdr over the loaded
// objects, executable PT_LOAD segments only), and the image found is appended. Measured: 1.5 ns
// on a thread-cache hit, 4 to 6 ns for another image of the table, about 15 us for a new image.
//   * fork: the tables' mutexes are taken by a pthread_atfork prepare handler (registered on the
//     first slow path) and released in parent and child, so a child forked while another thread
//     added an image or learnt records finds them unlocked and consistent.
//   * Which addresses: only code, i.e. addresses inside an executable PT_LOAD segment of the main
//     executable or of a shared library with a file. Heap, stack, data, the vdso and anonymous JIT
//     pages are a ValueError.
//   * dlclose. An image enters the table pinned: dlopen(its name, RTLD_NOLOAD | RTLD_NODELETE), so
//     dlclose no longer unloads it and its address range never holds another image for the rest of
//     the process. That is what makes the lock-free cache exact: no entry of the table or of a
//     thread's cache can go stale, so a library unloaded and another loaded at the same range can
//     never be named by the first one's index. The price: a library once sent stays mapped, as a
//     Python module once pickled by reference stays imported. The image is read again after it is
//     pinned (a dlclose racing with the first look is seen, not recorded).
//   * Paths: the main executable's is readlink("/proc/self/exe"); a library's is the loader's name
//     for it when absolute, else the directory it was loaded from (dlinfo RTLD_DI_ORIGIN, made
//     absolute at load time) joined to its file name.
//   * Identity (ImageRecord::build_id): the GNU build-id read from the image's PT_NOTE segments in
//     memory. An image linked without one (-Wl,--build-id=none, some clang set-ups) is identified
//     by "code-hash:<16 hex digits>", a 64-bit hash of the bytes of its executable segments: those
//     are the same in every process that maps the same file (position-independent code has no
//     relocations in its text), differ when the code differs, and unlike device/inode/mtime they
//     survive overlay file systems and copies. Hashing costs about a millisecond per MiB of code,
//     once per image per process.
//
// Receiver. `learn_images` validates and stores the sender's records in a two-level table of
// atomic pointers (256 chunks of 256 slots; indices up to 65535), written under a mutex and never
// freed, so that `resolve_code` on an image it already located is three acquire loads and a bounds
// check: no lock, no system call (3 ns measured). Locating an image (once per image): an image
// already loaded with the record's identity is used, preferring one at the record's path (a fresh
// image of the same program finds its main executable and its libraries this way, without reading
// any file); otherwise the file at the record's path is loaded with dlopen(RTLD_NOW | RTLD_LOCAL)
// and its identity checked. RTLD_NOW: a symbol that cannot be bound fails here, as a ProcessError
// naming it, and not as the loader's abort in the middle of a task; RTLD_LOCAL: the library's
// symbols must not change how libraries loaded later by the program bind theirs (the sender may
// have loaded it RTLD_LOCAL too; a library that needs symbols another one exported with RTLD_GLOBAL
// fails to load, with the loader's message). A file whose identity differs (replaced on disk after
// the sender loaded it) is dlclose'd again before the ProcessError (its static constructors have
// run: that cannot be avoided without loading it); a located image stays loaded and pinned for the
// rest of the process.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mproc/detail/travel.hpp>
#include <mproc/errors.hpp>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "posix/error.hpp"
#include "posix/loaded_images.hpp"
#include "posix/process_self.hpp"
#include "thread_annotations.hpp"

namespace mproc::detail {
namespace {

constexpr std::uint32_t kChunkBits = 8;
constexpr std::uint32_t kChunkSize = 1u << kChunkBits;
constexpr std::uint32_t kMaxImages = kChunkSize * kChunkSize;  // 65536
constexpr std::size_t kMaxPath = 4096;                         // PATH_MAX
constexpr std::size_t kMaxIdentity = 256;

std::string hex_address(std::uintptr_t a) {
  static const char kHex[] = "0123456789abcdef";
  std::string s = "0x";
  bool started = false;
  for (int shift = static_cast<int>(sizeof a * 8) - 4; shift >= 0; shift -= 4) {
    const unsigned d = (a >> shift) & 0xF;
    if (d != 0 || started || shift == 0) {
      s += kHex[d];
      started = true;
    }
  }
  return s;
}

// An identity as a message shows it: the build-id in hex, or the code hash as it is.
std::string describe_identity(const std::string& id) {
  if (id.rfind("code-hash:", 0) == 0) return id;
  if (id.empty()) return "(none)";
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : id) {
    s += kHex[c >> 4];
    s += kHex[c & 0xF];
  }
  return s;
}

std::string file_name(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Pointers indexed 0..65535, in 256 chunks of 256 allocated on demand. `set` runs under its
// owner's mutex; `get` is two acquire loads and takes no lock. Nothing is ever freed.
template <class T>
class SlotTable {
 public:
  constexpr SlotTable() = default;
  T* get(std::uint32_t index) const noexcept {
    if (index >= kMaxImages) return nullptr;
    const Chunk* c = chunks_[index >> kChunkBits].load(std::memory_order_acquire);
    return c == nullptr ? nullptr
                        : c->slot[index & (kChunkSize - 1)].load(std::memory_order_acquire);
  }
  // `index` < kMaxImages, empty so far.
  void set(std::uint32_t index, T* value) {
    std::atomic<Chunk*>& chunk = chunks_[index >> kChunkBits];
    Chunk* c = chunk.load(std::memory_order_relaxed);
    if (c == nullptr) {
      c = new Chunk;
      chunk.store(c, std::memory_order_release);
    }
    c->slot[index & (kChunkSize - 1)].store(value, std::memory_order_release);
  }

 private:
  struct Chunk {
    std::atomic<T*> slot[kChunkSize] = {};
  };
  std::atomic<Chunk*> chunks_[kChunkSize] = {};
};

// Static storage that is constant-initialised (no guard on the fast paths) and never destroyed
// (a thread may send or resolve a code address while static destructors run).
template <class T>
union Forever {
  constexpr Forever() : value() {}
  ~Forever() {}
  T value;
};

// ---- Sender --------------------------------------------------------------------------------

struct SentImage {
  std::uintptr_t base = 0;
  std::uintptr_t lo = 0;  // [lo, hi): the hull of its executable segments
  std::uintptr_t hi = 0;
  ImageRecord record;
};

// Append-only: image i is published (set, then count = i + 1, release) before anyone can see it,
// and never changes. Readers take no lock; additions are serialised by `mu`.
struct SenderTable {
  Mutex mu;
  std::atomic<std::uint32_t> count{0};
  SlotTable<const SentImage> images;
};
constinit Forever<SenderTable> g_sender;

// The calling thread's last image. Empty (lo == hi) until the first miss.
struct LastImage {
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;
  std::uintptr_t base = 0;
  std::uint32_t index = 0;
};
thread_local LastImage t_last;

void remember(const SentImage& img) noexcept {
  t_last = LastImage{img.lo, img.hi, img.base, img.record.index};
}

std::string sender_path(const LoadedImage& img) {
  if (img.main) {
    std::string path;
    if (std::error_code ec = executable_path(path)) {
      throw_system_error(ec,
                         "mproc: cannot name the main executable for another process: "
                         "readlink(/proc/self/exe)");
    }
    return path;
  }
  if (!img.name.empty() && img.name[0] == '/') return img.name;
  std::string origin;
  if (!image_origin(img.name, origin) || origin.empty() || origin[0] != '/') {
    throw ValueError("mproc: cannot send a code address of " + img.name +
                     ": the directory it was loaded from is unknown; load it by absolute path");
  }
  return origin + "/" + file_name(img.name);
}

// The image of the table whose code holds `a`, or null. No lock.
const SentImage* sent_image(std::uintptr_t a) noexcept {
  const SenderTable& t = g_sender.value;
  const std::uint32_t n = t.count.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < n; ++i) {
    const SentImage* img = t.images.get(i);
    if (img != nullptr && a >= img->lo && a < img->hi) return img;
  }
  return nullptr;
}

void ensure_fork_handlers();

CodeRef code_ref_miss(const void* code) {
  const auto a = reinterpret_cast<std::uintptr_t>(code);
  if (const SentImage* img = sent_image(a)) {
    remember(*img);
    return {img->record.index, a - img->base};
  }
  ensure_fork_handlers();
  SenderTable& t = g_sender.value;
  Guard g(t.mu);
  if (const SentImage* img = sent_image(a)) {  // added by another thread meanwhile
    remember(*img);
    return {img->record.index, a - img->base};
  }
  LoadedImage found;
  if (!find_loaded_image(code, found)) {
    throw ValueError("mproc: the address " + hex_address(a) +
                     " is not code of a loaded image with a file (heap, stack, data, the vdso or "
                     "a JIT page?): only functions of the program and of its shared libraries can "
                     "travel to another program image");
  }
  if (!found.main) {
    std::string error;
    if (!pin_image(found.name, found.base, error)) {
      throw ValueError("mproc: cannot send a code address of " + found.name +
                       ": it is being unloaded (" + error + ")");
    }
    // Read again once pinned: the image seen first may have been unloaded and another loaded.
    LoadedImage again;
    if (!find_loaded_image(code, again) || again.base != found.base || again.name != found.name) {
      throw ValueError("mproc: cannot send a code address of " + found.name +
                       ": it was unloaded while its address was being sent");
    }
    found = std::move(again);
  }
  const std::uint32_t index = t.count.load(std::memory_order_relaxed);
  if (index >= kMaxImages) {
    throw ValueError("mproc: cannot send a code address of " + found.name + ": " +
                     std::to_string(kMaxImages) + " images have sent code addresses already");
  }
  auto img = std::make_unique<SentImage>();
  img->base = found.base;
  img->lo = found.code_lo;
  img->hi = found.code_hi;
  img->record.index = index;
  img->record.path = sender_path(found);
  img->record.build_id = std::move(found.identity);
  t.images.set(index, img.get());
  const SentImage* added = img.release();
  t.count.store(index + 1, std::memory_order_release);
  remember(*added);
  return {index, a - added->base};
}

// ---- Receiver ------------------------------------------------------------------------------

// Where a learnt image is in this process: its load bias and the offsets [lo, hi) of its code.
struct Located {
  std::uintptr_t base = 0;
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
};

struct Known {
  ImageRecord record;                            // immutable once published
  std::atomic<const Located*> located{nullptr};  // set once, under the table's mutex
};

// Records are added and images located under `mu`; resolving a located image takes no lock.
// Nothing in it is freed: a resolved address may be used until the process ends.
struct ReceiverTable {
  Mutex mu;
  SlotTable<Known> known;
};
constinit Forever<ReceiverTable> g_receiver;

// fork: a child forked while another thread held a table's mutex would wait for it forever.
void atfork_prepare() MPROC_NO_THREAD_SAFETY_ANALYSIS {
  g_sender.value.mu.lock();
  g_receiver.value.mu.lock();
}
void atfork_release() MPROC_NO_THREAD_SAFETY_ANALYSIS {
  g_receiver.value.mu.unlock();
  g_sender.value.mu.unlock();
}

std::atomic<bool> g_fork_handlers{false};

// Registered on the first slow path (called without either table's mutex held).
void ensure_fork_handlers() {
  if (g_fork_handlers.load(std::memory_order_acquire)) return;
  static std::mutex once;
  std::lock_guard<std::mutex> g(once);
  if (g_fork_handlers.load(std::memory_order_relaxed)) return;
  if (std::error_code ec =
          register_fork_handlers(&atfork_prepare, &atfork_release, &atfork_release)) {
    throw_system_error(ec,
                       "mproc: cannot register the image tables' fork handlers: pthread_atfork");
  }
  g_fork_handlers.store(true, std::memory_order_release);
}

void check_record(const ImageRecord& r) {
  const std::string which =
      "mproc: the record of image " + std::to_string(r.index) + " of the sending process";
  if (r.index >= kMaxImages) {
    throw DecodeError(which + " is beyond the " + std::to_string(kMaxImages) +
                      " images a table holds: the bytes are corrupt");
  }
  if (r.path.empty() || r.path.size() > kMaxPath || r.path[0] != '/' ||
      r.path.find('\0') != std::string::npos) {
    throw DecodeError(which + " has no usable path (empty, relative, over " +
                      std::to_string(kMaxPath) + " bytes or with a NUL byte; " +
                      std::to_string(r.path.size()) + " bytes): the bytes are corrupt");
  }
  if (r.build_id.empty() || r.build_id.size() > kMaxIdentity) {
    throw DecodeError(which + " (" + r.path + ") has an identity of " +
                      std::to_string(r.build_id.size()) + " bytes (1 to " +
                      std::to_string(kMaxIdentity) + " expected): the bytes are corrupt");
  }
}

bool same_record(const ImageRecord& a, const ImageRecord& b) {
  return a.index == b.index && a.path == b.path && a.build_id == b.build_id;
}

std::string image_words(const ImageRecord& r) {
  return r.path + " (image " + std::to_string(r.index) + " of the sending process, build-id " +
         describe_identity(r.build_id) + ")";
}

// The images loaded when snapshot_loaded_images() ran, and the main executable's path; never freed.
struct LoadedSnapshot {
  std::string exe;
  std::vector<LoadedImage> images;
};
std::atomic<const LoadedSnapshot*> g_snapshot{nullptr};

// An image of the snapshot with the record's identity (preferring its path); null if none.
const LoadedImage* in_snapshot(const ImageRecord& r, const LoadedSnapshot& s) {
  const LoadedImage* best = nullptr;
  for (const LoadedImage& img : s.images) {
    if (img.identity.empty() || img.identity != r.build_id) continue;
    if (best == nullptr) best = &img;
    if ((img.main ? s.exe : img.name) == r.path) return &img;
  }
  return best;
}

const Located* locate(const ImageRecord& r) {
  // Hashing the code of every image without a build-id is needed only to find one of those.
  const bool by_hash = r.build_id.rfind("code-hash:", 0) == 0;
  if (const LoadedSnapshot* s = g_snapshot.load(std::memory_order_acquire); s && !by_hash) {
    if (const LoadedImage* img = in_snapshot(r, *s)) {
      std::string error;
      if (img->main || pin_image(img->name, img->base, error))
        return new Located{img->base, img->code_lo - img->base, img->code_hi - img->base};
    }
  }
  std::string exe;
  (void)executable_path(exe);
  const std::vector<LoadedImage> loaded = loaded_images(by_hash);
  const LoadedImage* best = nullptr;
  for (const LoadedImage& img : loaded) {
    if (img.identity.empty() || img.identity != r.build_id) continue;
    if (best == nullptr) best = &img;
    if ((img.main ? exe : img.name) == r.path) {
      best = &img;
      break;
    }
  }
  if (best != nullptr) {
    std::string error;
    if (!best->main && !pin_image(best->name, best->base, error)) {
      throw ProcessError("mproc: cannot use " + image_words(r) + ": it is being unloaded here (" +
                         error + ")");
    }
    return new Located{best->base, best->code_lo - best->base, best->code_hi - best->base};
  }
  void* handle = nullptr;
  std::uintptr_t base = 0;
  std::string error;
  if (!load_image(r.path, handle, base, error)) {
    throw ProcessError("mproc: cannot load " + image_words(r) + ": " + error +
                       "; the file was moved or deleted after the sending process loaded it, or "
                       "cannot be loaded by this program: restart the program with its files in "
                       "place");
  }
  const LoadedImage* mine = nullptr;
  const std::vector<LoadedImage> now = loaded_images(by_hash);
  for (const LoadedImage& img : now) {
    if (!img.main && img.base == base) mine = &img;
  }
  if (mine == nullptr || mine->identity != r.build_id) {
    const std::string got = mine == nullptr ? "unknown" : describe_identity(mine->identity);
    unload_image(handle);
    const std::string what = r.path +
                             " is not the file the sending process loaded: its build-id is " + got +
                             ", the sending process's was " + describe_identity(r.build_id);
    throw ProcessError("mproc: " + what + " (image " + std::to_string(r.index) +
                       "); the file was replaced after the sending process loaded it: restart "
                       "the program");
  }
  // `handle` is kept: the image stays loaded for the rest of the process.
  return new Located{mine->base, mine->code_lo - mine->base, mine->code_hi - mine->base};
}

[[noreturn]] void offset_outside(const ImageRecord& r, const Located& l, std::uint64_t offset) {
  throw DecodeError("mproc: a code address at offset " + hex_address(offset) + " of " +
                    image_words(r) + " is outside its code (offsets " + hex_address(l.lo) + " to " +
                    hex_address(l.hi) + "): the bytes are corrupt");
}

const void* resolve_miss(const CodeRef& ref) {
  ensure_fork_handlers();
  ReceiverTable& t = g_receiver.value;
  Guard g(t.mu);
  Known* k = t.known.get(ref.image);
  if (k == nullptr) {
    throw ProcessError("mproc: a code address names image " + std::to_string(ref.image) +
                       " of the sending process, which did not describe it (no record of it was "
                       "received)");
  }
  const Located* l = k->located.load(std::memory_order_acquire);
  if (l == nullptr) {
    l = locate(k->record);
    k->located.store(l, std::memory_order_release);
  }
  if (ref.offset < l->lo || ref.offset >= l->hi) offset_outside(k->record, *l, ref.offset);
  return reinterpret_cast<const void*>(l->base + ref.offset);
}

}  // namespace

CodeRef code_ref_of(const void* code) {
  const auto a = reinterpret_cast<std::uintptr_t>(code);
  const LastImage& last = t_last;
  if (a - last.lo < last.hi - last.lo) return {last.index, a - last.base};
  return code_ref_miss(code);
}

std::uint32_t image_count() noexcept {
  return g_sender.value.count.load(std::memory_order_acquire);
}

std::vector<ImageRecord> image_records(std::uint32_t from) {
  const SenderTable& t = g_sender.value;
  const std::uint32_t n = t.count.load(std::memory_order_acquire);
  std::vector<ImageRecord> out;
  for (std::uint32_t i = from; i < n; ++i) out.push_back(t.images.get(i)->record);
  return out;
}

void learn_images(const std::vector<ImageRecord>& records) {
  for (const ImageRecord& r : records) check_record(r);
  ensure_fork_handlers();
  ReceiverTable& t = g_receiver.value;
  Guard g(t.mu);
  // Every conflict is found before anything is stored: a batch is learnt whole or not at all.
  for (std::size_t i = 0; i < records.size(); ++i) {
    const ImageRecord& r = records[i];
    const Known* k = t.known.get(r.index);
    const ImageRecord* other = k != nullptr ? &k->record : nullptr;
    for (std::size_t j = 0; other == nullptr && j < i; ++j) {
      if (records[j].index == r.index) other = &records[j];
    }
    if (other != nullptr && !same_record(*other, r)) {
      throw ProcessError(
          "mproc: image " + std::to_string(r.index) +
          " of the sending process was described twice, differently: " + other->path +
          " (build-id " + describe_identity(other->build_id) + ") and " + r.path + " (build-id " +
          describe_identity(r.build_id) + "): the sender's records are inconsistent");
    }
  }
  for (const ImageRecord& r : records) {
    if (t.known.get(r.index) != nullptr) continue;  // identical, checked above
    auto k = std::make_unique<Known>();
    k->record = r;
    t.known.set(r.index, k.get());
    (void)k.release();
  }
}

void snapshot_loaded_images() noexcept {
  try {
    auto* s = new LoadedSnapshot;
    if (executable_path(s->exe)) {
      delete s;
      return;
    }
    s->images = loaded_images(false);
    g_snapshot.store(s, std::memory_order_release);
  } catch (...) {
  }
}

const void* resolve_code(const CodeRef& ref) {
  if (const Known* k = g_receiver.value.known.get(ref.image)) {
    const Located* l = k->located.load(std::memory_order_acquire);
    if (l != nullptr && ref.offset >= l->lo && ref.offset < l->hi) {
      return reinterpret_cast<const void*>(l->base + ref.offset);
    }
  }
  return resolve_miss(ref);
}

}  // namespace mproc::detail
