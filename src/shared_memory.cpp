// SharedMemory: named POSIX shared-memory objects (shm_open) and anonymous memfd segments.
#include <cerrno>
#include <climits>
#include <cstdio>
#include <limits>
#include <memory>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/shared_memory.hpp>
#include <stdexcept>
#include <string>
#include <system_error>

#include "handle_travel.hpp"
#include "posix/error.hpp"
#include "posix/named_segment.hpp"
#include "posix/pidfd.hpp"  // close_fd
#include "posix/region.hpp"
#include "posix/thread_id.hpp"

namespace mproc {

struct SharedMemory::Impl {
  std::shared_ptr<detail::Region> region;  // null once closed
  std::byte* data = nullptr;
  std::size_t size = 0;
  std::string name;  // without the leading '/'; empty when anonymous
  bool owns_name = false;
  bool unlinked = false;
  pid_t creator_pid = 0;
  detail::FileId id;  // identity of the named object, to unlink only this one

  // Removes the name if it still refers to this segment. Returns true if removed; sets `err` when
  // the kernel refuses. Shared by unlink() and the destructor.
  bool unlink_name(int& err) noexcept;
};

namespace {

// The largest size a file, and so a segment, can have.
constexpr std::size_t kMaxFileSize = static_cast<std::size_t>(std::numeric_limits<off_t>::max());

// "foo" or "/foo" -> "foo" (glibc's shm_open strips every leading slash too). The result is one
// file name in /dev/shm: not empty, no '/' or NUL, not "." or ".." (the directory itself and its
// parent, which shm_open would report as "File exists" or "Invalid argument"), at most NAME_MAX
// characters (longer fails in the kernel with ENAMETOOLONG).
std::string normalise_name(std::string name, const char* where) {
  const std::string op = std::string("mproc::SharedMemory::") + where + ": ";
  std::size_t first = name.find_first_not_of('/');
  if (first == std::string::npos) throw ValueError(op + "the name is empty");
  name.erase(0, first);
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    throw ValueError(op + "invalid name \"" + name +
                     "\" (a name may not contain '/' after the leading one, nor NUL)");
  }
  if (name == "." || name == "..") {
    throw ValueError(
        op + "\"" + name +
        "\" is not a valid segment name (it names the directory /dev/shm or its parent)");
  }
  if (name.size() > NAME_MAX) {
    throw ValueError(op + "the name is " + std::to_string(name.size()) +
                     " characters long, longer than NAME_MAX (" + std::to_string(NAME_MAX) +
                     "): \"" + name.substr(0, 32) + "...\"");
  }
  return name;
}

std::string path_of(const std::string& name) { return "/" + name; }

// "mproc::SharedMemory::create(\"name\", 4096 bytes)": the call an error message starts with.
std::string describe(const char* where, const std::string& name, std::size_t size) {
  std::string s = std::string("mproc::SharedMemory::") + where + "(";
  if (!name.empty()) s += "\"" + name + "\"";
  if (size != 0) s += (name.empty() ? "" : ", ") + std::to_string(size) + " bytes";
  return s + ")";
}

// Throws std::system_error(err): "<op>: <action>: <call>: <message> (<errno name>)".
[[noreturn]] void throw_os(int err, const std::string& op, const char* action, const char* call) {
  std::string what = op + ": " + action;
  if (call && *call) what += std::string(": ") + call;
  detail::throw_errno(err, what.c_str());
}

// The segment's name still refers to the object `id`? ENOENT -> false.
// Any other failure to look -> true (let shm_unlink decide).
bool still_names(const std::string& name, const detail::FileId& id) noexcept {
  int fd = -1;
  if (auto ec = detail::shm_open_existing(path_of(name), true, fd))
    return ec != std::errc::no_such_file_or_directory;
  detail::FileId now;
  std::size_t size = 0;
  const bool same =
      detail::file_identity(fd, now, size) || (now.dev == id.dev && now.ino == id.ino);
  detail::close_fd(fd);
  return same;
}

std::string random_name(std::size_t size) {
  unsigned char bytes[4];
  if (auto ec = detail::random_bytes(bytes, sizeof bytes))
    throw_os(ec.value(), describe("create", "", size), "cannot generate a name", "getrandom");
  char out[16];
  std::snprintf(out, sizeof out, "psm_%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return out;
}

[[noreturn]] void throw_zero_size(const char* where) {
  throw ValueError(std::string("mproc::SharedMemory::") + where +
                   ": 'size' must be a positive number different from zero");
}

}  // namespace

bool SharedMemory::Impl::unlink_name(int& err) noexcept {
  err = 0;
  if (name.empty() || unlinked) return false;
  const bool owned = owns_name;
  unlinked = true;
  owns_name = false;
  if (!still_names(name, id)) return false;
  if (auto ec = detail::shm_remove(path_of(name))) {
    if (ec == std::errc::no_such_file_or_directory) return false;
    err = ec.value();
    unlinked = false;  // still there: a later call (or the creator's destructor) may retry
    owns_name = owned;
    return false;
  }
  return true;
}

SharedMemory::SharedMemory() noexcept = default;
SharedMemory::SharedMemory(detail::Box<Impl> impl) noexcept : impl_(std::move(impl)) {}
SharedMemory::SharedMemory(SharedMemory&& other) noexcept = default;

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    SharedMemory old(std::move(*this));
    impl_ = std::move(other.impl_);
  }
  return *this;
}

