// mproc/shared_memory.hpp — shared memory between processes: `SharedMemory`, `Value` and `Array`.
//
// Mirrors multiprocessing.shared_memory (`SharedMemory`) and multiprocessing.sharedctypes (`Value`,
// `Array`).
//
//   * `SharedMemory` is a block of raw bytes. It is either named (a POSIX shared-memory object in
//     /dev/shm, which any process — Python's `SharedMemory(name=...)` included — can attach to by
//     name) or anonymous (a memfd that nobody can find by name; children inherit it across fork).
//   * `Value<T>` and `Array<T>` hold typed data in anonymous shared memory, with an `RLock` by
//     default. Nothing they use is named, so a crash can never leak them.
//
// Named segments and their lifetime (the one thing here that can outlive every process):
//   * The handle that created a named segment owns its name: its destructor unlinks the segment (in
//     the creating process only; a forked child's copy of the handle never does). This is RAII as a
//     C++ user expects it — the object that made the resource removes it — and is what Python asks
//     of its users by hand ("unlink() should be called once by the creator").
//   * `close()` only unmaps, as Python's close(); the creator still unlinks when destroyed.
//   * `release_name()` gives the duty up (as `std::unique_ptr::release`) when the segment must
//     outlive its creator, e.g. for a Python process that reads it later. Python 3.13 calls this
//     `track=False`.
//   * Attachers never unlink implicitly. Python's resource tracker did, and removed segments that
//     other processes still used; here only an explicit `unlink()` removes a name one did not
//     create.
//   * A creator killed by a signal (SIGKILL) cannot unlink: its named segment stays in /dev/shm
//     until someone unlinks it or the machine restarts. That is inherent to named shared memory
//     and the reason everything else in mproc is anonymous. Prefer `SharedMemory::anonymous`,
//     `Value` and `Array` unless another program must find the segment by name.
//
// Memory is reserved at creation. Every segment, `Value` and `Array` made here has all its pages
// allocated when the constructor returns (fallocate), so that running out of memory, or of space
// in /dev/shm, is a std::system_error (ENOMEM, ENOSPC) at creation with nothing left behind, and
// never a SIGBUS at the first write. The price is that a large segment costs its memory at once,
// even where it would have been touched sparsely, and creation zeroes its pages (about the cost of
// writing them once). A size larger than the machine's memory (RAM + swap) is refused at once, and
// from 64 MiB on also a size larger than the memory available now (MemAvailable + SwapFree): the
// kernel would otherwise reclaim and then call the OOM killer, which would pick another process.
// `attach` reserves nothing: a segment made elsewhere (by Python, which only sizes it) may be
// sparse, and a write into it may still meet a full /dev/shm.
//
// Differences from Python:
//   * `unlink()` returns false when the name is already gone (as `std::filesystem::remove`); Python
//     raises FileNotFoundError.
//   * `Array`'s element access does not take the lock (C++ hands out references); hold
//     `get_lock()` around accesses that other processes may race with.
//
// Travel to another program image (spawn, forkserver): `SharedMemory`, `Value<T>` and `Array<T>`
// are encodable with `mproc::codec`, so they can be arguments of a Process or of a Pool task under
// any start method; their descriptors travel beside the bytes (mproc/detail/travel.hpp) and the
// receiver maps the same memory. A named SharedMemory travels by descriptor (the same object even
// if its name has been unlinked or reused meanwhile) with its name: the receiver's `name()` is the
// sender's and it never owns the name (Python: only the creator unlinks); outside a travel scope (a
// Queue, a Pipe) it travels by name alone and the receiver attaches it, as Python pickles it. (A
// Process drops its arguments after start(): give it `attach(name())`, not the creator's handle,
// unless the name should go then.) An anonymous segment, a Value and an Array travel only as
// Process or Pool task arguments (ValueError elsewhere, as Python's "Synchronized objects should
// only be shared between processes through inheritance"). A Value or Array travels with its lock
// (the receiver's `get_lock()` is the same RLock) or without one, and with its element size and
// alignment, which the receiver checks against its own `T` (and an Array its element count against
// the memory). A closed SharedMemory does not travel (ValueError). Bad bytes or descriptors are a
// DecodeError naming the type.
//
// Header cost (docs/design.md, "Header cost"): this header includes none of <memory>, <atomic>,
// <mutex>. Handles hold their memory through `detail::Ref` / `detail::Box`; `Value<T>` without a
// lock loads and stores through the compiler's `__atomic` builtins (detail::atomic_copyable_v),
// which is what std::atomic_ref<T> does; the code that does not depend on `T` (the errors thrown,
// LockOption) is in src/shared_memory.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/shared_handle.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/sync.hpp>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace mproc {

