// Uses of types written for cereal that must not compile, one per MPROC_CASE; case 0 is the
// control that must. Run by expect_compile_error.cmake, which checks the compiler's message.
// Cases 1-7 include <mproc/codec/cereal.hpp>; cases 20-25 do not, and must be told to.
#include <cereal/cereal.hpp>
#include <cereal/types/base_class.hpp>
#include <cstdint>
#include <memory>
#include <mproc/codec.hpp>
#include <string>
#include <vector>
#if MPROC_CASE < 20
#include <mproc/codec/cereal.hpp>
#endif

// At namespace scope, so that both compilers spell the names the same way in the message.
struct NoRule {  // no function for cereal, not trivially copyable, not an aggregate of encodables
  NoRule() {}
  std::unique_ptr<int> p;
};

struct NvpRecord {
  std::string name;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), cereal::make_nvp("values", values));
  }
};

struct SplitRecord {
  int x = 0;
  template <class Archive>
  void save(Archive& ar) const {
    ar(x);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(x);
  }
};

struct MinimalRecord {
  int x = 0;
  template <class Archive>
  int save_minimal(const Archive&) const {
    return x;
  }
  template <class Archive>
  void load_minimal(const Archive&, const int& v) {
    x = v;
  }
};

struct VersionedRecord {
  int x = 0;
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t) {
    ar(x);
  }
};

struct Base {
  int b = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(b);
  }
};
struct Derived : Base {
  int d = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::base_class<Base>(this), d);
  }
};

struct BinaryRecord {
  int raw[4] = {};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::binary_data(raw, sizeof(raw)));
  }
};

struct HoldsNoRule {
  int a = 0;
  NoRule bad;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(a), CEREAL_NVP(bad));
  }
};

struct NoRuleBase {  // not trivially copyable, no function for cereal
  std::string b;
};
struct DerivedFromNoRuleBase : NoRuleBase {
  virtual ~DerivedFromNoRuleBase() = default;
  std::string d;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::base_class<NoRuleBase>(this), d);
  }
};

struct NoDefault {
  explicit NoDefault(int v) : x(v) {}
  int x;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
};

struct BothForms {
  int x = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x);
  }
  template <class Archive>
  void save(Archive& ar) const {
    ar(x);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(x);
  }
};

struct HoldsUniquePtr {
  std::unique_ptr<int> p;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(p);  // needs <cereal/types/memory.hpp>
  }
};

int main() {
#if MPROC_CASE == 0
  (void)mproc::from_bytes<NvpRecord>(mproc::to_bytes(NvpRecord{}));
  (void)mproc::from_bytes<SplitRecord>(mproc::to_bytes(SplitRecord{}));
  (void)mproc::from_bytes<MinimalRecord>(mproc::to_bytes(MinimalRecord{}));
  (void)mproc::from_bytes<VersionedRecord>(mproc::to_bytes(VersionedRecord{}));
  (void)mproc::from_bytes<Derived>(mproc::to_bytes(Derived{}));
  (void)mproc::from_bytes<BinaryRecord>(mproc::to_bytes(BinaryRecord{}));
#elif MPROC_CASE == 1
  (void)mproc::to_bytes(HoldsNoRule{});
#elif MPROC_CASE == 2
  (void)mproc::to_bytes(DerivedFromNoRuleBase{});
#elif MPROC_CASE == 3
  (void)mproc::from_bytes<NoDefault>(mproc::to_bytes(NoDefault{1}));
#elif MPROC_CASE == 4
  (void)mproc::to_bytes(BothForms{});
#elif MPROC_CASE == 5
  (void)mproc::to_bytes(HoldsUniquePtr{});
#elif MPROC_CASE == 20
  (void)mproc::to_bytes(NvpRecord{});
#elif MPROC_CASE == 21
  (void)mproc::to_bytes(SplitRecord{});
#elif MPROC_CASE == 22
  (void)mproc::to_bytes(MinimalRecord{});
#elif MPROC_CASE == 23
  (void)mproc::to_bytes(VersionedRecord{});
#elif MPROC_CASE == 24
  (void)mproc::to_bytes(Derived{});
#elif MPROC_CASE == 25
  (void)mproc::to_bytes(BinaryRecord{});
#endif
}
