// Two types from "third-party libraries" that mproc cannot encode by itself, and the
// `mproc::codec` specialisations that make them travel (docs/codec.md). Used by custom_codec.cpp
// and by the fuzz target tests/fuzz/custom_codec_fuzz.cpp, which checks these codecs against
// hostile bytes.
//
// Part 1 stands for headers you cannot modify (no serialize(), private members, invariants that
// their constructors check). Part 2 is your code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/codec.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// ---- Part 1: the third-party libraries (pretend: <money/decimal.hpp>, <geo/polygon.hpp>) -------

namespace money {

// A fixed-point decimal: `units / 10^scale`, scale 0 to 18. Trivially copyable, so mproc would
// send its object bytes (padding included) and accept any bytes back, a scale of 200 too: its
// specialisation below checks the invariant instead.
class Decimal {
 public:
  static constexpr std::uint8_t kMaxScale = 18;

  Decimal() = default;
  Decimal(std::int64_t units, std::uint8_t scale) : units_(units), scale_(scale) {
    if (scale > kMaxScale) throw std::invalid_argument("money::Decimal: scale above 18");
  }

  std::int64_t units() const { return units_; }
  std::uint8_t scale() const { return scale_; }

  std::string to_string() const {
    std::int64_t pow = 1;
    for (int i = 0; i < scale_; ++i) pow *= 10;
    const std::uint64_t mag =
        units_ < 0 ? 0 - static_cast<std::uint64_t>(units_) : static_cast<std::uint64_t>(units_);
    std::string s = units_ < 0 ? "-" : "";
    s += std::to_string(mag / static_cast<std::uint64_t>(pow));
    if (scale_ > 0) {
      std::string frac = std::to_string(mag % static_cast<std::uint64_t>(pow));
      s += '.' + std::string(scale_ - frac.size(), '0') + frac;
    }
    return s;
  }
  // Equal representations (1.50 and 1.5 differ: the scale is part of the value, as in a ledger).
  bool operator==(const Decimal&) const = default;

 private:
  std::int64_t units_ = 0;
  std::uint8_t scale_ = 0;
};

}  // namespace money

namespace geo {

template <class Coord>
class Point {
 public:
  Point() = default;
  Point(Coord x, Coord y) : x_(x), y_(y) {}
  Coord x() const { return x_; }
  Coord y() const { return y_; }
  bool operator==(const Point&) const = default;

 private:
  Coord x_{};
  Coord y_{};
};

// A named polygon of at least 3 vertices. Not default-constructible, not trivially copyable, no
// serialize(): mproc rejects it at compile time until codec<Polygon<C>> is specialised.
template <class Coord>
class Polygon {
 public:
  Polygon(std::string name, std::vector<Point<Coord>> vertices)
      : name_(std::move(name)), vertices_(std::move(vertices)) {
    if (vertices_.size() < 3) throw std::invalid_argument("geo::Polygon: fewer than 3 vertices");
  }

  const std::string& name() const { return name_; }
  const std::vector<Point<Coord>>& vertices() const { return vertices_; }

  // Twice the signed area (shoelace formula), exact for integer coordinates.
  Coord twice_area() const {
    Coord sum{};
    for (std::size_t i = 0; i < vertices_.size(); ++i) {
      const Point<Coord>& a = vertices_[i];
      const Point<Coord>& b = vertices_[(i + 1) % vertices_.size()];
      sum += a.x() * b.y() - b.x() * a.y();
    }
    return sum;
  }
  bool operator==(const Polygon&) const = default;

 private:
  std::string name_;
  std::vector<Point<Coord>> vertices_;
};

}  // namespace geo

// ---- Part 2: your code — the codec specialisations ------------------------------------------

// A full specialisation: a fixed 9 bytes (units, then scale), no padding on the wire, and decode
// rejects what the type's invariant forbids with mproc::DecodeError (never the library's
// std::invalid_argument, which is not an error a receiver of bad bytes expects).
template <>
struct mproc::codec<money::Decimal> {
  // Hint: no value takes fewer bytes, so a vector<Decimal> whose count claims more elements than
  // 9-byte records fit in the rest of the message is rejected before anything is allocated.
  static constexpr std::size_t min_size = sizeof(std::int64_t) + sizeof(std::uint8_t);
  // No `bitwise` hint: the encoding is not the object bytes (no padding), and not every 9 bytes
  // decode (a scale above 18 does not).

  static std::size_t size(const money::Decimal&) { return min_size; }
  static void encode(Writer& w, const money::Decimal& d) {
    w.write_value(d.units());
    w.write_value(d.scale());
  }
  static money::Decimal decode(Reader& r) {
    const auto units = r.read_value<std::int64_t>();
    const auto scale = r.read_value<std::uint8_t>();
    if (scale > money::Decimal::kMaxScale)
      throw DecodeError("money::Decimal: corrupt message: scale " + std::to_string(scale) +
                        " above 18");
    return money::Decimal(units, scale);
  }
};

// A partial specialisation, constrained by a requires-clause: every Polygon<C> of an arithmetic C
// other than bool (not every byte is a bool).
// (`template <class C> struct mproc::codec<geo::Polygon<C>, std::enable_if_t<...>>` does the
// same before C++20.) The name goes through mproc's own string codec (bounded for free); the
// vertices are written by hand to show the checks a hand-written decoder owes: count, then x, y
// per vertex.
template <class C>
  requires(std::is_arithmetic_v<C> && !std::is_same_v<C, bool>)
struct mproc::codec<geo::Polygon<C>> {
  static constexpr std::size_t kVertexBytes = 2 * sizeof(C);
  // Hint: an empty name (8-byte length) and a vertex count (8 bytes); at least 3 vertices.
  static constexpr std::size_t min_size = 8 + 8 + 3 * kVertexBytes;

  static std::size_t size(const geo::Polygon<C>& p) {
    return mproc::encoded_size(p.name()) + sizeof(std::uint64_t) +
           p.vertices().size() * kVertexBytes;
  }
  static void encode(Writer& w, const geo::Polygon<C>& p) {
    mproc::encode(w, p.name());
    w.write_value(static_cast<std::uint64_t>(p.vertices().size()));
    for (const geo::Point<C>& v : p.vertices()) {
      w.write_value(v.x());
      w.write_value(v.y());
    }
  }
  static geo::Polygon<C> decode(Reader& r) {
    std::string name = mproc::decode<std::string>(r);
    const auto n = r.read_value<std::uint64_t>();
    // 1. The count against the bytes that remain, before anything is allocated for it: a count
    //    of 2^60 in a 40-byte message throws DecodeError here.
    r.check_count(n, kVertexBytes);
    // 2. The type's invariant, as a DecodeError (the constructor would throw invalid_argument).
    if (n < 3) throw DecodeError("geo::Polygon: corrupt message: fewer than 3 vertices");
    // 3. Reserve no more than what has arrived (`buffered()`): for a streamed message
    //    `remaining()` is what the sender announced, not what it sent. Then grow as vertices
    //    decode.
    std::vector<geo::Point<C>> vertices;
    const std::size_t arrived = r.buffered() / kVertexBytes + 1;
    vertices.reserve(n < arrived ? static_cast<std::size_t>(n) : arrived);
    for (std::uint64_t i = 0; i < n; ++i) {
      const C x = r.read_value<C>();
      const C y = r.read_value<C>();
      vertices.emplace_back(x, y);
    }
    return geo::Polygon<C>(std::move(name), std::move(vertices));
  }
};