SharedMemory::~SharedMemory() {
  if (!impl_) return;
  close();
  if (impl_->owns_name && impl_->creator_pid == detail::this_process_id()) {
    int err = 0;
    (void)impl_->unlink_name(err);
  }
}

SharedMemory SharedMemory::create(std::string name, std::size_t size) {
  name = normalise_name(std::move(name), "create");
  if (size == 0) throw_zero_size("create");
  const std::string op = describe("create", name, size);
  // Sizes are refused before anything is created.
  if (size > kMaxFileSize) {
    throw_os(EFBIG, op, "cannot create the segment", "more than any file can hold");
  }
  const char* why = "";
  if (int err = detail::check_reservable(size, why); err != 0) {
    throw_os(err, op, "cannot reserve the memory", why);
  }
  const std::string path = path_of(name);
  int fd = -1;
  if (auto ec = detail::shm_create(path, fd))
    throw_os(ec.value(), op, "cannot create the segment", "shm_open");
  detail::FileId id;
  bool known = false;  // `id` identifies the segment
  // Leaves nothing behind: the descriptor closed, the name (made by this call) removed unless
  // someone else has replaced it meanwhile, nothing mapped.
  auto discard = [&](int err, const char* action, const char* call) {
    detail::close_fd(fd);
    if (!known || still_names(name, id)) (void)detail::shm_remove(path);
    throw_os(err, op, action, call);
  };
  std::size_t existing = 0;
  if (auto ec = detail::file_identity(fd, id, existing))
    discard(ec.value(), "cannot create the segment", "fstat");
  known = true;
  if (auto ec = detail::set_file_size(fd, size))
    discard(ec.value(), "cannot size the segment", "ftruncate");
  std::error_code ec;
  auto region = detail::Region::map_fd(fd, size, ec);  // owns fd from here, closes it on failure
  if (!region) {
    fd = -1;
    discard(ec.value(), "cannot map the segment", "mmap");
  }
  // Every page is allocated now, so that a full /dev/shm is an error here and not a SIGBUS at the
  // first write (ftruncate alone makes a sparse file that tmpfs fills on demand).
  if (int err = detail::reserve(region->fd(), size); err != 0) {
    region.reset();  // unmaps and closes
    fd = -1;
    discard(err, "cannot reserve the memory in /dev/shm", "fallocate");
  }
  auto impl = detail::make_box<Impl>();
  impl->data = static_cast<std::byte*>(region->data());
  impl->region = std::move(region);
  impl->size = size;
  impl->name = std::move(name);
  impl->owns_name = true;
  impl->creator_pid = detail::this_process_id();
  impl->id = id;
  return SharedMemory(std::move(impl));
}

