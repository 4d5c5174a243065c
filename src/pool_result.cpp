// The waiting behind AsyncResult::get/wait and IMapResult::next (see mproc/detail/pool_core.hpp):
// every timeout form of those calls comes down to Monitor::wait_locked. Monitor keeps its
// std::mutex and std::condition_variable in storage of its own, constructed here.
#include <condition_variable>
#include <mproc/detail/pool_core.hpp>
#include <mproc/interrupt.hpp>
#include <mutex>
#include <new>

namespace mproc::detail {
namespace {

static_assert(sizeof(std::mutex) <= Monitor::kMutexBytes && alignof(std::mutex) <= 8,
              "Monitor's storage must hold a std::mutex");
static_assert(sizeof(std::condition_variable) <= Monitor::kCondBytes &&
                  alignof(std::condition_variable) <= 8,
              "Monitor's storage must hold a std::condition_variable");

std::mutex& as_mutex(unsigned char* p) noexcept {
  return *std::launder(reinterpret_cast<std::mutex*>(p));
}
std::condition_variable& as_cond(unsigned char* p) noexcept {
  return *std::launder(reinterpret_cast<std::condition_variable*>(p));
}

}  // namespace

Monitor::Monitor() noexcept {
  ::new (static_cast<void*>(mu_)) std::mutex;
  ::new (static_cast<void*>(cv_)) std::condition_variable;
}

Monitor::~Monitor() {
  as_cond(cv_).~condition_variable();
  as_mutex(mu_).~mutex();
}

void Monitor::lock() const noexcept { as_mutex(mu_).lock(); }
void Monitor::unlock() const noexcept { as_mutex(mu_).unlock(); }
void Monitor::notify_all() const noexcept { as_cond(cv_).notify_all(); }

bool Monitor::wait_locked(const Expiry& expiry, bool (*ready)(const void* arg),
                          const void* arg) const {
  // The caller holds the lock and keeps it: `lk` adopts it and gives it back on every way out.
  std::unique_lock<std::mutex> lk(as_mutex(mu_), std::adopt_lock);
  struct GiveBack {
    std::unique_lock<std::mutex>& lk;
    ~GiveBack() { (void)lk.release(); }
  } give_back{lk};
  std::condition_variable& cv = as_cond(cv_);
  // A saturated timeout (duration::max(), a deadline of time_point::max()) waits forever, as
  // nullopt does: no time point arithmetic near the clock's limit. While interruption is armed
  // (<mproc/interrupt.hpp>) each sleep ends after kInterruptSlice at the latest to look for a
  // request, which throws Interrupted (a ready result wins: it is looked at first); the lock goes
  // back to the caller on that way out too (GiveBack).
  while (!ready(arg)) {
    throw_if_interrupted("mproc::Pool: waiting for a result");
    const Expiry until = interruptible_until(expiry);
    if (!until || *until == Clock::time_point::max()) {
      cv.wait(lk);
    } else if (cv.wait_until(lk, *until) == std::cv_status::timeout && expired(expiry)) {
      return ready(arg);
    }
  }
  return true;
}

bool ResultWait::wait(const Expiry& expiry) const {
  std::lock_guard<const Monitor> g(w_);
  return w_.wait_locked(
      expiry, [](const void* self) { return static_cast<const ResultWait*>(self)->done_; }, this);
}

void ResultWait::wait_uninterrupted() const noexcept {
  InterruptExempt exempt;
  std::lock_guard<const Monitor> g(w_);
  (void)w_.wait_locked(
      std::nullopt, [](const void* self) { return static_cast<const ResultWait*>(self)->done_; },
      this);
}

bool ResultWait::ready() const {
  std::lock_guard<const Monitor> g(w_);
  return done_;
}

ResultWait::~ResultWait() = default;

std::uint64_t ResultWait::add_hook(std::function<void()> hook) {
  std::lock_guard<const Monitor> g(w_);
  if (done_) return 0;
  const std::uint64_t token = next_token_++;
  hooks_.push_back(Hook{token, std::move(hook)});
  return token;
}

void ResultWait::remove_hook(std::uint64_t token) noexcept {
  std::function<void()> gone;  // destroyed outside the lock (it may own other results)
  std::lock_guard<const Monitor> g(w_);
  for (auto it = hooks_.begin(); it != hooks_.end(); ++it) {
    if (it->token == token) {
      gone = std::move(it->fn);
      hooks_.erase(it);
      return;
    }
  }
}

void ResultWait::bind(Ref<PoolLink> link, std::uint64_t first, std::uint64_t count) noexcept {
  link_ = std::move(link);
  first_ = first;
  count_ = count;
}

bool ResultWait::claim() noexcept {
  std::lock_guard<const Monitor> g(w_);
  if (set_) return false;
  set_ = true;
  return true;
}

void ResultWait::finish() noexcept {
  std::vector<Hook> hooks;
  {
    std::lock_guard<const Monitor> g(w_);
    done_ = true;
    hooks.swap(hooks_);
  }
  w_.notify_all();
  for (Hook& h : hooks) {
    try {
      h.fn();
    } catch (...) {
      // As a result callback's: nobody could receive it (Python logs it).
    }
  }
}

}  // namespace mproc::detail
