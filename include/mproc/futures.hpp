// mproc/futures.hpp — waiting on many results: `mproc::as_completed` and `mproc::wait`.
//
// Mirrors concurrent.futures.as_completed and concurrent.futures.wait, over AsyncResult (what
// Pool::submit/apply_async/map_async return). The results may come from several pools; a range
// holds results of one type R.
//
//   std::vector<mproc::AsyncResult<int>> fs;
//   for (int i = 0; i < 100; ++i) fs.push_back(pool.submit(work, i));
//   for (auto& f : mproc::as_completed(fs, {.progress_bar = true}))
//     use(f.get());                                        // in completion order
//   auto [done, not_done] = mproc::wait(fs, 2s, mproc::FIRST_EXCEPTION);
//
// Neither polls: each result tells the waiter when it becomes ready (a hook run by the thread that
// makes it ready, ResultWait::add_hook), so waiting on 10^5 results costs one wake-up per result.
// A result that is cancelled, fails or succeeds counts as completed alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/errors.hpp>
#include <mproc/export.hpp>
#include <mproc/pool.hpp>
#include <mproc/timeout.hpp>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace mproc {

// When mproc::wait returns. Mirrors concurrent.futures' constants.
enum class ReturnWhen : unsigned char {
  first_completed,  // as soon as one result is done (or cancelled)
  first_exception,  // as soon as one result fails; all_completed if none does
  all_completed,    // when every result is done
};
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::first_completed;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::first_exception;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::all_completed;

// What mproc::wait returns: the results done and those not done, each in input order. Python
// returns two sets; a result given twice appears twice here.
template <class R>
struct WaitResult {
  std::vector<AsyncResult<R>> done;
  std::vector<AsyncResult<R>> not_done;
};

// How as_completed runs.
struct AsCompletedOptions {
  // The most the whole iteration may take (from the call); past it the iterator's increment
  // throws TimeoutError naming how many results are unfinished. Empty: no limit.
  std::optional<Timeout> timeout{};
  // A bar on stderr (when stderr is a terminal), as MapOptions::progress_bar; and/or a callback
  // (done, total) as results are handed out.
  bool progress_bar = false;
  std::function<void(std::size_t done, std::optional<std::size_t> total)> progress{};
};

namespace detail {

template <class T>
struct is_async_result : std::false_type {};
template <class R>
struct is_async_result<AsyncResult<R>> : std::true_type {};

template <class Rng>
concept FutureRange = std::ranges::input_range<Rng> &&
                      is_async_result<std::remove_cvref_t<std::ranges::range_value_t<Rng>>>::value;

template <class Rng>
using future_value_t =
    decltype(std::declval<std::remove_cvref_t<std::ranges::range_value_t<Rng>>&>().get());

// Results, watched: the index of each one as it becomes ready (src/futures.cpp).
class MPROC_API CompletionSet {
 public:
  // Watches `results` (hooks on each); those ready already come first, in order.
  CompletionSet(ResultWait* const* results, std::size_t n, bool progress_bar,
                const std::function<void(std::size_t, std::optional<std::size_t>)>& progress);
  ~CompletionSet();  // removes the hooks
  CompletionSet(const CompletionSet&) = delete;
  CompletionSet& operator=(const CompletionSet&) = delete;

  // The next result to complete (its index), waiting until `expiry`; nullopt when it passed
  // first. Throws ValueError when every result was handed out.
  std::optional<std::size_t> next(const Expiry& expiry);
  // The results not handed out yet.
  [[nodiscard]] std::size_t left() const noexcept;

