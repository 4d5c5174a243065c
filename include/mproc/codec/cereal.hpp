// mproc/codec/cereal.hpp — types written for cereal travel through mproc unchanged.
//
// Include this header (it needs cereal: Debian's libcereal-dev) and every type that cereal can
// serialize goes through Queue, Pipe, Pool and Process arguments as it is, in every form cereal
// accepts:
//   * member and non-member `serialize`, split `save`/`load` (member and non-member),
//     `save_minimal`/`load_minimal` (member and non-member);
//   * name-value pairs (`CEREAL_NVP(x)`, `cereal::make_nvp("x", x)`): the names are not sent;
//   * `cereal::base_class<B>(this)` and `cereal::virtual_base_class<B>(this)` (a virtual base is
//     sent once per value, as cereal does);
//   * class versioning: `serialize(Archive&, std::uint32_t version)` (and the versioned save,
//     load and minimal forms) with `CEREAL_CLASS_VERSION(T, n)`: as in cereal, the sender's
//     version is sent (4 bytes, the first time a type appears in a message) and the receiver's
//     load gets the sender's version;
//   * `cereal::binary_data(p, n)` and `cereal::make_size_tag(n)`;
//   * cereal's own rules for the types mproc has no rule for, when the user includes them
//     (`<cereal/types/memory.hpp>` for std::unique_ptr / std::shared_ptr, `<cereal/types/
//     atomic.hpp>`, `valarray.hpp`, `queue.hpp`, `stack.hpp`, `forward_list.hpp`, ...).
//
//   #include <cereal/types/string.hpp>   // the user's own cereal setup, unchanged
//   #include <mproc/codec/cereal.hpp>
//   struct Trade {
//     std::string symbol;
//     double price;
//     template <class Archive>
//     void serialize(Archive& ar) { ar(CEREAL_NVP(symbol), cereal::make_nvp("px", price)); }
//   };
//   mproc::Queue<Trade> q;  // works; so do the user's cereal::BinaryOutputArchive etc.
//
// How. mproc's cereal archives are real cereal archives (derived from cereal::OutputArchive and
// cereal::InputArchive), so cereal's own dispatch decides which function of a type to call, with
// cereal's own rules and errors (a type with both serialize and save gets cereal's "more than one
// serialization function" error). They write to a Writer and read from a Reader, as every codec,
// so a value still streams straight into a queue's ring or a pipe's buffer. Inside them, every
// value that mproc has its own rule for (arithmetic types, trivially copyable classes, strings,
// std::vector, std::array, std::optional, std::pair, std::tuple, chrono, the containers of
// <mproc/codec/*.hpp> and std::variant, std::bitset) goes through mproc's rule, whichever
// cereal/types/*.hpp header is also included: so its bytes, its bounds on hostile input and its
// speed are mproc's. This header includes mproc's opt-in container headers (map, set,
// unordered_map, unordered_set, deque, list, variant) for that reason.
//
// Which types. A class type that no rule of mproc's covers (no specialisation of mproc::codec,
// no standard-template rule) and for which cereal finds a serialization function of its own is
// sent through these archives. That includes a type with a plain `serialize(Archive&)` that
// mproc's own archives also understand: with this header, cereal's dispatch handles it. The
// bytes are the same either way (tested: `cereal_wire_test`), so a file that includes this
// header and one that does not agree on every type both can encode. Still, include it before
// the first use of such a type with mproc, in every file that sends or receives it, as the other
// opt-in headers.
//
// Wire format (host byte order and sizes, as the rest of the codec, no type tags): arithmetic
// values and `binary_data` as their bytes; a size tag as a uint64 count (as mproc's counts: so
// cereal's rule for a container gives the bytes of mproc's rule for it); the values mproc has a
// rule for as that rule encodes them; a class's members in the order its function archives them,
// names dropped; a class whose function archives nothing: one 0 byte (as mproc's own serialize
// rule, so that every value is at least one byte); a versioned type's version as a uint32 the
// first time the type appears in one value; cereal's own pointer and polymorphism records as
// cereal's binary archive writes them.
//
// Decoding untrusted bytes. The values mproc has a rule for keep mproc's bounds (see codec.hpp):
// that covers every standard container, inside cereal types too. A size tag (which cereal's own
// container rules and users' loads resize to at once) is checked before that load allocates: a
// count larger than the bytes that remain in the message is a DecodeError. That bounds what such
// a load allocates by `sizeof(element)` times the bytes that remain, which for a message that is
// whole in its window (a Queue message within a quarter of its ring, a Connection message of up
// to 4 KiB, from_bytes) are bytes that arrived. For a message that streams, the bytes that remain
// are what the sender announced: there a hostile sender can make a size-tagged load allocate for
// bytes it never sends (the codec's own rules grow with the bytes that arrive instead). Only
// size tags have this limit: cereal's rules for std::valarray, std::forward_list, the container
// adaptors, and users' own loads that read a size tag. Keep such types to trusted peers, or to
// messages within the window. (A stricter check, against the bytes received so far, would make a
// message's outcome depend on how it was cut into windows; the fuzz harness refuses that.)
// Nesting: decoding recurses as deep as the bytes nest through a recursive type, as cereal does.
//
// Errors at compile time. A member or a base whose type has no rule (neither mproc's nor a
// cereal function) fails a static_assert whose condition names that type,
// `cereal_member_is_serializable_v<Member>` (for a member) or `cereal_base_is_serializable_v<B>`
// (for a base named in base_class / virtual_base_class), before cereal's own error.
//
// Not supported: cereal's polymorphic pointers need `CEREAL_REGISTER_ARCHIVE` for each archive
// type, and these archives are not registered (a value holding a polymorphic pointer fails to
// compile or throws cereal::Exception, which becomes DecodeError on load). A type decoded by value
// must be default-constructible (cereal's `load_and_construct` applies to pointers only, as in
// cereal).
//
// Threads: as for cereal's own archives, encoding versioned types from several threads at once
// needs `CEREAL_THREAD_SAFE=1` defined before any cereal header (cereal keeps one process-wide
// table of class versions; without it, cereal does not lock it). Everything else is per value.
//
// Cost. A thread keeps one archive of each kind (size, encode, decode) and reuses it for the next
// value while cereal's bookkeeping in it is unused; a value with shared pointers, a version, a
// virtual base or deferred data, or one cut short by an exception, leaves it to be rebuilt (about
// 13 ns). A value inside a value (an element of a vector, encoded by mproc's rule) gets an archive
// of its own. Measured on x86-64 with g++ 12 -O2 (2-core machine, best of 3 runs of 10^6): a
// struct of a 22-char string and 16 doubles with a plain serialize() encodes (size + encode) in
// 19.9 ns through these archives and 10.6 ns through mproc's own rule; decodes in 49.2 and
// 45.6 ns. A versioned type costs a hash-set insertion per value (cereal's record of the
// versions written).
#pragma once

