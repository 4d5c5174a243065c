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
// Untrusted bytes: NOT bounded. mproc bounds the frame, but inside it Boost.Serialization trusts
// its input: a collection count or a string length read from the bytes is allocated (and for a
// vector, value-initialised: written, hence resident) before the elements are read, so a frame of
// a few bytes can make the receiver allocate and touch up to 2^64 bytes: std::bad_alloc or
// std::length_error (then DecodeError) when the allocation fails, the memory used — or the
// out-of-memory killer — when it succeeds (tests/adapters/boost_serialization_adapter_test.cpp
// shows both). Boost also loads pointers (allocating objects of any registered class) and
// recursion as deep as the bytes nest. mproc cannot check those counts without replacing Boost's
// archive (which would break types whose serialize is instantiated or exported for
// binary_iarchive only). Use this adapter between trusted peers only (the processes of one
// program, as Queue and Pool normally are), or bound the receiver's memory (RLIMIT_AS, a cgroup).
// For bytes from untrusted peers use mproc's own serialize(Archive&), cereal
// (<mproc/codec/cereal.hpp>) or protobuf (<mproc/codec/protobuf.hpp>), whose decoders are bounded.
//
// Thread safety: as Boost.Serialization (distinct archives in distinct threads are independent;
// its class registry is initialised at static-initialisation time).
#pragma once

#include <boost/archive/archive_exception.hpp>
#include <boost/archive/basic_archive.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/core/demangle.hpp>
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

template <class T>
T load(const std::byte* data, std::size_t n) {
  FrameBuf in(data, n);
  T v{};
  try {
    boost::archive::binary_iarchive ia(in, kFlags);
    ia >> v;
  } catch (const DecodeError&) {
    throw;
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

template <class T>
T decode(Reader& r) {
  static_assert(std::is_default_constructible_v<T>,
                "mproc::boost_serialization_codec<T>: T must be default-constructible (decode "
                "builds a T{} and loads into it)");
  std::uint64_t n = 0;
  if (r.buffered() >= kLengthBytes) {
    std::memcpy(&n, r.cur(), kLengthBytes);
    if (n <= r.buffered() - kLengthBytes) {  // the whole frame has arrived: load it in place
      r.skip(kLengthBytes);
      T v = load<T>(r.cur(), static_cast<std::size_t>(n));
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
  return load<T>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
}

}  // namespace detail::boost_codec

// The codec of a type saved and loaded by Boost.Serialization's binary archives (see the header
// comment). Specialise mproc::codec<T> as deriving from it, or use MPROC_CODEC_BOOST_SERIALIZATION.
template <class T>
struct boost_serialization_codec {
  static constexpr std::size_t min_size = detail::boost_codec::kLengthBytes;

  static std::size_t size(const T& v) {
    return detail::boost_codec::kLengthBytes + detail::boost_codec::payload_size(v);
  }
  static void encode(Writer& w, const T& v) { detail::boost_codec::encode(w, v); }
  static T decode(Reader& r) { return detail::boost_codec::decode<T>(r); }
};

}  // namespace mproc

// Makes `mproc::codec<T>` save and load T through Boost.Serialization. At global scope.
#define MPROC_CODEC_BOOST_SERIALIZATION(...) \
  template <>                                \
  struct mproc::codec<__VA_ARGS__> : ::mproc::boost_serialization_codec<__VA_ARGS__> {}
