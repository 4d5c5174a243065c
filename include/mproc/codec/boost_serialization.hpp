// mproc/codec/boost_serialization.hpp — types serialised by Boost.Serialization travel through
// mproc (Queue, Connection::send/recv, Pool arguments and results) through Boost's binary
// archives, once each type is named with MPROC_CODEC_BOOST_SERIALIZATION:
//
//   #include <boost/serialization/vector.hpp>
//   #include <mproc/codec/boost_serialization.hpp>
//   struct Reading {
//     std::string sensor;
//     std::vector<double> values;
//     template <class Archive>
//     void serialize(Archive& ar, const unsigned int /*version*/) { ar & sensor & values; }
//   };
//   MPROC_CODEC_BOOST_SERIALIZATION(Reading)   // at global scope, after the type
//   mproc::Queue<Reading> q;                   // q.put(r) saves r with binary_oarchive
//
// Opt-in twice over. The header, as the other headers of mproc/codec/: the core library does not
// depend on Boost; a program that includes this header links Boost.Serialization (CMake:
// `find_package(Boost COMPONENTS serialization)`, `Boost::serialization`). And the type, by name:
// Boost's `serialize(Archive&, const unsigned int)` has the shape of cereal's versioned
// `serialize(Archive&, std::uint32_t)` and of other libraries' conventions, so mproc cannot tell
// from the type that Boost is the library it was written for (nor whether the Boost headers it
// needs, boost/serialization/vector.hpp and the like, are included: that is a
// compile-time error in Boost's code). The macro names the type and the library: it is a full
// specialisation of `mproc::codec<T>`, so it wins over every other rule (mproc's own
// serialize(Archive&), <mproc/codec/cereal.hpp>). Use it at global scope (outside any namespace),
// after the type is declared and before its first use with mproc, in every file that sends or
// receives it (in a header next to the type is best). A class template is opted in by a partial
// specialisation written the same way:
//
//   template <class T>
//   struct mproc::codec<Series<T>> : mproc::boost_serialization_codec<Series<T>> {};
//
// Python counterpart: pickle, which takes any object; here the type says how it is saved.
//
// Wire format: the length of the archive's bytes as a uint64 (host byte order, as mproc's
// counts), then a `boost::archive::binary_oarchive` with the flags `no_header | no_codecvt`
// (sender and receiver are the same build: the 40-byte signature and version header would carry
// nothing; no locale facet is built per message). One archive per value: Boost's object tracking
// and class information do not span messages. Boost's binary archive is host byte order and host
// sizes, as mproc's format. `encoded_size(v)` is exact: 8 + the archive's bytes.
//
// Encoding: `size()` runs the save into a counting stream buffer (no memory). `encode()` first
// saves straight into the Writer's window when the whole frame fits there (a Queue record, a
// Connection message, to_bytes: one pass, no copy); otherwise it counts, writes the length, and
// saves again into a stream buffer that writes through the Writer (its windows, refilled as they
// fill: memory bounded whatever the value's size). So a value is saved two or three times per
// message; the save is Boost's, through virtual stream-buffer calls.
//
// Decoding: the frame length is checked against the bytes that remain before anything is
// allocated; a frame whole in the Reader's window is loaded in place, a streamed one is first
// gathered as the codec gathers a std::string (memory grows with the bytes received). The archive
// reads only the frame (a read past it fails), and every byte of the frame must be consumed.
// Every exception thrown while loading (boost::archive::archive_exception, std::bad_alloc,
// std::length_error, the type's own) becomes DecodeError naming the type and Boost's message.
// Decoding builds `T{}` and loads into it: T must be default-constructible.
//
// Untrusted bytes: bounded in size, with caveats. Boost's own binary_iarchive trusts its input:
// it allocates (and, for a vector, value-initialises: writes) whatever collection count or string
// length it reads before reading the elements, so a frame of a hundred bytes can make it allocate
// and touch up to 2^64 bytes. So the archive that loads is mproc's `boost_bounded_iarchive`: it
// reads the same bytes as binary_iarchive (it derives from Boost's binary_iarchive_impl, as
// Boost's documented derived archives do), and checks each collection count (every Boost
// container's count, including an unordered container's bucket count) and each string length
// against the bytes left in the frame before Boost allocates: DecodeError "exceeds the N bytes
// left". What that guarantees: a collection allocates at most (bytes of the frame) x sizeof(its
// element), a string at most the frame. What it does not: a collection whose elements encode to
// no bytes at all (a class whose serialize saves nothing: Boost writes its class information
// once) cannot have more elements than the bytes that follow its count, so such a collection
// longer than that is rejected; pointers load objects of their registered classes (each takes
// bytes of the frame, so their number is bounded, not their size); and loading recurses as deep
// as the bytes nest through a recursive type (as mproc's own serialize rule). Counts read by a
// user's own serialize (`ar & n; v.resize(n);`) are the user's to check. Between peers that are
// not trusted, prefer mproc's serialize(Archive&), cereal (<mproc/codec/cereal.hpp>), protobuf or
// json, whose bounds are complete.
//
// Boost's binary_iarchive instead (`boost_serialization_codec<T, boost::archive::binary_iarchive>`,
// written as a specialisation of mproc::codec<T> by hand): for a type whose serialize is compiled
// for boost::archive::binary_iarchive only (an explicit instantiation in a .cpp, which the
// bounded archive would fail to link against), between trusted peers only (the processes of one
// program, as Queues and Pools normally connect) or with the receiver's memory bounded
// (RLIMIT_AS, a cgroup): it has none of the checks above (the tests show a count of 2^64-1 as
// std::length_error, one that cannot be allocated as std::bad_alloc, both DecodeError, and one
// that can as 8 MiB allocated and zeroed for a 100-byte frame). Polymorphic pointers load through
// either archive when their classes are exported (BOOST_CLASS_EXPORT) after this header is
// included, as Boost requires of every archive header.
//
// Thread safety: as Boost.Serialization (distinct archives in distinct threads are independent;
// its class registry is initialised at static-initialisation time).
#pragma once