#include <bitset>
#include <cereal/cereal.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mproc/codec.hpp>
#include <mproc/codec/deque.hpp>
#include <mproc/codec/list.hpp>
#include <mproc/codec/map.hpp>
#include <mproc/codec/set.hpp>
#include <mproc/codec/unordered_map.hpp>
#include <mproc/codec/unordered_set.hpp>
#include <mproc/codec/variant.hpp>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

// An archive type on which the functions a type declares for cereal can be looked up, with none
// of mproc's rules: counts what the type brings itself (and what cereal's types/*.hpp bring).
// In a namespace of its own, so that argument-dependent lookup finds none of mproc's overloads.
namespace mproc::detail::cereal_probe {
class ProbeOut : public ::cereal::OutputArchive<ProbeOut> {
 public:
  ProbeOut() : ::cereal::OutputArchive<ProbeOut>(this) {}
};
class ProbeIn : public ::cereal::InputArchive<ProbeIn> {
 public:
  ProbeIn() : ::cereal::InputArchive<ProbeIn>(this) {}
};
}  // namespace mproc::detail::cereal_probe

namespace mproc::detail::cereal_archive {

using cereal_probe::ProbeIn;
using cereal_probe::ProbeOut;

// ---- which types ----------------------------------------------------------------------------

// T declares (or cereal's types/*.hpp declare for it) a serialization function.
template <class T>
inline constexpr bool has_cereal_function_v =
    ::cereal::traits::detail::count_output_serializers<T, ProbeOut>::value > 0 ||
    ::cereal::traits::detail::count_input_serializers<T, ProbeIn>::value > 0;

// The values this header sends through mproc's own rules: arithmetic types and the types whose
// mproc rule is the bitwise copy (trivially copyable, no function of their own) ...
template <class T, template <class...> class Tmpl>
inline constexpr bool is_instance_v = false;
template <class... A, template <class...> class Tmpl>
inline constexpr bool is_instance_v<Tmpl<A...>, Tmpl> = true;

// cereal's wrappers, which cereal's dispatch or the overloads below unwrap.
template <class T>
inline constexpr bool is_cereal_wrapper_v =
    is_instance_v<T, ::cereal::NameValuePair> || is_instance_v<T, ::cereal::SizeTag> ||
    is_instance_v<T, ::cereal::BinaryData> || is_instance_v<T, ::cereal::base_class> ||
    is_instance_v<T, ::cereal::virtual_base_class> || is_instance_v<T, ::cereal::DeferredData>;

template <class T>
concept native_leaf = std::is_arithmetic_v<T> ||
                      ((std::is_class_v<T> || std::is_union_v<T>)&&!is_cereal_wrapper_v<T> &&
                       rule_of<T>() == rule::bitwise);

template <class T>
inline constexpr bool is_std_array_v = false;
template <class T, std::size_t N>
inline constexpr bool is_std_array_v<std::array<T, N>> = true;
template <class T>
inline constexpr bool is_bitset_v = false;
template <std::size_t N>
inline constexpr bool is_bitset_v<std::bitset<N>> = true;

// ... and the standard templates with an mproc rule (the overloads below), when encodable.
template <class T>
constexpr bool native_template() {
  return is_instance_v<T, std::basic_string> || is_instance_v<T, std::vector> ||
         is_std_array_v<T> || is_instance_v<T, std::optional> || is_instance_v<T, std::pair> ||
         is_instance_v<T, std::tuple> || is_instance_v<T, std::chrono::duration> ||
         is_instance_v<T, std::chrono::time_point> || is_instance_v<T, std::map> ||
         is_instance_v<T, std::multimap> || is_instance_v<T, std::set> ||
         is_instance_v<T, std::multiset> || is_instance_v<T, std::unordered_map> ||
         is_instance_v<T, std::unordered_multimap> || is_instance_v<T, std::unordered_set> ||
         is_instance_v<T, std::unordered_multiset> || is_instance_v<T, std::deque> ||
         is_instance_v<T, std::list> || is_instance_v<T, std::variant> ||
         std::is_same_v<T, std::monostate> || is_bitset_v<T>;
}

template <class T>
concept native_value = native_leaf<T> || (native_template<T>() && is_encodable_v<T>);

// A class whose own function (or cereal's rule for it) archives its parts: it is at least one
// byte (a 0 byte when it archives nothing), as in mproc's own serialize rule.
template <class T>
inline constexpr bool framed_class_v =
    (std::is_class_v<T> || std::is_union_v<T>)&&!native_value<T> && !is_cereal_wrapper_v<T> &&
    has_cereal_function_v<T>;

// ---- the archives -----------------------------------------------------------------------------

// Counts the values archived inside each framed class being archived (a 0 byte marks a class
// that archived none). The first levels live in the archive; deeper ones in a vector.
class Frames {
 public:
  void value() noexcept {
    if (depth_ > 0) ++at(depth_ - 1);
  }
  void enter() {
    if (depth_ >= kInline)
      more_.push_back(0);
    else
      inline_[depth_] = 0;
    ++depth_;
  }
  void reset() noexcept {
    depth_ = 0;
    more_.clear();
  }
  // Leaves the innermost class; true when it archived nothing.
  bool leave() noexcept {
    --depth_;
    const bool empty = at(depth_) == 0;
    if (depth_ >= kInline) more_.pop_back();
    return empty;
  }

