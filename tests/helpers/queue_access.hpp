// helpers/queue_access.hpp — a test's way to the shared region behind a QueueCore handle, for
// tests that inspect or scribble into it, and to the QueueCore behind a Queue<T>
// (QueueCoreTestAccess is a friend of QueueCore and of Queue<T>).
#pragma once

#include <cstddef>
#include <mproc/detail/queue_core.hpp>
#include <mproc/queue.hpp>

#include "queue_shared.hpp"

namespace mproc::detail {
struct QueueCoreTestAccess {
  static QueueShared* shared(QueueCore& q) { return q.shared_.get(); }
  static std::byte* ring(QueueCore& q) { return q.ring_; }
  template <class T>
  static QueueCore& core(Queue<T>& q) {
    return q.core_;
  }
};
}  // namespace mproc::detail
