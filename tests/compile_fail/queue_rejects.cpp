// Queues of record types that must not compile, one per MPROC_CASE; case 0 is the control that
// must. Run by expect_compile_error.cmake, which checks the compiler's message.
#include <memory>
#include <mproc/queue.hpp>
#include <string>

struct Opaque {
  std::unique_ptr<int> p;  // not encodable: a smart pointer
};
struct Order {  // a record with serialize(): goes through a Queue
  std::string symbol;
  int qty = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(symbol, qty);
  }
};
struct RecSerialize {  // serialize() archives a member that cannot be encoded
  std::string name;
  Opaque o;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, o);
  }
};

struct RecPlain {  // no serialize(), and a member that cannot be encoded
  std::string name;
  Opaque o;
};

int main() {
#if MPROC_CASE == 0  // the control
  mproc::Queue<Order> q;
  q.put(Order{"abc", 1});
  (void)q.get();
#elif MPROC_CASE == 1
  mproc::Queue<RecSerialize> q;
  q.put(RecSerialize{});
#elif MPROC_CASE == 2
  mproc::Queue<RecPlain> q;  // the first error names the member's type, the Queue's follows
#else
#error "unknown MPROC_CASE"
#endif
}