 private:
  static constexpr std::size_t kInline = 16;
  std::uint32_t& at(std::size_t i) noexcept {
    return i < kInline ? inline_[i] : more_[i - kInline];
  }
  std::uint32_t inline_[kInline];
  std::vector<std::uint32_t> more_;
  std::size_t depth_ = 0;
};

// Where an output archive's bytes go: a Writer, or a count (for codec<T>::size).
struct Counter {
  std::size_t bytes = 0;
};

// An archive is reused for the next value on the same thread (see Lease) unless cereal's own
// bookkeeping in it was used: shared pointers, polymorphic types, versions, virtual bases or
// deferred data (`dirty`), which a fresh archive must start without.
template <class Sink>
class Output : public ::cereal::OutputArchive<Output<Sink>> {
  using Base = ::cereal::OutputArchive<Output<Sink>>;

 public:
  explicit Output(Sink& sink) : Base(this), sink_(&sink) {}
  void rebind(Sink& sink) noexcept {
    sink_ = &sink;
    frames_.reset();
  }
  bool dirty() const noexcept { return dirty_; }
  void mark_dirty() noexcept { dirty_ = true; }
  // cereal's rules call these on the archive they were given: hide the base's to see them.
  std::uint32_t registerSharedPointer(const std::shared_ptr<const void>& p) {
    dirty_ = true;
    return Base::registerSharedPointer(p);
  }
  std::uint32_t registerPolymorphicType(const char* name) {
    dirty_ = true;
    return Base::registerPolymorphicType(name);
  }

