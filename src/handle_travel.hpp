// handle_travel.hpp — what the codecs of the shared-memory handles (sync.hpp, shared_memory.hpp)
// share: the wire form of a reference to shared memory, and the checks of the receiving side.
// Implemented in sync.cpp.
//
// Wire form of every handle (host byte order, as the codec): a kind byte (HandleKind), then the
// handle's fields; each piece of shared memory it refers to is a RegionRef:
//   u32 index   the descriptor's index in the Descriptors list that travels beside the bytes
//   u64 size    bytes of the descriptor to map (the sender's whole mapping)
//   u64 offset  where the object lies in that mapping
// The sender finds the descriptor of the region its handle points into with find_region
// (posix/region.hpp) and adds a duplicate to the TravelOut scope's list. The receiver checks the
// descriptor before it maps anything (a regular file on tmpfs, at least `size` bytes, the object
// inside it and aligned), maps a duplicate MAP_SHARED (so that the handle can travel on), and
// builds a handle that holds the mapping. Every refusal is a DecodeError naming the handle type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mproc/byte_stream.hpp>
#include <mproc/detail/ref.hpp>
#include <string>

#include "posix/region.hpp"

namespace mproc::detail {

enum class HandleKind : std::uint8_t {
  kLock = 1,
  kRLock = 2,
  kSemaphore = 3,
  kBoundedSemaphore = 4,
  kCondition = 5,
  kEvent = 6,
  kBarrier = 7,
  kValue = 8,
  kArray = 9,
  kSharedMemory = 10,
};

// "mproc::Lock", ...
const char* handle_type_name(HandleKind kind) noexcept;

inline constexpr std::size_t kKindBytes = 1;
inline constexpr std::size_t kRegionRefBytes = 4 + 8 + 8;
// A mutex as Lock, RLock, Condition, Value and Array write it: kind byte, RegionRef.
inline constexpr std::size_t kMutexBytes = kKindBytes + kRegionRefBytes;
// The fd index that says "no descriptor travelled" (a named SharedMemory sent by name only).
inline constexpr std::uint32_t kNoDescriptor = 0xffffffffu;

// Throws ValueError ("mproc::Lock can travel to another process only as an argument of a Process
// or of a Pool task (Python: ...)") unless a TravelOut scope is active on this thread.
void require_travel_out(HandleKind kind);

// Writes the RegionRef of the object at `object` (inside a listed region of this process) and
// adds a duplicate of the region's descriptor to the TravelOut scope's list. `what` names the
// handle in errors. Throws Error when the object is in no listed region, std::system_error when
// no descriptor can be had.
void write_region_ref(Writer& w, const void* object, HandleKind what);
// Writes a RegionRef for `region` itself (offset 0, the whole mapping).
void write_region_ref(Writer& w, const Region& region, HandleKind what);

// A region received and mapped, and the object in it.
struct Received {
  std::shared_ptr<Region> region;
  std::byte* object = nullptr;
  std::uint64_t size = 0;  // the size that was mapped
};

// A RegionRef as read, not yet checked.
struct RegionRef {
  std::uint32_t index = 0;
  std::uint64_t size = 0;
  std::uint64_t offset = 0;
};
RegionRef read_region_fields(Reader& r);

// Maps what a RegionRef names: the descriptor at its index in the TravelIn scope's list must be
// shared memory of at least `size` bytes, the object (`object_size` bytes, aligned to
// `object_align`) must lie inside. Throws DecodeError naming `what` otherwise.
Received map_region_ref(const RegionRef& ref, HandleKind what, std::size_t object_size,
                        std::size_t object_align);
// read_region_fields, then map_region_ref.
Received read_region_ref(Reader& r, HandleKind what, std::size_t object_size,
                         std::size_t object_align);

// Reads the kind byte and checks it is `expected`.
void read_kind(Reader& r, HandleKind expected);

[[noreturn]] void throw_decode(HandleKind what, const std::string& why);

// Runs `fn` (a decode), prefixing any DecodeError that does not yet name the handle type (a
// truncation reported by the Reader) with it.
template <class Fn>
auto decode_named(HandleKind what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const DecodeError& e) {
    const std::string name = handle_type_name(what);
    if (std::string(e.what()).rfind(name, 0) == 0) throw;
    throw_decode(what, e.what());
  }
}

}  // namespace mproc::detail
