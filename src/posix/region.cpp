#include "posix/region.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mproc/detail/shared_handle.hpp>
#include <string>

#include "posix/error.hpp"

namespace mproc::detail {

namespace {

// The largest size a file (and so a memfd or a shm segment) can have.
constexpr std::size_t kMaxFileSize = static_cast<std::size_t>(std::numeric_limits<off_t>::max());

// Sizes from which check_reservable also asks how much memory is available now.
constexpr std::size_t kCheckAvailableFrom = std::size_t{64} << 20;

// fallocate works page by page and, when a signal arrives, stops with EINTR and gives back what
// this call allocated. Reserving in chunks keeps the progress of earlier chunks, so that a process
// with a frequent timer signal still gets through a large reservation.
constexpr std::size_t kReserveChunk = std::size_t{4} << 20;

// a * b, or SIZE_MAX when it overflows.
std::size_t saturating_mul(std::size_t a, std::size_t b) noexcept {
  std::size_t r;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<std::size_t>::max() : r;
}

std::size_t saturating_add(std::size_t a, std::size_t b) noexcept {
  std::size_t r;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<std::size_t>::max() : r;
}

// MemAvailable + SwapFree from /proc/meminfo, in bytes; false when it cannot be read.
bool available_memory(std::size_t& bytes) noexcept {
  int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8192];
  std::size_t len = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
    if (len == sizeof buf - 1) break;
  }
  ::close(fd);
  buf[len] = '\0';
  auto field_kib = [&](const char* key, std::size_t& kib) {
    const char* p = std::strstr(buf, key);
    if (!p) return false;
    p += std::strlen(key);
    while (*p == ' ') ++p;
    if (*p < '0' || *p > '9') return false;
    kib = 0;
    for (; *p >= '0' && *p <= '9'; ++p) kib = saturating_add(saturating_mul(kib, 10), *p - '0');
    return true;
  };
  std::size_t avail = 0;
  std::size_t swap = 0;
  if (!field_kib("\nMemAvailable:", avail)) return false;
  if (!field_kib("\nSwapFree:", swap)) swap = 0;
  bytes = saturating_mul(saturating_add(avail, swap), 1024);
  return true;
}

// Closes `fd` without changing errno-derived state the caller already captured.
void close_quietly(int fd) noexcept {
  if (fd >= 0) ::close(fd);
}

// ---------------------------------------------------------------------------------------------
// The table of live regions (find_region). Chunks of slots, appended and never freed; a slot is
// claimed by a CAS of its `base` from 0 (free) to kClaimed, filled, then published by a release
// store of the base, and freed by a store of 0. Nothing takes a lock, so a fork at any instant
// leaves the child a consistent table (a slot claimed but not yet published stays claimed: one
// slot lost). Readers re-check the base after reading a slot (a seqlock without a counter): a slot
// freed and reused meanwhile is skipped, and reuse at the same base means the same live mapping.

constexpr std::uintptr_t kClaimed = 1;
constexpr std::size_t kSlotsPerChunk = 256;

struct Chunk;

struct Slot {
  std::atomic<std::uintptr_t> base{0};
  std::atomic<std::size_t> size{0};
  std::atomic<int> fd{-1};
  Chunk* chunk = nullptr;  // written by the claimer, read by the same region's unlist
};

struct Chunk {
  Slot slots[kSlotsPerChunk];
  std::atomic<std::size_t> used{0};
  std::atomic<Chunk*> next{nullptr};
};

Chunk g_first_chunk;  // constant-initialised: usable from any static initialiser