  void put(const void* p, std::size_t n) {
    if constexpr (std::is_same_v<Sink, Counter>) {
      (void)p;
      sink_->bytes += n;
    } else {
      sink_->write(p, n);
    }
  }
  template <class T>
  void put_value(const T& v) {
    if constexpr (std::is_same_v<Sink, Counter>)
      sink_->bytes += mproc::encoded_size(v);
    else
      mproc::encode(*sink_, v);
  }
  Frames& frames() noexcept { return frames_; }

 private:
  Sink* sink_;
  Frames frames_;
  bool dirty_ = false;
};

class Input : public ::cereal::InputArchive<Input> {
  using Base = ::cereal::InputArchive<Input>;

 public:
  explicit Input(Reader& r) : Base(this), r_(&r) {}
  void rebind(Reader& r) noexcept {
    r_ = &r;
    frames_.reset();
  }
  Reader& reader() noexcept { return *r_; }
  Frames& frames() noexcept { return frames_; }
  bool dirty() const noexcept { return dirty_; }
  void mark_dirty() noexcept { dirty_ = true; }
  void registerSharedPointer(std::uint32_t id, std::shared_ptr<void> p) {
    dirty_ = true;
    Base::registerSharedPointer(id, std::move(p));
  }
  void registerPolymorphicName(std::uint32_t id, const std::string& name) {
    dirty_ = true;
    Base::registerPolymorphicName(id, name);
  }

