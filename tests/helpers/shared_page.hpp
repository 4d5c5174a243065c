// helpers/shared_page.hpp — a MAP_SHARED|MAP_ANONYMOUS object for tests to pass results across fork
// without relying on the primitives under test.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <new>

namespace mproc_test {

template <class T>
class SharedPage {
 public:
  SharedPage() {
    void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    obj_ = ::new (p) T();
  }
  ~SharedPage() { munmap(obj_, sizeof(T)); }
  SharedPage(const SharedPage&) = delete;
  SharedPage& operator=(const SharedPage&) = delete;
  T* operator->() const { return obj_; }
  T& operator*() const { return *obj_; }

 private:
  T* obj_;
};

// Spins (with short sleeps) until pred() or ~`seconds` pass; returns pred().
template <class Pred>
bool eventually(Pred pred, double seconds = 20.0) {
  for (int i = 0; i < static_cast<int>(seconds * 1000); ++i) {
    if (pred()) return true;
    struct timespec ts {
      0, 1000000
    };
    nanosleep(&ts, nullptr);
  }
  return pred();
}

}  // namespace mproc_test