#include <boost/archive/archive_exception.hpp>
#include <boost/archive/basic_archive.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_iarchive_impl.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/archive/detail/register_archive.hpp>
#include <boost/core/demangle.hpp>
#include <boost/serialization/collection_size_type.hpp>
// The definitions of binary_iarchive_impl's members, for the archive below (libboost_serialization
// holds them only for Boost's own archives); as Boost's own derived-archive examples do.
#include <boost/archive/impl/archive_serializer_map.ipp>
#include <boost/archive/impl/basic_binary_iarchive.ipp>
#include <boost/archive/impl/basic_binary_iprimitive.ipp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/errors.hpp>
#include <streambuf>
#include <string>
#include <type_traits>
#include <typeinfo>

namespace mproc {

namespace detail::boost_codec {

inline constexpr std::size_t kLengthBytes = sizeof(std::uint64_t);
inline constexpr unsigned kFlags = boost::archive::no_header | boost::archive::no_codecvt;

// Counts the bytes saved, keeps none. Boost's binary archive writes through sputn only.
class CountBuf final : public std::streambuf {
 public:
  std::size_t count() const noexcept { return count_; }

 protected:
  std::streamsize xsputn(const char_type*, std::streamsize n) override {
    count_ += static_cast<std::size_t>(n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) ++count_;
    return traits_type::not_eof(c);
  }

 private:
  std::size_t count_ = 0;
};

// Writes into a fixed span; a write that does not fit fails (and the archive throws).
class SpanBuf final : public std::streambuf {
 public:
  SpanBuf(std::byte* begin, std::byte* end) noexcept : cur_(begin), end_(end) {}
  std::byte* cur() const noexcept { return cur_; }
  bool overflowed() const noexcept { return overflowed_; }

 protected:
  std::streamsize xsputn(const char_type* s, std::streamsize n) override {
    if (n > end_ - cur_) {
      overflowed_ = true;
      return 0;
    }
    std::memcpy(cur_, s, static_cast<std::size_t>(n));
    cur_ += n;
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }

 private:
  std::byte* cur_;
  std::byte* end_;
  bool overflowed_ = false;
};

// Writes through a Writer, which refills its windows (and may throw, e.g. Full or Closed).
class WriterBuf final : public std::streambuf {
 public:
  explicit WriterBuf(Writer& w) noexcept : w_(&w) {}
  std::size_t count() const noexcept { return count_; }