 private:
  Reader* r_;
  Frames frames_;
  bool dirty_ = false;
};

// Whether archiving a T uses cereal's bookkeeping in the archive (a version, a virtual base,
// deferred data); shared pointers and polymorphic types are seen by the functions above.
template <class T, class A>
constexpr bool uses_archive_state() {
  namespace tr = ::cereal::traits;
  if constexpr (is_instance_v<T, ::cereal::virtual_base_class> ||
                is_instance_v<T, ::cereal::DeferredData>)
    return true;
  else if constexpr (!std::is_class_v<T> || native_value<T> || is_cereal_wrapper_v<T>)
    return false;
  else if constexpr (std::is_same_v<A, Input>)
    return tr::has_member_versioned_serialize<T, A>::value ||
           tr::has_non_member_versioned_serialize<T, A>::value ||
           tr::has_member_versioned_load<T, A>::value ||
           tr::has_non_member_versioned_load<T, A>::value ||
           tr::has_member_versioned_load_minimal<T, A>::value ||
           tr::has_non_member_versioned_load_minimal<T, A>::value;
  else
    return tr::has_member_versioned_serialize<T, A>::value ||
           tr::has_non_member_versioned_serialize<T, A>::value ||
           tr::has_member_versioned_save<T, A>::value ||
           tr::has_non_member_versioned_save<T, A>::value ||
           tr::has_member_versioned_save_minimal<T, A>::value ||
           tr::has_non_member_versioned_save_minimal<T, A>::value;
}

// The thread's archive of type A for one value, built on first use and reused while it stays
// clean (building one costs about as much as archiving a small struct); a fresh one when the
// thread's is in use (a value inside a value: an element of a vector encoded by mproc's rule) or
// was left dirty or by an exception.
template <class A, class Source>
class Lease {
 public:
  explicit Lease(Source& src) {
    Slot& slot = thread_slot();
    if (!slot.busy) {
      if (slot.built)
        slot.get()->rebind(src);
      else
        ::new (static_cast<void*>(slot.bytes)) A(src), slot.built = true;
      slot.busy = true;
      slot_ = &slot;
      ar_ = slot.get();
    } else {
      ar_ = ::new (static_cast<void*>(own_)) A(src);
    }
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() {
    if (slot_ == nullptr) {
      ar_->~A();
      return;
    }
    if (!done_ || ar_->dirty()) {
      ar_->~A();
      slot_->built = false;
    }
    slot_->busy = false;
  }
  A& operator*() noexcept { return *ar_; }
  // The value was archived whole: the archive may serve the next one.
  void done() noexcept { done_ = true; }

 private:
  struct Slot {
    alignas(A) unsigned char bytes[sizeof(A)];
    bool built = false;
    bool busy = false;
    A* get() noexcept { return std::launder(reinterpret_cast<A*>(bytes)); }
    ~Slot() {
      if (built) get()->~A();
    }
  };
  static Slot& thread_slot() {
    thread_local Slot slot;
    return slot;
  }
  Slot* slot_ = nullptr;
  A* ar_ = nullptr;
  bool done_ = false;
  alignas(A) unsigned char own_[sizeof(A)];
};

// ---- errors naming the member or base -----------------------------------------------------------

// True when cereal or mproc has a rule for `Member`; named so that the failed assertion names it.
template <class Member>
inline constexpr bool cereal_member_is_serializable_v =
    ::cereal::traits::detail::count_output_serializers<Member, Output<Writer>>::value > 0;
template <class Base>
inline constexpr bool cereal_base_is_serializable_v =
    ::cereal::traits::detail::count_output_serializers<Base, Output<Writer>>::value > 0;

// Instantiated while cereal picks the prologue for a value (before the body of cereal's function
// that would report a missing rule without naming the member), so this error comes first.
template <class T>
struct member_check {
  static constexpr bool kBase =
      is_instance_v<T, ::cereal::base_class> || is_instance_v<T, ::cereal::virtual_base_class>;
  template <class W>
  static constexpr bool base_ok() {
    using B = std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<W&>().base_ptr)>>;
    static_assert(cereal_base_is_serializable_v<B>,
                  "mproc::codec<T> (cereal): a base class named in cereal::base_class<B> or "
                  "virtual_base_class<B> has no serialization rule: neither mproc's nor a "
                  "serialize/save/load/save_minimal function for cereal "
                  "(cereal_base_is_serializable_v<B> names it)");
    return true;
  }
  static constexpr bool member_ok() {
    static_assert(cereal_member_is_serializable_v<T>,
                  "mproc::codec<T> (cereal): a value archived by a serialization function has no "
                  "rule: neither mproc's nor a serialize/save/load/save_minimal function for "
                  "cereal (cereal_member_is_serializable_v<M> names its type M). Give M such a "
                  "function, include the cereal/types/*.hpp header of a standard type, or "
                  "specialise mproc::codec<M>.");
    return true;
  }
  static constexpr bool ok = [] {
    if constexpr (kBase)
      return base_ok<T>();
    else if constexpr (!is_cereal_wrapper_v<T> && !std::is_enum_v<T> && !std::is_array_v<T>)
      return member_ok();
    else
      return true;
  }();
  using type = void;
};

// cereal calls these around every value it archives (found by argument-dependent lookup; more
// specialised than cereal's empty defaults).
template <class Sink, class T, class = typename member_check<T>::type>
  requires member_check<T>::ok
void prologue(Output<Sink>& ar, const T&) {
  if constexpr (uses_archive_state<T, Output<Sink>>()) ar.mark_dirty();
  ar.frames().value();
  if constexpr (framed_class_v<T>) ar.frames().enter();
}
template <class Sink, class T>
void epilogue(Output<Sink>& ar, const T&) {
  if constexpr (framed_class_v<T>) {
    if (ar.frames().leave()) ar.put_value(std::uint8_t{0});
  }
}
template <class T>
void prologue(Input& ar, const T&) {
  if constexpr (uses_archive_state<T, Input>()) ar.mark_dirty();
  ar.frames().value();
  if constexpr (framed_class_v<T>) ar.frames().enter();
}
template <class T>
void epilogue(Input& ar, const T&) {
  if constexpr (framed_class_v<T>) {
    if (ar.frames().leave()) read_pad(ar.reader());
  }
}

// ---- cereal's wrappers --------------------------------------------------------------------------

template <class Sink, class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(Output<Sink>& ar, ::cereal::NameValuePair<T>& nvp) {
  ar(nvp.value);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(Input& ar, ::cereal::NameValuePair<T>& nvp) {
  ar(nvp.value);
}

template <class Sink, class T>
void CEREAL_SAVE_FUNCTION_NAME(Output<Sink>& ar, const ::cereal::SizeTag<T>& tag) {
  ar.put_value(static_cast<std::uint64_t>(tag.size));
}
// The count is checked against the bytes that remain before the load that reads it allocates
// (every element is at least one byte); see the header comment for what this bounds.
inline std::uint64_t read_size_tag(Reader& r) {
  const auto n = r.read_value<std::uint64_t>();
  r.check_count(n, 1);
  return n;
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(Input& ar, ::cereal::SizeTag<T>& tag) {
  tag.size = static_cast<std::remove_reference_t<decltype(tag.size)>>(read_size_tag(ar.reader()));
}

template <class Sink, class T>
void CEREAL_SAVE_FUNCTION_NAME(Output<Sink>& ar, const ::cereal::BinaryData<T>& b) {
  ar.put(b.data, static_cast<std::size_t>(b.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(Input& ar, ::cereal::BinaryData<T>& b) {
  ar.reader().read(b.data, static_cast<std::size_t>(b.size));
}

// ---- mproc's rules inside cereal's archives ----------------------------------------------------
// More specialised than cereal's own rules for the same standard templates (so that mproc's wins
// whichever cereal/types/*.hpp is included), and of the same kind (save/load, or serialize where
// cereal's is a serialize), so that cereal counts one function.

template <class Sink, class T>
  requires native_leaf<T>
void CEREAL_SAVE_FUNCTION_NAME(Output<Sink>& ar, const T& v) {
  ar.put_value(v);
}
template <class T>
  requires native_leaf<T>
void CEREAL_LOAD_FUNCTION_NAME(Input& ar, T& v) {
  v = mproc::decode<T>(ar.reader());
}

#define MPROC_CEREAL_NATIVE_SAVE_LOAD(TPARAMS, TYPE)                \
  template <class Sink, TPARAMS>                                    \
    requires is_encodable_v<TYPE>                                   \
  void CEREAL_SAVE_FUNCTION_NAME(Output<Sink>& ar, const TYPE& v) { \
    ar.put_value(v);                                                \
  }                                                                 \
  template <TPARAMS>                                                \
    requires is_encodable_v<TYPE>                                   \
  void CEREAL_LOAD_FUNCTION_NAME(Input& ar, TYPE& v) {              \
    v = mproc::decode<TYPE>(ar.reader());                           \
  }
#define MPROC_CEREAL_NATIVE_SERIALIZE(TPARAMS, TYPE)               \
  template <class Sink, TPARAMS>                                   \
    requires is_encodable_v<TYPE>                                  \
  void CEREAL_SERIALIZE_FUNCTION_NAME(Output<Sink>& ar, TYPE& v) { \
    ar.put_value(v);                                               \
  }                                                                \
  template <TPARAMS>                                               \
    requires is_encodable_v<TYPE>                                  \
  void CEREAL_SERIALIZE_FUNCTION_NAME(Input& ar, TYPE& v) {        \
    v = mproc::decode<TYPE>(ar.reader());                          \
  }
#define MPROC_CEREAL_COMMA ,

MPROC_CEREAL_NATIVE_SAVE_LOAD(class C MPROC_CEREAL_COMMA class Tr MPROC_CEREAL_COMMA class A,
                              std::basic_string<C MPROC_CEREAL_COMMA Tr MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class T MPROC_CEREAL_COMMA class A,
                              std::vector<T MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class T MPROC_CEREAL_COMMA std::size_t N,
                              std::array<T MPROC_CEREAL_COMMA N>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class T, std::optional<T>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class R MPROC_CEREAL_COMMA class P,
                              std::chrono::duration<R MPROC_CEREAL_COMMA P>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class C MPROC_CEREAL_COMMA class D,
                              std::chrono::time_point<C MPROC_CEREAL_COMMA D>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class... Ts, std::variant<Ts...>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(std::size_t N, std::bitset<N>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class T MPROC_CEREAL_COMMA class A,
                              std::deque<T MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class T MPROC_CEREAL_COMMA class A, std::list<T MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(
    class K MPROC_CEREAL_COMMA class V MPROC_CEREAL_COMMA class C MPROC_CEREAL_COMMA class A,
    std::map<K MPROC_CEREAL_COMMA V MPROC_CEREAL_COMMA C MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(
    class K MPROC_CEREAL_COMMA class V MPROC_CEREAL_COMMA class C MPROC_CEREAL_COMMA class A,
    std::multimap<K MPROC_CEREAL_COMMA V MPROC_CEREAL_COMMA C MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class K MPROC_CEREAL_COMMA class C MPROC_CEREAL_COMMA class A,
                              std::set<K MPROC_CEREAL_COMMA C MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class K MPROC_CEREAL_COMMA class C MPROC_CEREAL_COMMA class A,
                              std::multiset<K MPROC_CEREAL_COMMA C MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(class K MPROC_CEREAL_COMMA class V MPROC_CEREAL_COMMA class H
                                  MPROC_CEREAL_COMMA class E MPROC_CEREAL_COMMA class A,
                              std::unordered_map<K MPROC_CEREAL_COMMA V MPROC_CEREAL_COMMA H
                                                     MPROC_CEREAL_COMMA E MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(
    class K MPROC_CEREAL_COMMA class V MPROC_CEREAL_COMMA class H MPROC_CEREAL_COMMA class E
        MPROC_CEREAL_COMMA class A,
    std::unordered_multimap<
        K MPROC_CEREAL_COMMA V MPROC_CEREAL_COMMA H MPROC_CEREAL_COMMA E MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(
    class K MPROC_CEREAL_COMMA class H MPROC_CEREAL_COMMA class E MPROC_CEREAL_COMMA class A,
    std::unordered_set<K MPROC_CEREAL_COMMA H MPROC_CEREAL_COMMA E MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SAVE_LOAD(
    class K MPROC_CEREAL_COMMA class H MPROC_CEREAL_COMMA class E MPROC_CEREAL_COMMA class A,
    std::unordered_multiset<K MPROC_CEREAL_COMMA H MPROC_CEREAL_COMMA E MPROC_CEREAL_COMMA A>)
MPROC_CEREAL_NATIVE_SERIALIZE(class A MPROC_CEREAL_COMMA class B, std::pair<A MPROC_CEREAL_COMMA B>)
MPROC_CEREAL_NATIVE_SERIALIZE(class... Ts, std::tuple<Ts...>)

template <class Sink>
void CEREAL_SERIALIZE_FUNCTION_NAME(Output<Sink>& ar, std::monostate& v) {
  ar.put_value(v);
}
inline void CEREAL_SERIALIZE_FUNCTION_NAME(Input& ar, std::monostate& v) {
  v = mproc::decode<std::monostate>(ar.reader());
}

#undef MPROC_CEREAL_NATIVE_SAVE_LOAD
#undef MPROC_CEREAL_NATIVE_SERIALIZE
#undef MPROC_CEREAL_COMMA

// ---- the codec --------------------------------------------------------------------------------

template <class T>
struct cereal_codec {
  static constexpr std::size_t min_size = 1;

  static std::size_t size(const T& v) {
    Counter c;
    Lease<Output<Counter>, Counter> ar(c);
    (*ar)(v);
    ar.done();
    return c.bytes;
  }
  static void encode(Writer& w, const T& v) {
    Lease<Output<Writer>, Writer> ar(w);
    (*ar)(v);
    ar.done();
  }
  static T decode(Reader& r) {
    if constexpr (std::is_default_constructible_v<T>) {
      T v{};
      try {
        Lease<Input, Reader> ar(r);
        (*ar)(v);
        ar.done();
      } catch (const ::cereal::Exception& e) {
        throw DecodeError(std::string("mproc: corrupt message (cereal): ") + e.what());
      }
      return v;
    } else {
      static_assert(dependent_false_v<T>,
                    "mproc::codec<T> (cereal): a type decoded by value must be "
                    "default-constructible (cereal loads into an existing object); add a default "
                    "constructor (it may be private, with `friend class cereal::access;`) or "
                    "specialise mproc::codec<T>.");
      unreachable();
    }
  }
};

}  // namespace mproc::detail::cereal_archive

// Input and output archives belong together (cereal looks up a save_minimal's type through it).
namespace cereal::traits::detail {
template <>
struct get_output_from_input<mproc::detail::cereal_archive::Input> {
  using type = mproc::detail::cereal_archive::Output<mproc::Writer>;
};
template <>
struct get_input_from_output<mproc::detail::cereal_archive::Output<mproc::Writer>> {
  using type = mproc::detail::cereal_archive::Input;
};
template <>
struct get_input_from_output<
    mproc::detail::cereal_archive::Output<mproc::detail::cereal_archive::Counter>> {
  using type = mproc::detail::cereal_archive::Input;
};
template <>
struct get_output_from_input<mproc::detail::cereal_probe::ProbeIn> {
  using type = mproc::detail::cereal_probe::ProbeOut;
};
template <>
struct get_input_from_output<mproc::detail::cereal_probe::ProbeOut> {
  using type = mproc::detail::cereal_probe::ProbeIn;
};
}  // namespace cereal::traits::detail

namespace mproc::detail {

// Class types that no rule of mproc's covers and for which cereal finds a function of their own.
// The standard templates with an mproc rule keep it (a std::bitset stays a bitwise copy even
// with <cereal/types/bitset.hpp>); std::variant and the containers always have mproc's rule
// here (this header includes their opt-in headers).
template <class T>
  requires(std::is_class_v<T> && !std::is_const_v<T> && !cereal_archive::native_template<T>() &&
           !cereal_archive::is_cereal_wrapper_v<T> && cereal_archive::has_cereal_function_v<T>)
struct adapter_codec<T, void> {
  using type = cereal_archive::cereal_codec<T>;
};

}  // namespace mproc::detail