Slot* list_region(const void* base, std::size_t size, int fd) noexcept {
  Chunk* c = &g_first_chunk;
  for (;;) {
    if (c->used.load(std::memory_order_relaxed) < kSlotsPerChunk) {
      for (Slot& s : c->slots) {
        std::uintptr_t expected = 0;
        if (s.base.load(std::memory_order_relaxed) != 0 ||
            !s.base.compare_exchange_strong(expected, kClaimed, std::memory_order_acquire,
                                            std::memory_order_relaxed))
          continue;
        c->used.fetch_add(1, std::memory_order_relaxed);
        s.chunk = c;
        s.size.store(size, std::memory_order_relaxed);
        s.fd.store(fd, std::memory_order_relaxed);
        s.base.store(reinterpret_cast<std::uintptr_t>(base), std::memory_order_release);
        return &s;
      }
    }
    Chunk* next = c->next.load(std::memory_order_acquire);
    if (next == nullptr) {
      auto* fresh = new (std::nothrow) Chunk;
      if (fresh == nullptr) return nullptr;  // not listed: this region cannot travel
      if (c->next.compare_exchange_strong(next, fresh, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
        next = fresh;
      } else {
        delete fresh;  // another thread appended one first: use theirs
      }
    }
    c = next;
  }
}

void unlist_slot(void* listed) noexcept {
  auto* s = static_cast<Slot*>(listed);
  Chunk* c = s->chunk;  // read before the slot is free: the next claimer writes it
  s->fd.store(-1, std::memory_order_relaxed);
  s->base.store(0, std::memory_order_release);
  c->used.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

bool find_region(const void* p, RegionSpan& out) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  for (Chunk* c = &g_first_chunk; c != nullptr; c = c->next.load(std::memory_order_acquire)) {
    for (Slot& s : c->slots) {
      const std::uintptr_t base = s.base.load(std::memory_order_acquire);
      if (base <= kClaimed || addr < base) continue;
      const std::size_t size = s.size.load(std::memory_order_relaxed);
      const int fd = s.fd.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.base.load(std::memory_order_relaxed) != base) continue;  // freed or reused meanwhile
      if (addr - base >= size || fd < 0) continue;
      out.fd = fd;
      out.base = reinterpret_cast<const std::byte*>(base);
      out.size = size;
      return true;
    }
  }
  return false;
}

const char* check_shared_file(int fd, std::size_t size, char* buf, std::size_t buf_size) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::snprintf(buf, buf_size, "a descriptor fstat refuses (errno %d)", errno);
    return buf;
  }
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISSOCK(st.st_mode)   ? "a socket"
                       : S_ISFIFO(st.st_mode) ? "a pipe"
                       : S_ISDIR(st.st_mode)  ? "a directory"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "not a regular file";
    std::snprintf(buf, buf_size, "%s, not shared memory", what);
    return buf;
  }
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) {
    std::snprintf(buf, buf_size, "a file fstatfs refuses (errno %d)", errno);
    return buf;
  }
  if (fs.f_type != TMPFS_MAGIC && fs.f_type != HUGETLBFS_MAGIC) {
    std::snprintf(buf, buf_size,
                  "a file on a file system other than tmpfs (type 0x%lx), "
                  "not shared memory",
                  static_cast<unsigned long>(fs.f_type));
    return buf;
  }
  const std::size_t file_size = st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : 0;
  if (size == 0 || file_size < size) {
    std::snprintf(buf, buf_size, "shared memory of %zu bytes, fewer than the %zu to map", file_size,
                  size);
    return buf;
  }
  return nullptr;
}

std::size_t page_size() noexcept {
  static const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return kPage;
}

std::error_code map_shared_anonymous(std::size_t bytes, void*& at) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return last_error();
  at = p;
  return {};
}

void unmap(void* at, std::size_t bytes) noexcept {
  if (at != nullptr) (void)::munmap(at, bytes);
}

int check_reservable(std::size_t size, const char*& why) noexcept {
  if (size > kMaxFileSize) {
    why = "more than any file can hold";
    return ENOMEM;
  }
  if (size < kCheckAvailableFrom) return 0;
  struct sysinfo si {};
  if (sysinfo(&si) == 0) {
    const std::size_t unit = si.mem_unit ? si.mem_unit : 1;
    const std::size_t machine =
        saturating_mul(saturating_add(static_cast<std::size_t>(si.totalram),
                                      static_cast<std::size_t>(si.totalswap)),
                       unit);
    if (size > machine) {
      why = "more than this machine's memory (RAM + swap)";
      return ENOMEM;
    }
  }
  std::size_t available = 0;
  if (available_memory(available) && size > available) {
    why = "more than the memory available now (MemAvailable + SwapFree in /proc/meminfo)";
    return ENOMEM;
  }
  return 0;
}

