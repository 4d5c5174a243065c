// posix/memfd.hpp — shared memory with a descriptor and without reservation: for areas whose pages
// are touched only as far as they are used (the Pool's staging areas), which a fresh program image
// must be able to map (Region reserves every page; map_shared_anonymous has no descriptor).
#pragma once

#include <cstddef>
#include <system_error>

namespace mproc::detail {

// A memfd of `bytes` (ftruncate, nothing reserved: a page is committed when first touched, as
// MAP_NORESERVE anonymous memory) mapped MAP_SHARED; zero-filled. `fd` is close-on-exec. On failure
// nothing is left open or mapped and `call` names the step ("memfd_create", "ftruncate", "mmap").
std::error_code create_unreserved_memfd(std::size_t bytes, const char* name, int& fd, void*& at,
                                        const char*& call) noexcept;

// Maps `bytes` of the memfd `fd` (borrowed) MAP_SHARED, after checking that the file is at least
// that long (EINVAL otherwise: a mapping past its end would SIGBUS).
std::error_code map_memfd(int fd, std::size_t bytes, void*& at) noexcept;

}  // namespace mproc::detail