template <class T>
class Value;
template <class T>
class Array;

// A block of shared memory: named (findable by other processes, Python's included) or anonymous.
//
// A move-only handle: the mapping belongs to it, and a named segment's creator owns the name (see
// the header comment for the lifetime policy). A handle that exists before `fork` is valid in the
// child, which shares the same pages.
//
// Names are given with or without the leading '/' and reported without it, as Python does: a
// segment created here as "foo" (or "/foo") is /dev/shm/foo and is opened by Python's
// `SharedMemory(name="foo")`. Segments are created with mode 0600, as Python's.
//
// Thread safety: a handle is not synchronised (use one handle per thread, or guard it); the bytes
// in `buf()` are plain shared memory, synchronised by whatever the processes agree on.
// Process safety: the bytes are shared by every process that maps the segment.
//
//   auto shm = mproc::SharedMemory::create("frames", 1 << 20);  // unlinked when `shm` dies
//   std::ranges::fill(shm.buf(), std::byte{0});
//   // in Python: SharedMemory(name="frames").buf[:16]
//
// Mirrors multiprocessing.shared_memory.SharedMemory.
class MPROC_API SharedMemory {
 public:
  // Creates a new named segment of exactly `size` bytes, zero-filled, every page reserved
  // (shm_open with O_CREAT | O_EXCL, ftruncate, fallocate). The returned handle owns the name.
  // Throws ValueError if `size` is 0, or if `name` is empty, contains '/' (after leading slashes)
  // or a NUL character, is "." or "..", or is longer than NAME_MAX (255) characters;
  // std::system_error with `std::errc::file_exists` if a segment of that name exists,
  // `no_space_on_device` (ENOSPC) if /dev/shm has not room for it, `not_enough_memory` (ENOMEM)
  // if the machine has not the memory (see the header comment), `file_too_large` (EFBIG) above
  // the largest file size, and the errno of the failing call otherwise. On any error nothing is
  // left behind: no name in /dev/shm, no descriptor, no mapping. Messages name the call, the
  // segment and its size, the failing system call and the errno:
  //   mproc::SharedMemory::create("frames", 4194304 bytes): cannot reserve the memory in
  //   /dev/shm: fallocate: No space left on device (ENOSPC)
  // Mirrors SharedMemory(name=name, create=True, size=size).
  static SharedMemory create(std::string name, std::size_t size);

  // Creates a new named segment with a generated name, "psm_" followed by 8 random hex digits as
  // Python generates them (retrying on a collision). It can be attached by `name()`; the handle
  // owns the name. Throws as create(name, size).
  // Mirrors SharedMemory(create=True, size=size).
  static SharedMemory create(std::size_t size);

  // Opens and maps an existing named segment; its size is the segment's (fstat). Never unlinks it
  // implicitly. Throws std::system_error with `std::errc::no_such_file_or_directory` if no segment
  // has that name (Python raises FileNotFoundError), with the errno of the failing call otherwise;
  // ValueError if the name is invalid (as create) or the segment is empty (size 0; Python raises
  // ValueError "cannot mmap an empty file" too).
  // Mirrors SharedMemory(name=name).
  static SharedMemory attach(std::string name);