int reserve(int fd, std::size_t size) noexcept {
  if (size > kMaxFileSize) return EFBIG;
  std::size_t done = 0;
  while (done < size) {
    const std::size_t len = std::min(kReserveChunk, size - done);
    // posix_fallocate returns the error instead of setting errno.
    int r = posix_fallocate(fd, static_cast<off_t>(done), static_cast<off_t>(len));
    if (r == EINTR) continue;  // only this chunk is lost; earlier ones stay reserved
    if (r != 0) return r;
    done += len;
  }
  return 0;
}

std::shared_ptr<Region> Region::create(std::size_t size, const char* debug_name,
                                       std::error_code& ec) noexcept {
  const char* failed_call = "";
  return create(size, debug_name, ec, failed_call);
}

std::shared_ptr<Region> Region::create(std::size_t size, const char* debug_name,
                                       std::error_code& ec, const char*& failed_call) noexcept {
  const std::size_t page = page_size();
  if (size == 0) size = 1;
  // Checked before rounding up to a page, so that the rounding cannot wrap around.
  if (int err = check_reservable(size, failed_call); err != 0) {
    ec = std::error_code(err, std::generic_category());
    return nullptr;
  }
  if (size > kMaxFileSize - (page - 1)) {
    failed_call = "more than any file can hold";
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  size = (size + page - 1) / page * page;
  int fd = memfd_create(debug_name ? debug_name : "mproc", MFD_CLOEXEC);
  if (fd < 0) {
    failed_call = "memfd_create";
    ec = last_error();
    return nullptr;
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    failed_call = "ftruncate";
    ec = last_error();
    close_quietly(fd);
    return nullptr;
  }
  // Mapped before the memory is reserved: an address-space limit (RLIMIT_AS) fails here at once,
  // before any page has been allocated and zeroed.
  auto region = map_fd(fd, size, ec);  // closes fd on failure
  if (!region) {
    failed_call = "mmap";
    return nullptr;
  }
  if (int err = reserve(fd, size); err != 0) {
    failed_call = "fallocate";
    ec = std::error_code(err, std::generic_category());
    return nullptr;  // `region` unmaps and closes; the memfd's pages go with it
  }
  return region;
}

std::shared_ptr<Region> Region::map_fd(int fd, std::size_t size, std::error_code& ec) noexcept {
  void* p = size == 0 ? nullptr : mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ec = last_error();
    close_quietly(fd);
    return nullptr;
  }
  auto* r = new (std::nothrow) Region(p, size, fd);
  if (!r) {
    if (p) munmap(p, size);
    close_quietly(fd);
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  if (p != nullptr) r->listed_ = list_region(p, size, fd);
  try {
    return std::shared_ptr<Region>(r);
  } catch (const std::bad_alloc&) {  // no control block: shared_ptr deleted `r` (unmapped, closed)
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
}

void Region::unlist() noexcept {
  if (listed_ != nullptr) unlist_slot(listed_);
  listed_ = nullptr;
}

void Region::release() noexcept {
  unlist();  // before the mapping goes: a listed range is always mapped
  if (data_) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  fd_ = -1;
}

void Region::close_fd() noexcept {
  unlist();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Region::abandon() noexcept {
  close_fd();
  data_ = nullptr;
}

Region::~Region() { release(); }

void throw_region_error(std::error_code ec, const char* failed_call, const char* debug_name,
                        std::size_t size) {
  std::string what = "mproc: cannot create " + std::to_string(size) +
                     " bytes of shared memory for " + (debug_name ? debug_name : "mproc");
  if (failed_call && *failed_call) what += std::string(": ") + failed_call;
  throw_system_error(ec, what.c_str());
}

}  // namespace mproc::detail

namespace mproc::detail {

Ref<std::byte> allocate_shared_block(std::size_t size, const char* debug_name) {
  std::error_code ec;
  const char* failed_call = "";
  auto region = Region::create(size, debug_name, ec, failed_call);
  if (!region) throw_region_error(ec, failed_call, debug_name, size);
  auto* p = static_cast<std::byte*>(region->data());
  return Ref<std::byte>(make_ref<std::shared_ptr<Region>>(std::move(region)), p);
}

}  // namespace mproc::detail
