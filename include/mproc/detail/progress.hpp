// mproc/detail/progress.hpp — the progress bar of Pool::map and Pool::imap (like tqdm's), and the
// tracker that feeds it and MapOptions::progress (ProgressTracker). Defined in src/progress.cpp.
//
// No stability promise. A line looks like tqdm's ASCII bar:
//
//   label  45%|#########           | 450/1000 [00:01<00:01, 400.0 it/s]   (known total)
//   label 450 it [00:01, 400.0 it/s]                                       (unknown total)
//
// The percentage is rounded down and right-aligned in 3 columns; the bar fills the columns that
// the rest of the line leaves (whole '#' cells, rounded down). Times are MM:SS, or H:MM:SS from one
// hour on, rounded down; the time left is `?` while the rate is 0. The rate is the average since
// the start, with one decimal and a `k` (from 1000) or `M` (from a million) suffix. An empty label
// is left out with the space after it. A total of 0 counts as complete (100%, full bar); `done`
// above `total` shows a full bar and 100% but prints both numbers as given.
//
// Narrow lines: a line never exceeds `width - 1` characters (bytes: the label is counted as given).
// What does not fit goes in this order: the bar, then the label (the bar comes back if dropping the
// label left room for it), then the end of the line is cut.
//
// No other mproc header includes this one (the Pool's headers see ProgressTracker only as an
// incomplete type, through make_progress and finish_progress in detail/pool_core.hpp), so what it
// includes costs users nothing: it keeps std::mutex in ProgressBar and std::unique_ptr as the type
// that on_stderr returns (its callers hold it in one).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mproc/detail/expiry.hpp>
#include <mproc/detail/ref.hpp>
#include <mproc/detail/std_light.hpp>
#include <mproc/export.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace mproc::detail {

// One progress line without "\r" or "\n". `total` empty: unknown length (an unbounded imap).
// `elapsed`: seconds since the start (negative or NaN count as 0; at 0 the rate is 0). `width`: the
// terminal's columns; the result has at most `width - 1` characters (none for width 0 or 1).
MPROC_API std::string format_progress(std::string_view label, std::size_t done,
                                      std::optional<std::size_t> total, double elapsed,
                                      std::size_t width);

// A progress bar drawn on a file descriptor: each draw writes "\r", the line, and spaces over
// what is left of a longer previous line; finish() draws a last time and ends the line with "\n".
// Draws are throttled to one per 100 ms. Writes use write(2), retried on EINTR and after partial
// writes; errors are ignored (a closed terminal does not stop the program). Elapsed time runs on
// the steady clock from construction.
//
// Thread-safe: update() and finish() may be called from different threads (one mutex, held for
// one draw at most). Writing to a pipe whose reader is gone raises SIGPIPE like any write; that is
// why on_stderr() draws on terminals only.
class MPROC_API ProgressBar {
 public:
  // Draws on `fd` whatever it is (the tests use a pipe). `width`: the columns; 0 asks the
  // terminal (ioctl TIOCGWINSZ on `fd`) at every draw, so that a resized window is followed, and
  // uses 80 where `fd` is no terminal. `fd` is not owned and must stay open as long as the bar.
  ProgressBar(int fd, std::string label, std::size_t width = 0);
  // A bar on stderr (fd 2) if stderr is a terminal (isatty), nullptr otherwise.
  static std::unique_ptr<ProgressBar> on_stderr(std::string label);
  // Calls finish() with the counts of the last update() (0 and unknown total without one), unless
  // finish() was called.
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Records progress and redraws if 100 ms or more passed since the last draw; the first call
  // draws at once. Does nothing after finish(). Never throws; blocks for one draw at most (its own
  // or another thread's).
  void update(std::size_t done, std::optional<std::size_t> total) noexcept;
  // Draws with these counts, then "\n". Only the first call draws; later calls (and later
  // updates) do nothing.
  void finish(std::size_t done, std::optional<std::size_t> total) noexcept;

 private:
  void draw(Clock::time_point now, bool last);  // with mu_ held

  const int fd_;
  const std::size_t width_;
  const std::string label_;
  const Clock::time_point start_;
  std::mutex mu_;
  // Guarded by mu_:
  std::string buf_;  // the bytes of a draw, kept to reuse its capacity
  Clock::time_point last_draw_{};
  std::size_t last_len_ = 0;  // characters of the line last drawn
  std::size_t done_ = 0;
  std::optional<std::size_t> total_;
  bool drawn_ = false;
  bool finished_ = false;
};

// The progress of one map/imap (MapOptions::progress and progress_bar): a user callback and/or a
// bar on stderr. add() runs on the pool's result thread; finish() on that thread or the
// consumer's. Thread-safe.
class MPROC_API ProgressTracker {
 public:
  using Callback = std::function<void(std::size_t done, std::optional<std::size_t> total)>;

  // nullptr when there is nothing to report to (no callback, and no bar or stderr is no terminal).
  static Ref<ProgressTracker> make(const Callback& cb, bool bar, std::optional<std::size_t> total);
  ProgressTracker(Callback cb, std::unique_ptr<ProgressBar> bar, std::optional<std::size_t> total);
  // finish()
  ~ProgressTracker();
  ProgressTracker(const ProgressTracker&) = delete;
  ProgressTracker& operator=(const ProgressTracker&) = delete;

  // `items` more elements are done (successfully or not). A callback's exception is dropped.
  void add(std::size_t items) noexcept;
  // The bar's last line (once).
  void finish() noexcept;

 private:
  Callback cb_;
  std::unique_ptr<ProgressBar> bar_;
  std::optional<std::size_t> total_;
  std::atomic<std::size_t> done_{0};
};

}  // namespace mproc::detail