  // Creates an anonymous, zero-filled segment of `size` bytes (memfd), every page reserved. It has
  // no name, cannot be attached and never needs unlinking; its pages are freed when the last
  // process mapping it is done. It reaches other processes by fork. Throws ValueError if `size`
  // is 0; std::system_error if the memory cannot be had (ENOMEM for any size the machine cannot
  // hold, SIZE_MAX included; the errno of memfd_create, mmap or fallocate otherwise), with
  // nothing left behind. Python has no counterpart (its closest is mmap.mmap(-1, size)).
  static SharedMemory anonymous(std::size_t size);

  // A closed handle that refers to no segment (what a moved-from handle becomes too).
  SharedMemory() noexcept;
  SharedMemory(SharedMemory&& other) noexcept;
  // Releases this handle's segment first, as the destructor does (unlinking it if owned).
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  // Unmaps; if this handle created a named segment, still owns its name and this is the creating
  // process, unlinks it. Never throws.
  ~SharedMemory();

  // The segment's bytes. Throws ValueError once the handle is closed (or moved from).
  // Mirrors SharedMemory.buf.
  [[nodiscard]] std::span<std::byte> buf();
  [[nodiscard]] std::span<const std::byte> buf() const;

  // The segment's size in bytes: for named segments the size of the object in /dev/shm, for
  // anonymous ones the size asked for. Still answers after close(); 0 for a moved-from handle.
  // Mirrors SharedMemory.size.
  [[nodiscard]] std::size_t size() const noexcept;

  // The name without the leading '/', as Python reports it; empty for an anonymous segment.
  // Mirrors SharedMemory.name.
  [[nodiscard]] const std::string& name() const noexcept;

  // True until close() (or a move from this handle).
  [[nodiscard]] bool is_open() const noexcept;

  // Unmaps the segment in this process; buf() throws ValueError afterwards. Does not unlink (the
  // creator's destructor still does). Idempotent. Mirrors SharedMemory.close().
  void close() noexcept;

  // Removes the segment's name, so that no one can attach it any more; processes that mapped it
  // keep their mapping, and the memory is freed when the last one unmaps it. Any handle may call it
  // (creator or attacher), also after close(). Returns true if this call removed the name; false if
  // the segment is anonymous, this handle already unlinked it, or the name no longer refers to this
  // segment (removed by someone else — and if it has since been reused for a new segment, that one
  // is left alone). Afterwards the destructor unlinks nothing. Throws std::system_error if the
  // kernel refuses (e.g. EACCES). Mirrors SharedMemory.unlink(), which raises FileNotFoundError
  // where this returns false.
  bool unlink();

  // Gives up the creator's duty to unlink: the destructor will leave the name in place, and
  // removing it is up to the program (an explicit unlink(), or another process). No effect on an
  // attached or anonymous segment. Python 3.13's counterpart is SharedMemory(..., track=False).
  void release_name() noexcept;

  // True when this handle will unlink the segment's name in its destructor.
  [[nodiscard]] bool owns_name() const noexcept;

 private:
  friend struct codec<SharedMemory, void>;
  struct Impl;
  explicit SharedMemory(detail::Box<Impl> impl) noexcept;
  detail::Box<Impl> impl_;
};

// Travels by descriptor and name (see the header comment). Defined in src/shared_memory.cpp.
template <>
struct MPROC_API codec<SharedMemory, void> {
  static std::size_t size(const SharedMemory& v);
  static void encode(Writer& w, const SharedMemory& v);
  static SharedMemory decode(Reader& r);
};

// The tag that creates a `Value` or `Array` without a lock:
//
//   mproc::Value<int> v(0, mproc::no_lock);
//
// Mirrors `lock=False` (Python then returns a RawValue / RawArray, which have no get_lock()).
struct NoLock {
  explicit NoLock() = default;
};
inline constexpr NoLock no_lock{};

