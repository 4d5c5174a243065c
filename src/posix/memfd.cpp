#include "posix/memfd.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "posix/error.hpp"
#include "posix/pidfd.hpp"

namespace mproc::detail {

std::error_code create_unreserved_memfd(std::size_t bytes, const char* name, int& fd, void*& at,
                                        const char*& call) noexcept {
  call = "memfd_create";
  const int f = ::memfd_create(name, MFD_CLOEXEC);
  if (f < 0) return last_error();
  call = "ftruncate";
  if (retry_on_eintr([&] { return ::ftruncate(f, static_cast<off_t>(bytes)); }) != 0) {
    const std::error_code ec = last_error();
    close_fd(f);
    return ec;
  }
  call = "mmap";
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, f, 0);
  if (p == MAP_FAILED) {
    const std::error_code ec = last_error();
    close_fd(f);
    return ec;
  }
  fd = f;
  at = p;
  return {};
}

std::error_code map_memfd(int fd, std::size_t bytes, void*& at) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return last_error();
  if (!S_ISREG(st.st_mode) || st.st_size < 0 || static_cast<std::size_t>(st.st_size) < bytes ||
      bytes == 0)
    return std::make_error_code(std::errc::invalid_argument);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) return last_error();
  at = p;
  return {};
}

}  // namespace mproc::detail
