// The waiting behind AsyncResult::get/wait and IMapResult::next (see mproc/detail/pool_core.hpp):
// every timeout form of those calls comes down to Waitable::wait_locked.
#include <mproc/detail/pool_core.hpp>

namespace mproc::detail {

bool Waitable::wait_locked(std::unique_lock<std::mutex>& lk, const Expiry& expiry,
                           bool (*ready)(const void* arg), const void* arg) const {
  // A saturated timeout (duration::max(), a deadline of time_point::max()) waits forever, as
  // nullopt does: no time point arithmetic near the clock's limit.
  if (!expiry || *expiry == Clock::time_point::max()) {
    while (!ready(arg)) cv_.wait(lk);
    return true;
  }
  while (!ready(arg)) {
    if (cv_.wait_until(lk, *expiry) == std::cv_status::timeout) return ready(arg);
  }
  return true;
}

bool ResultWait::wait(const Expiry& expiry) const {
  std::unique_lock<std::mutex> lk(mu_);
  return wait_locked(
      lk, expiry, [](const void* self) { return static_cast<const ResultWait*>(self)->done_; },
      this);
}

bool ResultWait::ready() const {
  std::lock_guard<std::mutex> g(mu_);
  return done_;
}

void ResultWait::finish() noexcept {
  {
    std::lock_guard<std::mutex> g(mu_);
    done_ = true;
  }
  cv_.notify_all();
}

}  // namespace mproc::detail
