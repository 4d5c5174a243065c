// posix/named_segment.hpp — named POSIX shared-memory objects (shm_open, /dev/shm) and the file
// calls SharedMemory makes on them.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <system_error>

namespace mproc::detail {

// Which file a descriptor or a name refers to, to tell a segment from a later one of the same name.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
};

// shm_open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600) (0600 as Python's SharedMemory).
// `path` is "/name". EEXIST when the name is taken.
std::error_code shm_create(const std::string& path, int& fd) noexcept;

// shm_open of an existing segment, read-write (or read-only with `read_only`), O_CLOEXEC.
std::error_code shm_open_existing(const std::string& path, bool read_only, int& fd) noexcept;

// shm_unlink(path); ENOENT when there is no such name.
std::error_code shm_remove(const std::string& path) noexcept;

// fstat: the file's identity and size.
std::error_code file_identity(int fd, FileId& id, std::size_t& size) noexcept;

// ftruncate to `size` bytes (EFBIG beyond off_t).
std::error_code set_file_size(int fd, std::size_t size) noexcept;

// Fills `buf` with `n` bytes from the kernel's random source (getrandom; EINTR retried).
std::error_code random_bytes(void* buf, std::size_t n) noexcept;

}  // namespace mproc::detail
