#include "posix/named_segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include "posix/error.hpp"

namespace mproc::detail {

namespace {
constexpr mode_t kMode = 0600;
}  // namespace

std::error_code shm_create(const std::string& path, int& fd) noexcept {
  const int r = ::shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, kMode);
  if (r < 0) return last_error();
  fd = r;
  return {};
}

std::error_code shm_open_existing(const std::string& path, bool read_only, int& fd) noexcept {
  const int r = ::shm_open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC, kMode);
  if (r < 0) return last_error();
  fd = r;
  return {};
}

std::error_code shm_remove(const std::string& path) noexcept {
  if (::shm_unlink(path.c_str()) != 0) return last_error();
  return {};
}

std::error_code file_identity(int fd, FileId& id, std::size_t& size) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return last_error();
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  size = st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : 0;
  return {};
}

std::error_code set_file_size(int fd, std::size_t size) noexcept {
  if (size > static_cast<std::size_t>(std::numeric_limits<off_t>::max())) return errno_code(EFBIG);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return last_error();
  return {};
}

std::error_code random_bytes(void* buf, std::size_t n) noexcept {
  auto* p = static_cast<unsigned char*>(buf);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = retry_on_eintr([&] { return ::getrandom(p + got, n - got, 0); });
    if (r < 0) return last_error();
    got += static_cast<std::size_t>(r);
  }
  return {};
}

}  // namespace mproc::detail
