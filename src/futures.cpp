// as_completed and wait over AsyncResults (see <mproc/futures.hpp>): a set of results that tells
// one waiter, through a hook on each result, which of them became ready, in the order they did.
#include <condition_variable>
#include <deque>
#include <mproc/futures.hpp>
#include <mproc/interrupt.hpp>
#include <mutex>

#include "mproc/detail/progress.hpp"

namespace mproc::detail {

// Shared between the waiter and the hooks (which may run after the waiter is gone).
struct CompletionSet::State {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::size_t> ready;  // indices, in completion order, not handed out yet
  std::size_t failed = 0;         // of those that became ready (failed() results)
  std::size_t completed = 0;
  Ref<ProgressTracker> progress;

  void push(std::size_t i, bool failed_result) {
    {
      std::lock_guard<std::mutex> g(mu);
      ready.push_back(i);
      ++completed;
      if (failed_result) ++failed;
    }
    cv.notify_all();
  }
};

CompletionSet::CompletionSet(
    ResultWait* const* results, std::size_t n, bool progress_bar,
    const std::function<void(std::size_t, std::optional<std::size_t>)>& progress)
    : st_(make_ref<State>()), left_(n) {
  if (progress_bar || progress)
    st_->progress = ProgressTracker::make(progress, progress_bar, std::optional<std::size_t>(n));
  hooks_.reserve(n);
  try {
    for (std::size_t i = 0; i < n; ++i) {
      ResultWait* r = results[i];
      const std::uint64_t token = r->add_hook([st = st_, i, r] { st->push(i, r->failed()); });
      if (token == 0)
        st_->push(i, r->failed());  // ready already
      else
        hooks_.emplace_back(r, token);
    }
  } catch (...) {
    for (auto& [r, token] : hooks_) r->remove_hook(token);
    throw;
  }
}

CompletionSet::~CompletionSet() {
  for (auto& [r, token] : hooks_) r->remove_hook(token);
  if (st_->progress) st_->progress->finish();
}

std::size_t CompletionSet::left() const noexcept { return left_; }

std::optional<std::size_t> CompletionSet::next(const Expiry& expiry) {
  if (left_ == 0) throw ValueError("mproc::as_completed: every result was handed out");
  State& st = *st_;
  std::unique_lock<std::mutex> lk(st.mu);
  // Interruptible (mproc/interrupt.hpp): while armed the sleeps are sliced; a result that is
  // there wins over a pending request.
  while (st.ready.empty()) {
    throw_if_interrupted("mproc::as_completed/wait");
    const Expiry until = interruptible_until(expiry);
    if (!until || *until == Clock::time_point::max()) {
      st.cv.wait(lk);
    } else if (st.cv.wait_until(lk, *until) == std::cv_status::timeout && expired(expiry) &&
               st.ready.empty()) {
      return std::nullopt;
    }
  }
  const std::size_t i = st.ready.front();
  st.ready.pop_front();
  --left_;
  lk.unlock();
  if (st.progress) {
    st.progress->add(1);
    if (left_ == 0) st.progress->finish();
  }
  return i;
}

void wait_results(ResultWait* const* results, std::size_t n, ReturnWhen when, const Expiry& expiry,
                  std::vector<bool>& done) {
  done.assign(n, false);
  {
    CompletionSet set(results, n, false, {});
    std::size_t completed = 0;
    bool failed = false;
    while (completed < n) {
      if (when == ReturnWhen::first_completed && completed > 0) break;
      if (when == ReturnWhen::first_exception && failed) break;
      const std::optional<std::size_t> i = set.next(expiry);
      if (!i) break;
      ++completed;
      if (results[*i]->failed()) failed = true;
    }
  }
  // What is ready now (also results that completed after the loop stopped looking).
  for (std::size_t i = 0; i < n; ++i) done[i] = results[i]->ready();
}

}  // namespace mproc::detail