// The `lock` argument of `Value` and `Array`, as Python's `lock=`: left out, a new RLock is created
// (Python's default `lock=True`); an existing `RLock` is shared (so that one lock guards several
// objects); `mproc::no_lock` means none. Only an RLock is accepted (Python takes any lock): the
// accessors of `Value` take the lock themselves, which must work inside a `get_lock()` section.
class LockOption {
 public:
  LockOption() = default;
  LockOption(RLock lock) : lock_(std::move(lock)) {}  // NOLINT(google-explicit-constructor)
  LockOption(NoLock) : none_(true) {}                 // NOLINT(google-explicit-constructor)

  // The lock the object will use: the one given, a new RLock, or nullopt for none.
  MPROC_API std::optional<RLock> make() const;

 private:
  std::optional<RLock> lock_;
  bool none_ = false;
};

namespace detail {
// The errors of Value and Array, out of line (their messages need no T).
[[noreturn]] MPROC_API void throw_no_lock(const char* type);
[[noreturn]] MPROC_API void throw_array_index();
[[noreturn]] MPROC_API void throw_array_negative_size();
// `n` elements (more than `n` when `more_than`) of `element_size` bytes overflow std::size_t.
[[noreturn]] MPROC_API void throw_array_too_large(std::size_t n, std::size_t element_size,
                                                  bool more_than);

inline constexpr std::size_t kMaxSharedAlign = 4096;  // blocks are page-aligned

// Whether a `Value<T>` without a lock reads and writes its value as one atomic load / store: when
// the compiler can always do so without a lock for T's size, as std::atomic_ref<T>'s
// `is_always_lock_free` (libstdc++ defines it so). The value lies at the start of a page-aligned
// block, so the alignment such an access needs always holds. Otherwise plain copies.
template <class T>
inline constexpr bool atomic_copyable_v = __atomic_always_lock_free(sizeof(T), 0);

// Sequentially consistent atomic load and store of a trivially copyable T (atomic_copyable_v<T>),
// as std::atomic_ref<T>'s load() and store(). The access is made through T with the alignment of
// its size (which the value has, see above), so that the compiler emits one plain atomic
// instruction, never a call into libatomic for an access it must assume misaligned (a struct of
// two ints: 8 bytes, aligned to 4).
template <class T>
T atomic_copy_load(const T* p) noexcept {
  static_assert(std::is_trivially_copyable_v<T> && atomic_copyable_v<T>);
  typedef T Aligned __attribute__((aligned(sizeof(T))));
  alignas(sizeof(T)) unsigned char buf[sizeof(T)];
  __atomic_load(reinterpret_cast<const Aligned*>(p), reinterpret_cast<Aligned*>(buf),
                __ATOMIC_SEQ_CST);
  return __builtin_bit_cast(T, buf);
}
template <class T>
void atomic_copy_store(T* p, T v) noexcept {
  static_assert(std::is_trivially_copyable_v<T> && atomic_copyable_v<T>);
  typedef T Aligned __attribute__((aligned(sizeof(T))));
  Aligned copy = v;
  __atomic_store(reinterpret_cast<Aligned*>(p), &copy, __ATOMIC_SEQ_CST);
}

// The codecs of Value<T> and Array<T>, without T: the element's size and alignment, the element
// count, and the lock travel beside the data's RegionRef (src/shared_memory.cpp).
struct SharedBlockLayout {
  bool array;              // Array (else Value)
  std::size_t count;       // elements (1 for a Value)
  std::size_t elem_size;   // sizeof(T)
  std::size_t elem_align;  // alignof(T)
};
MPROC_API std::size_t shared_block_size(bool has_lock) noexcept;
MPROC_API void encode_shared_block(Writer& w, const SharedBlockLayout& layout, const void* data,
                                   const std::optional<RLock>& lock);
// Reads what encode_shared_block wrote, checks it against `layout` (whose count is replaced by the
// received one for an Array), and returns the data's block.
MPROC_API Ref<std::byte> decode_shared_block(Reader& r, SharedBlockLayout& layout,
                                             std::optional<RLock>& lock);

// Holds an RLock for a scope (std::scoped_lock's work, without <mutex>).
class RLockSection {
 public:
  explicit RLockSection(RLock& lock) : lock_(lock) { lock_.acquire(); }
  ~RLockSection() { lock_.release(); }
  RLockSection(const RLockSection&) = delete;
  RLockSection& operator=(const RLockSection&) = delete;

