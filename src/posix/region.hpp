// posix/region.hpp — anonymous shared memory: a memfd mapped MAP_SHARED, and objects placed in it.
//
// Nothing is named in /dev/shm, so a crash cannot leak a segment: the pages are freed when the last
// process that maps them (or holds the fd) is gone. The fd is kept (O_CLOEXEC) so that a later
// start method that re-executes the child can hand it over.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <system_error>
#include <utility>

namespace mproc::detail {

class Region {
 public:
  // Creates a zero-filled anonymous region of at least `size` bytes (rounded up to a page).
  static std::shared_ptr<Region> create(std::size_t size, const char* debug_name,
                                        std::error_code& ec) noexcept;
  // Maps an existing fd (e.g. a named segment opened with shm_open). Takes ownership of `fd`.
  static std::shared_ptr<Region> map_fd(int fd, std::size_t size, std::error_code& ec) noexcept;

  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  int fd() const noexcept { return fd_; }

  // Unmaps and closes now (idempotent); data() becomes null.
  void release() noexcept;

 private:
  Region(void* data, std::size_t size, int fd) noexcept : data_(data), size_(size), fd_(fd) {}
  void* data_;
  std::size_t size_;
  int fd_;
};

std::size_t page_size() noexcept;

[[noreturn]] void throw_region_error(std::error_code ec);

// Creates a region and constructs a `T` at its start; returns a pointer to the object that keeps
// the region alive (aliasing shared_ptr). Throws std::system_error when the region cannot be
// created. `T` is never destroyed: objects in shared memory outlive any one process's handle.
template <class T, class... Args>
std::shared_ptr<T> make_shared_object(const char* debug_name, Args&&... args) {
  std::error_code ec;
  auto region = Region::create(sizeof(T), debug_name, ec);
  if (!region) throw_region_error(ec);
  T* obj = ::new (region->data()) T(std::forward<Args>(args)...);
  return std::shared_ptr<T>(std::move(region), obj);
}

}  // namespace mproc::detail
