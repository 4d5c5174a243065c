#include "posix/region.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <mproc/detail/shared_handle.hpp>

#include "posix/error.hpp"

namespace mproc::detail {

std::size_t page_size() noexcept {
  static const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return kPage;
}

std::shared_ptr<Region> Region::create(std::size_t size, const char* debug_name,
                                       std::error_code& ec) noexcept {
  const std::size_t page = page_size();
  if (size == 0) size = 1;
  size = (size + page - 1) / page * page;
  int fd = memfd_create(debug_name ? debug_name : "mproc", MFD_CLOEXEC);
  if (fd < 0) {
    ec = last_error();
    return nullptr;
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ec = last_error();
    close(fd);
    return nullptr;
  }
  return map_fd(fd, size, ec);
}

std::shared_ptr<Region> Region::map_fd(int fd, std::size_t size, std::error_code& ec) noexcept {
  void* p = size == 0 ? nullptr : mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ec = last_error();
    close(fd);
    return nullptr;
  }
  auto* r = new (std::nothrow) Region(p, size, fd);
  if (!r) {
    if (p) munmap(p, size);
    close(fd);
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  return std::shared_ptr<Region>(r);
}

void Region::release() noexcept {
  if (data_) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  fd_ = -1;
}

Region::~Region() { release(); }

void throw_region_error(std::error_code ec) {
  throw_system_error(ec, "mproc: cannot create shared memory");
}

}  // namespace mproc::detail

namespace mproc::detail {

std::shared_ptr<std::byte> allocate_shared_block(std::size_t size, const char* debug_name) {
  std::error_code ec;
  auto region = Region::create(size, debug_name, ec);
  if (!region) throw_region_error(ec);
  auto* p = static_cast<std::byte*>(region->data());
  return std::shared_ptr<std::byte>(std::move(region), p);
}

}  // namespace mproc::detail