 private:
  struct State;
  Ref<State> st_;
  std::vector<std::pair<ResultWait*, std::uint64_t>> hooks_;
  std::size_t left_;
};

// Blocks until `when` holds for `results` or `expiry` passes; marks in `done` those ready.
MPROC_API void wait_results(ResultWait* const* results, std::size_t n, ReturnWhen when,
                            const Expiry& expiry, std::vector<bool>& done);

template <class Rng>
WaitResult<future_value_t<Rng>> wait_futures(Rng&& futures, ReturnWhen when, const Expiry& expiry) {
  using R = future_value_t<Rng>;
  std::vector<AsyncResult<R>> fs;
  for (auto&& f : futures) fs.push_back(f);
  std::vector<ResultWait*> ptrs;
  ptrs.reserve(fs.size());
  for (const AsyncResult<R>& f : fs) ptrs.push_back(&f.wait_state());
  std::vector<bool> done;
  wait_results(ptrs.data(), ptrs.size(), when, expiry, done);
  WaitResult<R> out;
  for (std::size_t i = 0; i < fs.size(); ++i)
    (done[i] ? out.done : out.not_done).push_back(std::move(fs[i]));
  return out;
}

}  // namespace detail

// The results of `futures` in the order they complete: an input range, read once. Holds copies
// of the results. Iterating blocks until the next result is done; past `options.timeout` the
// increment (or begin()) throws TimeoutError "mproc::as_completed: N (of M) futures unfinished".
// Mirrors concurrent.futures.as_completed(fs, timeout).
template <class R>
class AsCompleted {
 public:
  AsCompleted(std::vector<AsyncResult<R>> futures, const AsCompletedOptions& options)
      : fs_(std::move(futures)),
        expiry_(options.timeout ? options.timeout->when() : detail::Expiry()),
        set_(pointers().data(), fs_.size(), options.progress_bar, options.progress) {}

  class iterator {
   public:
    using value_type = AsyncResult<R>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    const AsyncResult<R>& operator*() const { return owner_->fs_[index_]; }
    const AsyncResult<R>* operator->() const { return &owner_->fs_[index_]; }
    iterator& operator++() {
      owner_->advance(*this);
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.owner_ == nullptr;
    }

   private:
    friend class AsCompleted;
    AsCompleted* owner_ = nullptr;
    std::size_t index_ = 0;
  };

  iterator begin() {
    iterator it;
    it.owner_ = this;
    advance(it);
    return it;
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::vector<detail::ResultWait*>& pointers() {
    ptrs_.reserve(fs_.size());
    for (const AsyncResult<R>& f : fs_) ptrs_.push_back(&f.wait_state());
    return ptrs_;
  }
  void advance(iterator& it) {
    if (set_.left() == 0) {
      it.owner_ = nullptr;
      return;
    }
    const std::optional<std::size_t> i = set_.next(expiry_);
    if (!i)
      throw TimeoutError("mproc::as_completed: " + std::to_string(set_.left()) + " (of " +
                         std::to_string(fs_.size()) + ") futures unfinished");
    it.index_ = *i;
  }

  std::vector<AsyncResult<R>> fs_;
  std::vector<detail::ResultWait*> ptrs_;
  detail::Expiry expiry_;
  detail::CompletionSet set_;
};

template <detail::FutureRange Rng>
auto as_completed(Rng&& futures, const AsCompletedOptions& options = {}) {
  using F = std::remove_cvref_t<std::ranges::range_value_t<Rng>>;
  std::vector<F> fs;
  for (auto&& f : futures) fs.push_back(f);
  return AsCompleted<detail::future_value_t<Rng>>(std::move(fs), options);
}
template <detail::FutureRange Rng>
auto as_completed(Rng&& futures, Timeout timeout) {
  return as_completed(std::forward<Rng>(futures), AsCompletedOptions{.timeout = timeout});
}

// Waits until `return_when` holds (or the timeout passes), then returns the results done and not
// done. Mirrors concurrent.futures.wait(fs, timeout, return_when). Never throws TimeoutError: on
// expiry not_done holds what is left, as in Python.
template <detail::FutureRange Rng>
auto wait(Rng&& futures, ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_futures(std::forward<Rng>(futures), return_when, detail::Expiry());
}
template <detail::FutureRange Rng>
auto wait(Rng&& futures, Timeout timeout, ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_futures(std::forward<Rng>(futures), return_when, timeout.when());
}
template <detail::FutureRange Rng>
auto wait_until(Rng&& futures, Deadline deadline, ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_futures(std::forward<Rng>(futures), return_when, deadline.when());
}

}  // namespace mproc