 private:
  RLock& lock_;
};
}  // namespace detail

// One value of type `T` in anonymous shared memory, with an RLock by default.
//
// A cheap, copyable handle: copies (including those a forked child inherits) refer to the same
// value. The value is never destroyed, so `T` must be trivially copyable: its bytes are the value
// in every process. Pointers stored in it mean something only in processes forked after the
// pointee was set up, as always with fork.
//
// Thread safety / process safety: with a lock, get() and set() each take it (as Python's .value),
// so they are atomic with respect to each other and to sections under `get_lock()`; a
// read-modify-write must hold the lock around it:
//
//   mproc::Value<long> hits;                // 0, with an RLock
//   { std::scoped_lock g(hits.get_lock()); hits.set(hits.get() + 1); }
//
// Without a lock (`mproc::no_lock`), get() and set() are single atomic loads and stores when
// the compiler makes them lock-free for T's size (int, double, pointers, small structs: what
// `std::atomic_ref<T>::is_always_lock_free` says), and plain copies otherwise, which may tear under
// concurrent writes (as Python's RawValue). Memory ordering: with a lock, everything written under
// it happens-before what the next holder reads; without, the atomic loads and stores are
// sequentially consistent. Constness is shallow, as for std::span: a const handle still reaches a
// mutable value.
//
// Mirrors multiprocessing.Value (and RawValue with `mproc::no_lock`).
template <class T>
class Value {
  static_assert(std::is_trivially_copyable_v<T>,
                "mproc::Value<T> needs a trivially copyable T: the value lives in shared memory "
                "and is shared as raw bytes between processes (no constructor/destructor runs "
                "there; use a Queue for types such as std::string or std::vector)");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>,
                "mproc::Value<T>: T must not be const or volatile");
  static_assert(alignof(T) <= detail::kMaxSharedAlign,
                "mproc::Value<T>: T's alignment exceeds a page");

 public:
  // Creates the value `initial` in new anonymous shared memory (reserved, as every region), with
  // the lock `lock` describes (a new RLock by default). Throws std::system_error if the shared
  // memory cannot be had.
  // Mirrors Value(typecode, initial, lock=...).
  explicit Value(T initial = T{}, LockOption lock = {}) : lock_(lock.make()) {
    auto block = detail::allocate_shared_block(sizeof(T), "mproc.Value");
    T* obj = ::new (static_cast<void*>(block.get())) T(initial);
    obj_ = detail::Ref<T>(std::move(block), obj);
  }

  // The current value; takes the lock if there is one. Mirrors Value.value (get).
  [[nodiscard]] T get() const {
    if (lock_) {
      detail::RLockSection g(*lock_);
      return *obj_;
    }
    if constexpr (detail::atomic_copyable_v<T>) {
      return detail::atomic_copy_load(obj_.get());
    } else {
      return *obj_;
    }
  }

  // Replaces the value; takes the lock if there is one. Mirrors Value.value = v.
  void set(const T& v) const {
    if (lock_) {
      detail::RLockSection g(*lock_);
      *obj_ = v;
      return;
    }
    if constexpr (detail::atomic_copyable_v<T>) {
      detail::atomic_copy_store(obj_.get(), v);
    } else {
      *obj_ = v;
    }
  }

  // The value itself, for access without the lock (the caller synchronises).
  // Mirrors Value.get_obj().
  [[nodiscard]] T& get_obj() const noexcept { return *obj_; }

  // The lock that guards the value. Throws ValueError if created with `mproc::no_lock`.
  // Mirrors Value.get_lock().
  [[nodiscard]] RLock& get_lock() const {
    if (!lock_) detail::throw_no_lock("Value");
    return *lock_;
  }

  // False when created with `mproc::no_lock`.
  [[nodiscard]] bool has_lock() const noexcept { return lock_.has_value(); }

 private:
  friend struct codec<Value<T>, void>;
  Value(detail::Ref<T> obj, std::optional<RLock> lock) noexcept
      : obj_(std::move(obj)), lock_(std::move(lock)) {}

  detail::Ref<T> obj_;
  mutable std::optional<RLock> lock_;
};

