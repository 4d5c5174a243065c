// Making a type from another library travel: `money::Decimal` and `geo::Polygon<C>` (see
// custom_codec.hpp) have private members, invariants and no serialize(), and their headers are not
// ours to change. Specialising `mproc::codec<T>` for them (custom_codec.hpp, part 2) is all it
// takes: they then go through a Queue to a Process, through Pool.map, and inside any container.
// The last step feeds the decoder hostile bytes: it throws DecodeError, it does not allocate.
// Every result is checked; the program exits with 1 on a mismatch. docs/codec.md explains the
// contract and how to fuzz such a codec (tests/fuzz/custom_codec_fuzz.cpp fuzzes these two).
//
// Python (pickle takes any object; a class may steer it with __reduce__ / copyreg):
//   copyreg.pickle(Polygon, lambda p: (Polygon, (p.name, p.vertices)))
//   shapes.put(polygon); areas = pool.map(area_of, polygons)
#include "custom_codec.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mproc/codec/map.hpp>
#include <mproc/mproc.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using Shape = geo::Polygon<double>;

// The area in hundredths, as a Decimal of scale 2 (exact for these integer coordinates).
money::Decimal area_of(const Shape& p) {
  const double twice = p.twice_area();
  return money::Decimal(static_cast<std::int64_t>((twice < 0 ? -twice : twice) * 50), 2);
}

std::vector<Shape> make_shapes() {
  std::vector<Shape> shapes;
  for (int k = 1; k <= 6; ++k) {  // squares of side k: area k*k
    const double s = k;
    shapes.emplace_back("square-" + std::to_string(k),
                        std::vector<geo::Point<double>>{{0, 0}, {s, 0}, {s, s}, {0, s}});
  }
  for (int k = 1; k <= 6; ++k) {  // right triangles with legs k and k+1: area k(k+1)/2
    const double a = k, b = k + 1;
    shapes.emplace_back("triangle-" + std::to_string(k),
                        std::vector<geo::Point<double>>{{0, 0}, {a, 0}, {0, b}});
  }
  return shapes;
}

// The area computed here, in hundredths, without the codec.
money::Decimal expected_area(const std::string& name) {
  const int k = std::stoi(name.substr(name.find('-') + 1));
  if (name.rfind("square-", 0) == 0) return money::Decimal(std::int64_t{100} * k * k, 2);
  return money::Decimal(std::int64_t{50} * k * (k + 1), 2);
}

}  // namespace

int main() {
  int mismatches = 0;
  const std::vector<Shape> shapes = make_shapes();

  // 1. A Queue to a Process and a Queue back: polygons out, (name, area) pairs back.
  mproc::Queue<std::optional<Shape>> to_worker;  // std::nullopt: "no more shapes"
  mproc::Queue<std::pair<std::string, money::Decimal>> from_worker;
  mproc::Process worker([&] {
    while (std::optional<Shape> s = to_worker.get()) from_worker.put({s->name(), area_of(*s)});
  });
  worker.start();
  for (const Shape& s : shapes) to_worker.put(s);
  to_worker.put(std::nullopt);
  std::map<std::string, money::Decimal> by_worker;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    auto [name, area] = from_worker.get(std::chrono::seconds(30));
    by_worker.emplace(std::move(name), area);
  }
  if (!worker.join(std::chrono::seconds(30))) ++mismatches;  // a worker that does not end
  std::printf("through a Queue to a Process (exit code %d):\n", worker.exitcode().value_or(-1));
  for (const auto& [name, area] : by_worker) {
    const bool ok = area == expected_area(name);
    mismatches += ok ? 0 : 1;
    std::printf("  %-11s area %6s %s\n", name.c_str(), area.to_string().c_str(),
                ok ? "ok" : "MISMATCH");
  }

  // 2. Pool.map: each polygon is an argument, each Decimal a result.
  mproc::Pool pool(2);
  const std::vector<money::Decimal> areas = pool.map(area_of, shapes);
  std::int64_t total = 0, expected_total = 0;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    total += areas[i].units();
    expected_total += expected_area(shapes[i].name()).units();
    if (!(areas[i] == expected_area(shapes[i].name()))) ++mismatches;
  }
  std::printf("through Pool.map: %zu areas, total %s (expected %s)\n", areas.size(),
              money::Decimal(total, 2).to_string().c_str(),
              money::Decimal(expected_total, 2).to_string().c_str());

  // 3. Inside containers, and against hostile bytes: a polygon message whose vertex count claims
  //    2^60 vertices is rejected by check_count before anything is allocated; a scale of 200 is
  //    rejected by the Decimal codec's own check. Both are DecodeError, as for built-in types.
  const std::map<std::string, std::vector<money::Decimal>> ledger = {
      {"rent", {money::Decimal(120000, 2)}},
      {"fees", {money::Decimal(5, 1), money::Decimal(25, 2)}}};
  const auto back = mproc::from_bytes<decltype(ledger)>(mproc::to_bytes(ledger));
  if (back != ledger) ++mismatches;
  std::printf("a map of vectors of Decimal round-trips: %s\n", back == ledger ? "ok" : "MISMATCH");

  std::vector<std::byte> lying = mproc::to_bytes(shapes[0]);
  const std::uint64_t huge = std::uint64_t{1} << 60;
  std::memcpy(lying.data() + mproc::encoded_size(shapes[0].name()), &huge, sizeof(huge));
  std::vector<std::byte> bad_scale = mproc::to_bytes(money::Decimal(1, 2));
  bad_scale[8] = std::byte{200};
  auto must_reject = [&]<class T>(const std::vector<std::byte>& bytes) {
    try {
      (void)mproc::from_bytes<T>(bytes);
      ++mismatches;
      std::printf("hostile bytes decoded: MISMATCH\n");
    } catch (const mproc::DecodeError& e) {
      std::printf("hostile bytes rejected: %s\n", e.what());
    }
  };
  must_reject.operator()<Shape>(lying);
  must_reject.operator()<money::Decimal>(bad_scale);

  std::printf("%s\n", mismatches == 0 ? "all results checked" : "MISMATCHES");
  return mismatches == 0 && worker.exitcode() == 0 ? 0 : 1;
}