SharedMemory SharedMemory::create(std::size_t size) {
  if (size == 0) throw_zero_size("create");
  for (;;) {
    try {
      return create(random_name(size), size);
    } catch (const std::system_error& e) {
      if (e.code() != std::errc::file_exists) throw;
    }
  }
}

SharedMemory SharedMemory::attach(std::string name) {
  name = normalise_name(std::move(name), "attach");
  int fd = -1;
  if (auto ec = detail::shm_open_existing(path_of(name), false, fd))
    throw_os(ec.value(), describe("attach", name, 0), "cannot open the segment", "shm_open");
  detail::FileId id;
  std::size_t size = 0;
  if (auto ec = detail::file_identity(fd, id, size)) {
    detail::close_fd(fd);
    throw_os(ec.value(), describe("attach", name, 0), "cannot open the segment", "fstat");
  }
  if (size == 0) {
    detail::close_fd(fd);
    throw ValueError("mproc::SharedMemory::attach(\"" + name +
                     "\"): the segment is empty (size 0), nothing to map");
  }
  std::error_code ec;
  auto region = detail::Region::map_fd(fd, size, ec);  // closes fd on failure
  if (!region)
    throw_os(ec.value(), describe("attach", name, size), "cannot map the segment", "mmap");
  auto impl = detail::make_box<Impl>();
  impl->data = static_cast<std::byte*>(region->data());
  impl->region = std::move(region);
  impl->size = size;
  impl->name = std::move(name);
  impl->id = id;
  return SharedMemory(std::move(impl));
}

SharedMemory SharedMemory::anonymous(std::size_t size) {
  if (size == 0) throw_zero_size("anonymous");
  std::error_code ec;
  const char* failed_call = "";
  auto region = detail::Region::create(size, "mproc.SharedMemory", ec, failed_call);
  if (!region) {
    throw_os(ec.value(), describe("anonymous", "", size), "cannot create the segment", failed_call);
  }
  auto impl = detail::make_box<Impl>();
  impl->data = static_cast<std::byte*>(region->data());
  impl->region = std::move(region);
  impl->size = size;
  return SharedMemory(std::move(impl));
}

std::span<std::byte> SharedMemory::buf() {
  if (!impl_ || !impl_->region) {
    throw ValueError("mproc::SharedMemory::buf: the segment is closed");
  }
  return {impl_->data, impl_->size};
}

std::span<const std::byte> SharedMemory::buf() const {
  if (!impl_ || !impl_->region) {
    throw ValueError("mproc::SharedMemory::buf: the segment is closed");
  }
  return {impl_->data, impl_->size};
}

std::size_t SharedMemory::size() const noexcept { return impl_ ? impl_->size : 0; }

const std::string& SharedMemory::name() const noexcept {
  static const std::string kEmpty;
  return impl_ ? impl_->name : kEmpty;
}

bool SharedMemory::is_open() const noexcept { return impl_ && impl_->region; }

void SharedMemory::close() noexcept {
  if (!impl_) return;
  impl_->region.reset();  // munmap + close(fd)
  impl_->data = nullptr;
}

bool SharedMemory::unlink() {
  if (!impl_) return false;
  int err = 0;
  bool removed = impl_->unlink_name(err);
  if (err != 0) {
    throw_os(err, describe("unlink", impl_->name, 0), "cannot remove the name", "shm_unlink");
  }
  return removed;
}

void SharedMemory::release_name() noexcept {
  if (impl_) impl_->owns_name = false;
}

bool SharedMemory::owns_name() const noexcept { return impl_ && impl_->owns_name; }

