// Uses of mproc::codec that must not compile, one per MPROC_CASE; case 0 is the control that must.
// Run by expect_compile_error.cmake, which checks the compiler's message.
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mproc/codec.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>
// The containers whose rule is opt-in: the control includes their headers, the cases 15 to 21
// and 22 (the same uses) do not, and must be told which header to include.
#if MPROC_CASE == 0
#include <mproc/codec/deque.hpp>
#include <mproc/codec/list.hpp>
#include <mproc/codec/map.hpp>
#include <mproc/codec/set.hpp>
#include <mproc/codec/unordered_map.hpp>
#include <mproc/codec/unordered_set.hpp>
#include <mproc/codec/variant.hpp>
#endif

namespace {

struct HoldsUniquePtr {
  std::unique_ptr<int> p;
};

struct NoDefaultConstructor {
  explicit NoDefaultConstructor(int v) : value(v) {}
  int value;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
};

struct OwnClock {
  using rep = long;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<OwnClock>;
};

struct Incomplete {
  int v;
};

}  // namespace

// Record types for the cases that name a member (at namespace scope, so that both compilers spell
// their names the same way in the message).
struct Opaque {
  std::unique_ptr<int> p;  // not encodable: a smart pointer
};
struct Inner {
  int a;
  std::string s;  // not trivially copyable, and no serialize()
};
struct RecNoSerialize {  // the first mistake: a record without serialize()
  std::string name;
  Opaque o;
};
struct RecSerialize {  // serialize() is there, but archives a member that cannot be encoded
  std::string name;
  Opaque o;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, o);
  }
};
struct Plain {  // every member is encodable; only serialize() is missing
  std::string name;
  int count;
};
struct Nested {  // a C array member and a nested record: the first unencodable member is Inner
  std::string name;
  int arr[3];
  Inner in;
  Opaque o;
};

struct RecWithMap {  // a serialize() that archives a std::map
  std::map<std::string, int> counts;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(counts);
  }
};

// A specialisation without decode.
template <>
struct mproc::codec<Incomplete> {
  static std::size_t size(const Incomplete&) { return sizeof(int); }
  static void encode(Writer& w, const Incomplete& v) { w.write_value(v.v); }
};

int main() {
#if MPROC_CASE == 0  // the control: supported types, used the same way
  auto bytes = mproc::to_bytes(std::vector<std::string>{"ok"});
  (void)mproc::from_bytes<std::vector<std::string>>(bytes);
  (void)mproc::to_bytes(NoDefaultConstructor(1));  // encoding needs no default constructor
  (void)mproc::to_bytes(std::map<int, std::string>{});
  (void)mproc::to_bytes(std::set<int>{});
  (void)mproc::to_bytes(std::vector<std::unordered_map<std::string, int>>{});
  (void)mproc::from_bytes<std::unordered_set<int>>({});
  (void)mproc::to_bytes(std::deque<int>{});
  (void)mproc::to_bytes(std::list<int>{});
  (void)mproc::to_bytes(std::optional<std::variant<int, std::string>>{});
  (void)mproc::to_bytes(RecWithMap{});
#elif MPROC_CASE == 1
  (void)mproc::to_bytes(HoldsUniquePtr{});
#elif MPROC_CASE == 2
  const char* text = "text";
  (void)mproc::to_bytes(text);
#elif MPROC_CASE == 3
  (void)mproc::to_bytes(std::string_view("text"));
#elif MPROC_CASE == 4
  std::vector<HoldsUniquePtr> v;
  (void)mproc::to_bytes(v);
#elif MPROC_CASE == 5
  (void)mproc::from_bytes<NoDefaultConstructor>({});
#elif MPROC_CASE == 6
  (void)mproc::to_bytes(std::make_shared<int>(1));
#elif MPROC_CASE == 7
  (void)mproc::to_bytes(OwnClock::time_point{});
#elif MPROC_CASE == 8
  (void)mproc::to_bytes("text");
#elif MPROC_CASE == 9
  (void)mproc::to_bytes(Incomplete{1});
#elif MPROC_CASE == 10
  (void)mproc::to_bytes(RecNoSerialize{});
#elif MPROC_CASE == 11
  (void)mproc::to_bytes(RecSerialize{});
#elif MPROC_CASE == 12
  (void)mproc::to_bytes(Plain{});
#elif MPROC_CASE == 13
  (void)mproc::to_bytes(Nested{});
#elif MPROC_CASE == 14
  (void)mproc::from_bytes<RecSerialize>({});  // decoding names the member too
#elif MPROC_CASE == 15
  (void)mproc::to_bytes(std::map<int, std::string>{});
#elif MPROC_CASE == 16
  (void)mproc::to_bytes(std::set<int>{});
#elif MPROC_CASE == 17
  (void)mproc::to_bytes(std::vector<std::unordered_map<std::string, int>>{});  // as an element
#elif MPROC_CASE == 18
  (void)mproc::from_bytes<std::unordered_set<int>>({});
#elif MPROC_CASE == 19
  (void)mproc::to_bytes(std::deque<int>{});
#elif MPROC_CASE == 20
  (void)mproc::to_bytes(std::list<int>{});
#elif MPROC_CASE == 21
  (void)mproc::to_bytes(std::optional<std::variant<int, std::string>>{});  // as an element
#elif MPROC_CASE == 22
  (void)mproc::to_bytes(RecWithMap{});  // as a member archived by serialize()
#else
#error "unknown MPROC_CASE"
#endif
}