// A fixed-size array of `T` in anonymous shared memory, with an RLock by default.
//
// A cheap, copyable handle: copies (including those a forked child inherits) refer to the same
// elements. As for `Value`, `T` must be trivially copyable. Elements are value-initialised
// (zeros for arithmetic types, as Python's Array(typecode, n)).
//
// Thread safety / process safety: element access is not synchronised (unlike Python, where every
// item access takes the lock, C++ hands out references); hold `get_lock()` around accesses that
// race with other processes, or give each process its own elements.
// Constness is shallow, as for std::span.
//
//   mproc::Array<double> a(1000);          // 1000 zeros
//   mproc::Array<int> b{1, 2, 3};          // 3 elements (as std::vector, braces list the values)
//
// Mirrors multiprocessing.Array (and RawArray with `mproc::no_lock`).
template <class T>
class Array {
  static_assert(std::is_trivially_copyable_v<T>,
                "mproc::Array<T> needs a trivially copyable T: the elements live in shared memory "
                "and are shared as raw bytes between processes (no constructor/destructor runs "
                "there; use a Queue for types such as std::string or std::vector)");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>,
                "mproc::Array<T>: T must not be const or volatile");
  static_assert(alignof(T) <= detail::kMaxSharedAlign,
                "mproc::Array<T>: T's alignment exceeds a page");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using const_iterator = T*;

  // `n` value-initialised elements (n may be 0), in reserved shared memory. Throws ValueError if
  // `n * sizeof(T)` overflows, std::system_error (ENOMEM for any size the machine cannot hold) if
  // the shared memory cannot be had. Mirrors Array(typecode, n, lock=...).
  explicit Array(std::size_t n, LockOption lock = {}) : lock_(lock.make()) {
    T* p = allocate(n);
    // The memory comes zero-filled, which is already the value-initialised state of arithmetic,
    // enum and pointer types (not of pointers to members, whose null is not all zero bits).
    if constexpr (!std::is_scalar_v<T> || std::is_member_pointer_v<T>) {
      for (std::size_t i = 0; i < n; ++i) ::new (static_cast<void*>(p + i)) T();
    }
  }

  // The listed elements. Mirrors Array(typecode, [values...], lock=...).
  Array(std::initializer_list<T> init, LockOption lock = {}) : lock_(lock.make()) {
    fill_from(init);
  }

  // A copy of the elements of `range` (a forward range whose elements convert to T). Its size is
  // checked as for Array(n) before any element is read. Mirrors Array(typecode, sequence,
  // lock=...).
  template <std::ranges::forward_range R>
    requires(std::convertible_to<std::ranges::range_reference_t<R>, T> &&
             !std::same_as<std::remove_cvref_t<R>, Array>)
  explicit Array(R&& range, LockOption lock = {}) : lock_(lock.make()) {
    fill_from(range);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  // Element `i`, unchecked (as std::vector). Mirrors arr[i] without its lock.
  T& operator[](std::size_t i) const noexcept { return data_.get()[i]; }
  // Element `i`; throws std::out_of_range if i >= size() (Python raises IndexError).
  T& at(std::size_t i) const {
    if (i >= size_) detail::throw_array_index();
    return data_.get()[i];
  }

  [[nodiscard]] T* data() const noexcept { return data_.get(); }
  [[nodiscard]] T* begin() const noexcept { return data_.get(); }
  [[nodiscard]] T* end() const noexcept { return data_.get() + size_; }
  [[nodiscard]] std::span<T> span() const noexcept { return {data_.get(), size_}; }

  // The elements, for access without the lock. Mirrors Array.get_obj().
  [[nodiscard]] std::span<T> get_obj() const noexcept { return span(); }

  // The lock that guards the array. Throws ValueError if created with `mproc::no_lock`.
  // Mirrors Array.get_lock().
  [[nodiscard]] RLock& get_lock() const {
    if (!lock_) detail::throw_no_lock("Array");
    return *lock_;
  }

  // False when created with `mproc::no_lock`.
  [[nodiscard]] bool has_lock() const noexcept { return lock_.has_value(); }

 private:
  friend struct codec<Array<T>, void>;
  Array(detail::Ref<T> data, std::size_t n, std::optional<RLock> lock) noexcept
      : data_(std::move(data)), size_(n), lock_(std::move(lock)) {}

  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) {
      detail::throw_array_too_large(n, sizeof(T), false);
    }
    auto block = detail::allocate_shared_block(n * sizeof(T), "mproc.Array");
    T* p = reinterpret_cast<T*>(block.get());
    data_ = detail::Ref<T>(std::move(block), p);
    size_ = n;
    return p;
  }

  template <class R>
  void fill_from(R&& range) {
    // The distance may be of a wider type than std::size_t (iota_view's integer-class types).
    const auto d = std::ranges::distance(range);
    using D = std::remove_cv_t<decltype(d)>;
    if (d < D(0)) detail::throw_array_negative_size();
    const auto n = static_cast<std::size_t>(d);
    if (static_cast<D>(n) != d) {  // wider than std::size_t
      detail::throw_array_too_large(static_cast<std::size_t>(-1), sizeof(T), true);
    }
    T* p = allocate(n);
    std::size_t i = 0;
    for (auto&& v : range) {
      if (i == n) break;  // never past what was allocated
      ::new (static_cast<void*>(p + i++)) T(static_cast<T>(v));
    }
  }

  detail::Ref<T> data_;
  std::size_t size_ = 0;
  mutable std::optional<RLock> lock_;
};