 protected:
  std::streamsize xsputn(const char_type* s, std::streamsize n) override {
    w_->write(s, static_cast<std::size_t>(n));
    count_ += static_cast<std::size_t>(n);
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }

 private:
  Writer* w_;
  std::size_t count_ = 0;
};

// Reads a frame that is in memory; reading past it fails (the archive throws).
class FrameBuf final : public std::streambuf {
 public:
  FrameBuf(const std::byte* data, std::size_t n) {
    // The get area is read only (std::streambuf's interface takes char*).
    char* p = const_cast<char*>(reinterpret_cast<const char*>(data));
    setg(p, p, p + n);
  }
  std::size_t left() const noexcept { return static_cast<std::size_t>(egptr() - gptr()); }
};

}  // namespace detail::boost_codec

// Boost's binary input archive, reading the same bytes as boost::archive::binary_iarchive, with
// every collection count and string length checked against the bytes left in the frame before
// Boost allocates for it (Boost's own archive allocates whatever count it reads). The default
// input archive of boost_serialization_codec; a type whose serialize is instantiated for
// boost::archive::binary_iarchive only can use that one instead (see the header comment).
class boost_bounded_iarchive
    : public boost::archive::binary_iarchive_impl<boost_bounded_iarchive, char,
                                                  std::char_traits<char>> {
  using base_t =
      boost::archive::binary_iarchive_impl<boost_bounded_iarchive, char, std::char_traits<char>>;
  friend class boost::archive::detail::interface_iarchive<boost_bounded_iarchive>;
  friend class boost::archive::basic_binary_iarchive<boost_bounded_iarchive>;
  friend class boost::archive::basic_binary_iprimitive<boost_bounded_iarchive, char,
                                                       std::char_traits<char>>;
  friend class boost::archive::load_access;

 public:
  boost_bounded_iarchive(detail::boost_codec::FrameBuf& frame, unsigned int flags)
      : base_t(frame, flags), frame_(&frame) {
    init(flags);
  }

 protected:
  template <class T>
  void load_override(T& t) {
    base_t::load_override(t);
  }
  void load_override(boost::serialization::collection_size_type& t) {
    base_t::load_override(t);
    const boost::serialization::collection_size_type& count = t;
    check(static_cast<std::size_t>(count), 1, "a collection's count");
  }
  using base_t::load;
  void load(std::string& s) {
    std::size_t n = 0;
    base_t::load(n);
    check(n, 1, "a string's length");
    s.resize(n);
    if (n > 0) load_binary(s.data(), n);
  }
  void load(std::wstring& s) {
    std::size_t n = 0;
    base_t::load(n);
    check(n, sizeof(wchar_t), "a wide string's length");
    s.resize(n);
    if (n > 0) load_binary(s.data(), n * sizeof(wchar_t));
  }

 private:
  void check(std::size_t n, std::size_t bytes_each, const char* what) const {
    if (n > frame_->left() / bytes_each)
      throw DecodeError(std::string("mproc: corrupt message: ") + what + " (" + std::to_string(n) +
                        ") exceeds the " + std::to_string(frame_->left()) +
                        " bytes left in the Boost.Serialization archive");
  }

  detail::boost_codec::FrameBuf* frame_;
};

namespace detail::boost_codec {

template <class T>
std::string type_name() {
  return boost::core::demangle(typeid(T).name());
}

template <class T>
std::size_t payload_size(const T& v) {
  CountBuf count;
  {
    boost::archive::binary_oarchive oa(count, kFlags);
    oa << v;
  }
  return count.count();
}

template <class T>
void encode(Writer& w, const T& v) {
  const auto room = static_cast<std::size_t>(w.end() - w.cur());
  if (room > kLengthBytes) {  // try the window first: one save, no copy
    SpanBuf span(w.cur() + kLengthBytes, w.end());
    try {
      {
        boost::archive::binary_oarchive oa(span, kFlags);
        oa << v;
      }
      const auto n = static_cast<std::uint64_t>(span.cur() - (w.cur() + kLengthBytes));
      std::memcpy(w.cur(), &n, kLengthBytes);
      w.set_window(span.cur(), w.end());
      return;
    } catch (const boost::archive::archive_exception&) {
      if (!span.overflowed()) throw;
    }
  }
  const std::size_t n = payload_size(v);
  w.write_value(static_cast<std::uint64_t>(n));
  WriterBuf out(w);
  {
    boost::archive::binary_oarchive oa(out, kFlags);
    oa << v;
  }
  if (out.count() != n)
    throw Error("mproc: Boost.Serialization saved " + std::to_string(out.count()) +
                " bytes for a " + type_name<T>() + " it had counted as " + std::to_string(n) +
                " (a save that is not deterministic, or the value changed meanwhile)");
}

template <class T, class IArchive>
T load(const std::byte* data, std::size_t n) {
  FrameBuf in(data, n);
  T v{};
  try {
    IArchive ia(in, kFlags);
    ia >> v;
  } catch (const DecodeError& e) {
    throw DecodeError(std::string(e.what()) + " (loading a " + type_name<T>() + ")");
  } catch (const std::exception& e) {
    throw DecodeError("mproc: corrupt message: Boost.Serialization could not load a " +
                      type_name<T>() + " from its " + std::to_string(n) + " bytes: " + e.what());
  }
  if (in.left() != 0)
    throw DecodeError("mproc: corrupt message: " + std::to_string(in.left()) + " of the " +
                      std::to_string(n) + " bytes of a Boost.Serialization " + type_name<T>() +
                      " remain after it loaded");
  return v;
}

template <class T, class IArchive>
T decode(Reader& r) {
  static_assert(std::is_default_constructible_v<T>,
                "mproc::boost_serialization_codec<T>: T must be default-constructible (decode "
                "builds a T{} and loads into it)");
  std::uint64_t n = 0;
  if (r.buffered() >= kLengthBytes) {
    std::memcpy(&n, r.cur(), kLengthBytes);
    if (n <= r.buffered() - kLengthBytes) {  // the whole frame has arrived: load it in place
      r.skip(kLengthBytes);
      T v = load<T, IArchive>(r.cur(), static_cast<std::size_t>(n));
      r.skip(static_cast<std::size_t>(n));
      return v;
    }
  }
  n = r.read_value<std::uint64_t>();
  if (n > r.remaining())
    throw DecodeError("mproc: corrupt message: the length of a Boost.Serialization " +
                      type_name<T>() + " (" + std::to_string(n) + " bytes) exceeds the " +
                      std::to_string(r.remaining()) + " bytes that remain");
  std::string bytes;
  mproc::detail::read_block(r, bytes, static_cast<std::size_t>(n));  // grows as bytes arrive
  return load<T, IArchive>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
}

}  // namespace detail::boost_codec

// The codec of a type saved by boost::archive::binary_oarchive and loaded by `IArchive`, which
// reads the same bytes: mproc's bounded archive (the default), or boost::archive::binary_iarchive
// (see the header comment). Specialise mproc::codec<T> as deriving from it, or use
// MPROC_CODEC_BOOST_SERIALIZATION.
template <class T, class IArchive = boost_bounded_iarchive>
struct boost_serialization_codec {
  static constexpr std::size_t min_size = detail::boost_codec::kLengthBytes;

  static std::size_t size(const T& v) {
    return detail::boost_codec::kLengthBytes + detail::boost_codec::payload_size(v);
  }
  static void encode(Writer& w, const T& v) { detail::boost_codec::encode(w, v); }
  static T decode(Reader& r) { return detail::boost_codec::decode<T, IArchive>(r); }
};

}  // namespace mproc

// Polymorphic pointers exported with BOOST_CLASS_EXPORT after this header load through the
// bounded archive too; it reads arrays of arithmetic types as one block, as binary_iarchive.
BOOST_SERIALIZATION_REGISTER_ARCHIVE(mproc::boost_bounded_iarchive)
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(mproc::boost_bounded_iarchive)

// Makes `mproc::codec<T>` save and load T through Boost.Serialization. At global scope.
#define MPROC_CODEC_BOOST_SERIALIZATION(...) \
  template <>                                \
  struct mproc::codec<__VA_ARGS__> : ::mproc::boost_serialization_codec<__VA_ARGS__> {}
