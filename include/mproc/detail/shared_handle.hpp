// mproc/detail/shared_handle.hpp — raw blocks of anonymous shared memory for header-only templates.
//
// No stability promise. A block is a memfd mapped MAP_SHARED; the returned pointer keeps the
// mapping alive (a `Ref` whose count owns the mapping), so copying it adds a reference to the same
// pages; an aliasing `Ref<T>(block, p)` into it does too. A block that exists before fork is valid
// in the child.
#pragma once

#include <cstddef>
#include <mproc/detail/ref.hpp>
#include <mproc/export.hpp>

namespace mproc::detail {

// A zero-filled block of at least `size` bytes, page-aligned, in anonymous shared memory.
// Throws std::system_error when the memory cannot be had.
MPROC_API Ref<std::byte> allocate_shared_block(std::size_t size, const char* debug_name);

}  // namespace mproc::detail