// Value<T> and Array<T> travel (see the header comment); the work is in src/shared_memory.cpp.
template <class T>
struct codec<Value<T>, void> {
  static std::size_t size(const Value<T>& v) { return detail::shared_block_size(v.has_lock()); }
  static void encode(Writer& w, const Value<T>& v) {
    detail::encode_shared_block(w, {false, 1, sizeof(T), alignof(T)}, v.obj_.get(), v.lock_);
  }
  static Value<T> decode(Reader& r) {
    detail::SharedBlockLayout layout{false, 1, sizeof(T), alignof(T)};
    std::optional<RLock> lock;
    detail::Ref<std::byte> block = detail::decode_shared_block(r, layout, lock);
    T* p = reinterpret_cast<T*>(block.get());
    return Value<T>(detail::Ref<T>(std::move(block), p), std::move(lock));
  }
};

template <class T>
struct codec<Array<T>, void> {
  static std::size_t size(const Array<T>& v) { return detail::shared_block_size(v.has_lock()); }
  static void encode(Writer& w, const Array<T>& v) {
    detail::encode_shared_block(w, {true, v.size_, sizeof(T), alignof(T)}, v.data_.get(), v.lock_);
  }
  static Array<T> decode(Reader& r) {
    detail::SharedBlockLayout layout{true, 0, sizeof(T), alignof(T)};
    std::optional<RLock> lock;
    detail::Ref<std::byte> block = detail::decode_shared_block(r, layout, lock);
    T* p = reinterpret_cast<T*>(block.get());
    return Array<T>(detail::Ref<T>(std::move(block), p), layout.count, std::move(lock));
  }
};

}  // namespace mproc