// ---------------------------------------------------------------------------------------------
// SharedMemory travels: kind byte, named flag (0/1), RegionRef (index kNoDescriptor when it travels
// by name alone), the user-visible size (u64), the name (u64 length, bytes; empty when anonymous).

using detail::HandleKind;

namespace {

constexpr std::size_t kNameMax = NAME_MAX;

[[noreturn]] void throw_closed_travel() {
  throw ValueError("mproc::SharedMemory: a closed segment cannot travel to another process");
}

}  // namespace

std::size_t codec<SharedMemory, void>::size(const SharedMemory& v) {
  if (!v.is_open()) throw_closed_travel();
  return detail::kKindBytes + 1 + detail::kRegionRefBytes + 8 + 8 + v.impl_->name.size();
}

void codec<SharedMemory, void>::encode(Writer& w, const SharedMemory& v) {
  if (!v.is_open()) throw_closed_travel();
  const SharedMemory::Impl& impl = *v.impl_;
  const bool named = !impl.name.empty();
  const bool by_name = named && detail::travel_out() == nullptr;
  if (!by_name) detail::require_travel_out(HandleKind::kSharedMemory);
  w.write_value(static_cast<std::uint8_t>(HandleKind::kSharedMemory));
  w.write_value(static_cast<std::uint8_t>(named ? 1 : 0));
  if (by_name) {
    w.write_value(detail::kNoDescriptor);
    w.write_value(std::uint64_t{0});
    w.write_value(std::uint64_t{0});
  } else {
    detail::write_region_ref(w, *impl.region, HandleKind::kSharedMemory);
  }
  w.write_value(static_cast<std::uint64_t>(impl.size));
  w.write_value(static_cast<std::uint64_t>(impl.name.size()));
  w.write(impl.name.data(), impl.name.size());
}

SharedMemory codec<SharedMemory, void>::decode(Reader& r) {
  constexpr HandleKind kWhat = HandleKind::kSharedMemory;
  return detail::decode_named(kWhat, [&] {
    detail::read_kind(r, kWhat);
    const auto named = r.read_value<std::uint8_t>();
    const detail::RegionRef ref = detail::read_region_fields(r);
    const auto size = r.read_value<std::uint64_t>();
    const auto length = r.read_value<std::uint64_t>();
    if (named > 1) detail::throw_decode(kWhat, "bad named flag " + std::to_string(named));
    if (length > kNameMax || length > r.remaining()) {
      detail::throw_decode(kWhat, "a name of " + std::to_string(length) + " bytes");
    }
    std::string name(static_cast<std::size_t>(length), '\0');
    r.read(name.data(), name.size());
    if ((named == 1) != !name.empty()) {
      detail::throw_decode(
          kWhat, named ? "a named segment without a name" : "an anonymous segment with a name");
    }
    if (named == 1) {
      try {
        if (normalise_name(name, "decode") != name) throw ValueError("not normalised");
      } catch (const ValueError&) {
        detail::throw_decode(kWhat, "an invalid segment name");
      }
      if (ref.index == detail::kNoDescriptor) return SharedMemory::attach(name);
    }
    if (size == 0 || ref.offset != 0 || size > ref.size) {
      detail::throw_decode(kWhat, "a segment of " + std::to_string(size) +
                                      " bytes does not fit the " + std::to_string(ref.size) +
                                      " bytes to map at offset " + std::to_string(ref.offset));
    }
    detail::Received got = detail::map_region_ref(ref, kWhat, static_cast<std::size_t>(size), 1);
    auto impl = detail::make_box<SharedMemory::Impl>();
    if (named == 1) {
      std::size_t file_size = 0;
      if (auto ec = detail::file_identity(got.region->fd(), impl->id, file_size)) {
        throw_os(ec.value(), describe("decode", name, size), "cannot identify the segment",
                 "fstat");
      }
    }
    impl->data = got.object;
    impl->region = std::move(got.region);
    impl->size = static_cast<std::size_t>(size);
    impl->name = std::move(name);
    return SharedMemory(std::move(impl));
  });
}

