// mproc/detail/travel.hpp — what a value needs, besides its bytes, to reach another program image:
// the descriptors of the mproc handles it holds, and the code addresses it holds.
//
// No stability promise. Used by the start methods (Process arguments, Pool tasks) and by the codecs
// of the handles (Queue, Lock, SharedMemory, Connection, ...).
//
// Descriptors. A handle is a view of shared memory (a memfd) or a socket. Encoding a handle writes
// an index into the current `Descriptors` list (set for the calling thread by a `TravelOut` scope)
// and adds a duplicate of its descriptor there; the list travels beside the bytes (inherited,
// SCM_RIGHTS). Decoding a handle takes the descriptor at that index from the list set by a
// `TravelIn` scope and maps it. Outside such scopes a handle cannot be encoded: its codec throws
// ValueError ("... can travel to another process only as an argument of a Process or of a Pool
// task"), as Python's pickling of a Lock raises RuntimeError outside process spawning. The size
// pass (`codec<T>::size`) never touches the list.
//
// Code. A code address travels as (image, offset): the image is an index into the sending
// process's table of loaded images (main executable and shared libraries, each identified by its
// GNU build-id and its path), the offset is from that image's load address. The receiver learns the
// records of the images it meets (`learn_images`) and relocates: an image already loaded with the
// same build-id is used; otherwise the file at the same path is loaded (dlopen) and its build-id
// checked. A mismatch, or a file that cannot be loaded, is a ProcessError naming the image, never a
// jump to a wrong address.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/export.hpp>
#include <string>
#include <vector>

namespace mproc::detail {

// An owning list of descriptors (each closed by the destructor unless released). Move-only.
class MPROC_API Descriptors {
 public:
  Descriptors() = default;
  Descriptors(Descriptors&& other) noexcept;
  Descriptors& operator=(Descriptors&& other) noexcept;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors();

  // Adds a close-on-exec duplicate of `fd` and returns its index. Throws std::system_error naming
  // the call and the errno (EMFILE) when no descriptor is left; the list is then unchanged.
  std::uint32_t add_dup(int fd);
  // Takes ownership of `fd` (a descriptor received from another process) and returns its index.
  std::uint32_t adopt(int fd);
  // The descriptor at `index` (still owned by the list). Throws DecodeError when out of range.
  [[nodiscard]] int at(std::uint32_t index) const;
  [[nodiscard]] std::size_t size() const noexcept { return fds_.size(); }
  [[nodiscard]] const std::vector<int>& fds() const noexcept { return fds_; }
  // Closes every descriptor.
  void clear() noexcept;

 private:
  std::vector<int> fds_;
};

// For its lifetime, handles encoded on the calling thread add their descriptors to `out`. Scopes
// nest (the innermost wins) and restore the previous one when they end.
class MPROC_API TravelOut {
 public:
  explicit TravelOut(Descriptors& out) noexcept;
  ~TravelOut();
  TravelOut(const TravelOut&) = delete;
  TravelOut& operator=(const TravelOut&) = delete;

 private:
  Descriptors* previous_;
};

// For its lifetime, handles decoded on the calling thread take their descriptors from `in`.
class MPROC_API TravelIn {
 public:
  explicit TravelIn(const Descriptors& in) noexcept;
  ~TravelIn();
  TravelIn(const TravelIn&) = delete;
  TravelIn& operator=(const TravelIn&) = delete;

 private:
  const Descriptors* previous_;
};

// The lists of the innermost scopes on the calling thread, or null outside any.
MPROC_API Descriptors* travel_out() noexcept;
MPROC_API const Descriptors* travel_in() noexcept;

// A code address as it travels.
struct CodeRef {
  std::uint32_t image = 0;   // index into the sender's image table
  std::uint64_t offset = 0;  // from the image's load address
  template <class A>
  void serialize(A& a) {
    a(image, offset);
  }
};

// One image of the sender's table.
struct ImageRecord {
  std::uint32_t index = 0;
  std::string path;  // absolute path of the file (the main executable's: /proc/self/exe's)
  // The image's identity: its GNU build-id's bytes, or for an image linked without one,
  // "code-hash:" and 16 hex digits of a hash of its executable segments (src/image.cpp). Never
  // empty in a record of code_ref_of's table; learn_images refuses an empty one.
  std::string build_id;
  template <class A>
  void serialize(A& a) {
    a(index, path, build_id);
  }
};

// Sender. The image holding `code` and the offset in it; adds the image to this process's table on
// first use. Throws ValueError when `code` is not in an executable segment of a loaded image with
// a file (heap, stack, data, a JIT page, the vdso). Fast on repeated calls: no system call and no
// lock for an image already in the table (a lock only to add one). Thread-safe; usable in a child
// forked while another thread was in it.
// An image enters the table pinned (RTLD_NODELETE): dlclose no longer unloads it, so an entry
// never goes stale and no other image can later appear at its addresses under its index.
MPROC_API CodeRef code_ref_of(const void* code);
// Sender. The number of images in this process's table (indices [0, n) are valid), and the records
// of images [from, image_count()).
MPROC_API std::uint32_t image_count() noexcept;
MPROC_API std::vector<ImageRecord> image_records(std::uint32_t from);

// Receiver. Records the sender's images (no loading yet). A record with an index already known is
// replaced only if identical; otherwise ProcessError. This process has one sender: its parent.
// Throws DecodeError for a record that cannot be one (index >= 65536; a path that is empty,
// relative, over 4096 bytes or holds a NUL; an identity empty or over 256 bytes). A batch with a
// bad or conflicting record is learnt not at all. Thread-safe.
MPROC_API void learn_images(const std::vector<ImageRecord>& records);
// Receiver. Records the images loaded now and the main executable's path, so that this process and
// every process forked from it afterwards locate those images without scanning the loader's list
// or reading /proc (the forkserver calls it once, before it forks its first child). An image not
// in the snapshot is still found by a scan. Best effort: a failure leaves no snapshot.
MPROC_API void snapshot_loaded_images() noexcept;
// Receiver. The local address of `ref` (loads the image's file if it is not loaded; checks its
// build-id). Throws ProcessError naming the image when it is unknown, cannot be loaded, or its
// build-id differs; DecodeError when the offset is outside the image's executable segments.
// A file loaded (dlopen RTLD_NOW | RTLD_LOCAL) and found different is unloaded again; an image
// used stays loaded for the rest of the process. Once an image is located, no lock and no system
// call. Thread-safe.
MPROC_API const void* resolve_code(const CodeRef& ref);

}  // namespace mproc::detail
