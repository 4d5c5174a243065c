// posix/region.hpp — anonymous shared memory: a memfd mapped MAP_SHARED, and objects placed in it.
//
// Nothing is named in /dev/shm, so a crash cannot leak a segment: the pages are freed when the last
// process that maps them (or holds the fd) is gone. The fd is kept (O_CLOEXEC) so that a later
// start method that re-executes the child can hand it over.
//
// Every mapped region with an fd is listed in a per-process table (find_region), so that a handle
// that holds only a pointer into a region (a Lock's state, a Value's data) can find the descriptor
// to send and its offset. The table is lock-free and consistent at every instant, so a fork at any
// moment leaves the child a usable table (whose descriptors the child inherited at the same
// numbers).
//
// Memory is reserved when a region is created (fallocate on the memfd), so running out of memory
// is an error at creation, never a SIGBUS at the first write. Sizes are checked before any
// arithmetic or system call: nothing wraps around, and a size no machine can give is refused at
// once (see check_reservable).
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <system_error>
#include <utility>

namespace mproc::detail {

class Region {
 public:
  // Creates a zero-filled anonymous region of at least `size` bytes (rounded up to a page; 0 is
  // taken as 1), every page reserved. On failure returns null, sets `ec` and, in the second form,
  // `failed_call` to the step that failed ("memfd_create", "ftruncate", "mmap", "fallocate", or a
  // size check described in words), for error messages. Nothing is left open or mapped on failure.
  static std::shared_ptr<Region> create(std::size_t size, const char* debug_name,
                                        std::error_code& ec) noexcept;
  static std::shared_ptr<Region> create(std::size_t size, const char* debug_name,
                                        std::error_code& ec, const char*& failed_call) noexcept;
  // Maps `size` bytes of an existing fd (e.g. a named segment opened with shm_open, or a memfd
  // received from another process). Takes ownership of `fd` (closed on failure too). Reserves
  // nothing: the creator of the fd does that. A size of 0 maps nothing (data() is null).
  static std::shared_ptr<Region> map_fd(int fd, std::size_t size, std::error_code& ec) noexcept;

  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  int fd() const noexcept { return fd_; }

  // Unmaps and closes now (idempotent); data() becomes null.
  void release() noexcept;
  // Closes the fd and keeps the mapping (idempotent); fd() becomes -1. The region leaves the
  // table of find_region (it can no longer travel).
  void close_fd() noexcept;
  // Closes the fd and forgets the mapping without unmapping it: it stays for the rest of the
  // process. data() becomes null.
  void abandon() noexcept;

 private:
  Region(void* data, std::size_t size, int fd) noexcept : data_(data), size_(size), fd_(fd) {}
  void unlist() noexcept;
  void* data_;
  std::size_t size_;
  int fd_;
  void* listed_ = nullptr;  // this region's entry in find_region's table, or null
};

// A region of this process as find_region reports it.
struct RegionSpan {
  int fd = -1;                      // still owned by the region
  const std::byte* base = nullptr;  // the start of its mapping
  std::size_t size = 0;             // the mapping's length
};

// The region of this process (with its fd still open) whose mapping contains `p`. The caller must
// hold a reference to that region (e.g. through the handle that points into it), so that it cannot
// go meanwhile. Lock-free; O(number of live regions). False when `p` is in no listed region.
bool find_region(const void* p, RegionSpan& out) noexcept;

// Whether `fd`, received from another process, is shared memory that can be mapped for `size`
// bytes without a SIGBUS at the first touch: a regular file on tmpfs or hugetlbfs (a memfd, or a
// segment in /dev/shm) at least `size` bytes long. Returns null when it is, otherwise what it is
// instead, in words ("a socket", "a file of 4096 bytes, fewer than the 8192 to map", ...), written
// into `buf`.
const char* check_shared_file(int fd, std::size_t size, char* buf, std::size_t buf_size) noexcept;

std::size_t page_size() noexcept;

// Anonymous MAP_SHARED memory without a descriptor, inherited by forked children only (the Pool's
// staging areas); MAP_NORESERVE: pages are committed as they are touched. Zero-filled.
std::error_code map_shared_anonymous(std::size_t bytes, void*& at) noexcept;
void unmap(void* at, std::size_t bytes) noexcept;

// Whether `size` bytes of shared memory can be reserved at all: 0, or ENOMEM with `why` set when
// it is more than this machine has (RAM + swap), or, for sizes of 64 MiB and more, more than it has
// available now (MemAvailable + SwapFree). fallocate on a memfd (or on a tmpfs larger than free
// memory) has no limit of its own: the kernel would reclaim and then call the OOM killer page by
// page, and since pages that are not yet mapped count against no process, the killer would pick
// an unrelated one. Refusing here turns that into an error. Costs one sysinfo() and one read of
// /proc/meminfo, only for sizes of 64 MiB and more.
int check_reservable(std::size_t size, const char*& why) noexcept;

// Reserves bytes [0, size) of `fd` (posix_fallocate, in chunks, each retried on EINTR), extending
// the file if needed. Returns 0 or the errno (ENOSPC on a full tmpfs, ENOMEM). On failure the part
// already reserved stays allocated; the caller discards the file.
int reserve(int fd, std::size_t size) noexcept;

// Throws std::system_error for a failed Region::create, naming the object (`debug_name`), the size
// asked for, the failing step and the errno:
//   "mproc: cannot create 1048576 bytes of shared memory for mproc-queue: mmap: Cannot allocate
//    memory (ENOMEM)"
[[noreturn]] void throw_region_error(std::error_code ec, const char* failed_call,
                                     const char* debug_name, std::size_t size);

// Creates a region and constructs a `T` at its start; returns a pointer to the object that keeps
// the region alive (aliasing shared_ptr). Throws std::system_error when the region cannot be
// created. `T` is never destroyed: objects in shared memory outlive any one process's handle.
template <class T, class... Args>
std::shared_ptr<T> make_shared_object(const char* debug_name, Args&&... args) {
  std::error_code ec;
  const char* failed_call = "";
  auto region = Region::create(sizeof(T), debug_name, ec, failed_call);
  if (!region) throw_region_error(ec, failed_call, debug_name, sizeof(T));
  T* obj = ::new (region->data()) T(std::forward<Args>(args)...);
  return std::shared_ptr<T>(std::move(region), obj);
}

}  // namespace mproc::detail