// ---------------------------------------------------------------------------------------------
// Value and Array travel: kind byte, RegionRef of the data, element count, size and alignment
// (u64 each), a lock flag (0/1), and the RLock as its own codec writes it.

namespace detail {

std::size_t shared_block_size(bool has_lock) noexcept {
  return kKindBytes + kRegionRefBytes + 3 * 8 + 1 + (has_lock ? kMutexBytes : 0);
}

void encode_shared_block(Writer& w, const SharedBlockLayout& layout, const void* data,
                         const std::optional<RLock>& lock) {
  const HandleKind kind = layout.array ? HandleKind::kArray : HandleKind::kValue;
  require_travel_out(kind);
  w.write_value(static_cast<std::uint8_t>(kind));
  write_region_ref(w, data, kind);
  w.write_value(static_cast<std::uint64_t>(layout.count));
  w.write_value(static_cast<std::uint64_t>(layout.elem_size));
  w.write_value(static_cast<std::uint64_t>(layout.elem_align));
  w.write_value(static_cast<std::uint8_t>(lock ? 1 : 0));
  if (lock) codec<RLock, void>::encode(w, *lock);
}

Ref<std::byte> decode_shared_block(Reader& r, SharedBlockLayout& layout,
                                   std::optional<RLock>& lock) {
  const HandleKind kind = layout.array ? HandleKind::kArray : HandleKind::kValue;
  return decode_named(kind, [&] {
    read_kind(r, kind);
    const RegionRef ref = read_region_fields(r);
    const auto count = r.read_value<std::uint64_t>();
    const auto elem_size = r.read_value<std::uint64_t>();
    const auto elem_align = r.read_value<std::uint64_t>();
    const auto has_lock = r.read_value<std::uint8_t>();
    if (elem_size != layout.elem_size || elem_align != layout.elem_align) {
      throw_decode(kind, "its elements are " + std::to_string(elem_size) + " bytes aligned to " +
                             std::to_string(elem_align) + ", the receiving type's " +
                             std::to_string(layout.elem_size) + " bytes aligned to " +
                             std::to_string(layout.elem_align));
    }
    if (!layout.array && count != 1) {
      throw_decode(kind, "a Value of " + std::to_string(count) + " elements");
    }
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(count, elem_size, &bytes)) {
      throw_decode(kind, std::to_string(count) + " elements of " + std::to_string(elem_size) +
                             " bytes overflow");
    }
    if (has_lock > 1) throw_decode(kind, "bad lock flag " + std::to_string(has_lock));
    Received got = map_region_ref(ref, kind, static_cast<std::size_t>(bytes),
                                  static_cast<std::size_t>(elem_align));
    if (has_lock == 1) lock = codec<RLock, void>::decode(r);
    layout.count = static_cast<std::size_t>(count);
    std::byte* p = got.object;
    return Ref<std::byte>(make_ref<std::shared_ptr<Region>>(std::move(got.region)), p);
  });
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Value and Array: what does not depend on their element type

std::optional<RLock> LockOption::make() const {
  if (none_) return std::nullopt;
  if (lock_) return lock_;
  return RLock();
}

namespace detail {

void throw_no_lock(const char* type) {
  throw ValueError(std::string("mproc::") + type +
                   "::get_lock(): created with mproc::no_lock, it has no lock");
}

void throw_array_index() { throw std::out_of_range("mproc::Array::at: index out of range"); }

void throw_array_negative_size() {
  throw ValueError("mproc::Array: the range has a negative size");
}

void throw_array_too_large(std::size_t n, std::size_t element_size, bool more_than) {
  throw ValueError("mproc::Array: " + std::string(more_than ? "more than " : "") +
                   std::to_string(n) + " elements of " + std::to_string(element_size) +
                   " bytes do not fit in memory (the size overflows std::size_t)");
}

}  // namespace detail

}  // namespace mproc
