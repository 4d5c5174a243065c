// The progress bar of Pool::map and Pool::imap (see mproc/detail/progress.hpp).
//
// Lines are built with std::to_chars (no locale: the decimal point is always '.') into one string
// that ProgressBar keeps between draws, so that a draw allocates only while lines grow. Its system
// calls (isatty, TIOCGWINSZ, write) go through src/posix.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/progress.hpp>
#include <string>

#include "posix/fd_io.hpp"

namespace mproc::detail {

namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr std::size_t kDefaultWidth = 80;
// Larger rates (a draw a few nanoseconds after the start) print as this one, so that the rate
// keeps a bounded number of digits.
constexpr double kMaxRate = 1e15;
// Times are shown up to this many seconds (about 31,700 years).
constexpr double kMaxSeconds = 1e12;

void append_uint(std::string& out, std::uint64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  out.append(b, r.ptr);
}

// `v` with one decimal; v is finite and below 1e16 (the buffer fits 17 digits, '.', 1 digit).
void append_fixed1(std::string& out, double v) {
  char b[32];
  auto r = std::to_chars(b, b + sizeof b, v, std::chars_format::fixed, 1);
  if (r.ec == std::errc{}) out.append(b, r.ptr);
}

void append_2digits(std::string& out, std::uint64_t v) {
  out += static_cast<char>('0' + v / 10);
  out += static_cast<char>('0' + v % 10);
}

// MM:SS, or H:MM:SS from one hour on; seconds rounded down.
void append_time(std::string& out, double seconds) {
  if (!(seconds > 0)) seconds = 0;  // negative and NaN
  auto s = static_cast<std::uint64_t>(std::min(seconds, kMaxSeconds));
  std::uint64_t h = s / 3600;
  if (h > 0) {
    append_uint(out, h);
    out += ':';
  }
  append_2digits(out, s / 60 % 60);
  out += ':';
  append_2digits(out, s % 60);
}

// "400.0 it/s", "12.3k it/s", "2.5M it/s". The unit is chosen on the rounded value, so that 999.97
// shows as "1.0k", not "1000.0".
void append_rate(std::string& out, double rate) {
  if (rate < 999.95) {
    append_fixed1(out, rate);
  } else if (rate < 999.95e3) {
    append_fixed1(out, rate / 1e3);
    out += 'k';
  } else {
    append_fixed1(out, rate / 1e6);
    out += 'M';
  }
  out += " it/s";
}

// floor(min(done, total) * n / total), without overflow; n for total 0.
std::size_t scaled(std::size_t done, std::size_t total, std::size_t n) {
  if (total == 0 || done >= total) return n;
  if (n == 0) return 0;
  if (total <= SIZE_MAX / n) return done * n / total;  // exact: done * n < total * n
  // Totals beyond 2^64 / n: close enough.
  auto r = static_cast<long double>(done) / static_cast<long double>(total) *
           static_cast<long double>(n);
  return std::min(static_cast<std::size_t>(r), n);
}

// Appends the line of format_progress to `out` (what `out` holds already stays).
void append_progress(std::string& out, std::string_view label, std::size_t done,
                     std::optional<std::size_t> total, double elapsed, std::size_t width) {
  const std::size_t base = out.size();
  if (width <= 1) return;
  const std::size_t limit = width - 1;
  if (!(elapsed > 0)) elapsed = 0;  // negative and NaN
  double rate = elapsed > 0 ? std::min(static_cast<double>(done) / elapsed, kMaxRate) : 0;

  // The line without its bar; returns where the bar goes (npos: no bar, unknown total).
  auto build = [&](bool with_label) {
    out.resize(base);
    if (with_label && !label.empty()) {
      out += label;
      out += ' ';
    }
    if (!total) {
      append_uint(out, done);
      out += " it [";
      append_time(out, elapsed);
      out += ", ";
      append_rate(out, rate);
      out += ']';
      return std::string::npos;
    }
    std::size_t pct = scaled(done, *total, 100);
    if (pct < 100) out += ' ';
    if (pct < 10) out += ' ';
    append_uint(out, pct);
    out += '%';
    std::size_t bar_at = out.size();
    out += ' ';
    append_uint(out, done);
    out += '/';
    append_uint(out, *total);
    out += " [";
    append_time(out, elapsed);
    out += '<';
    if (rate > 0) {
      std::size_t left = done < *total ? *total - done : 0;
      append_time(out, static_cast<double>(left) / rate);
    } else {
      out += '?';
    }
    out += ", ";
    append_rate(out, rate);
    out += ']';
    return bar_at;
  };

  std::size_t bar_at = build(true);
  if (out.size() - base > limit && !label.empty()) bar_at = build(false);
  // The bar replaces the space after the percentage with "|###   | ": 2 columns more than its
  // cells, of which there must be one at least.
  if (bar_at != std::string::npos && out.size() - base + 3 <= limit) {
    std::size_t cells = limit - (out.size() - base) - 2;
    std::size_t full = scaled(done, *total, cells);
    out.insert(bar_at, cells + 2, ' ');
    out[bar_at] = '|';
    std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(bar_at + 1), full, '#');
    out[bar_at + cells + 1] = '|';
  }
  if (out.size() - base > limit) out.resize(base + limit);
}

constexpr int kStderr = 2;

std::size_t terminal_width(int fd) noexcept {
  std::size_t columns = 0;
  return terminal_columns(fd, columns) ? columns : kDefaultWidth;
}

}  // namespace

std::string format_progress(std::string_view label, std::size_t done,
                            std::optional<std::size_t> total, double elapsed, std::size_t width) {
  std::string out;
  append_progress(out, label, done, total, elapsed, width);
  return out;
}

ProgressBar::ProgressBar(int fd, std::string label, std::size_t width)
    : fd_(fd), width_(width), label_(std::move(label)), start_(Clock::now()) {}

std::unique_ptr<ProgressBar> ProgressBar::on_stderr(std::string label) {
  if (!is_terminal(kStderr)) return nullptr;
  return std::make_unique<ProgressBar>(kStderr, std::move(label));
}

ProgressBar::~ProgressBar() {
  std::size_t done = 0;
  std::optional<std::size_t> total;
  {
    std::lock_guard lk(mu_);
    if (finished_) return;
    done = done_;
    total = total_;
  }
  finish(done, total);
}

void ProgressBar::update(std::size_t done, std::optional<std::size_t> total) noexcept {
  try {
    std::lock_guard lk(mu_);
    if (finished_) return;
    done_ = done;
    total_ = total;
    auto now = Clock::now();
    if (drawn_ && now - last_draw_ < kRedrawInterval) return;
    draw(now, false);
  } catch (...) {
    // Out of memory while building the line: skip this draw.
  }
}

void ProgressBar::finish(std::size_t done, std::optional<std::size_t> total) noexcept {
  try {
    std::lock_guard lk(mu_);
    if (finished_) return;
    finished_ = true;
    done_ = done;
    total_ = total;
    draw(Clock::now(), true);
  } catch (...) {
    // Out of memory while building the line: the bar ends without its last draw.
  }
}

void ProgressBar::draw(Clock::time_point now, bool last) {
  std::size_t width = width_ != 0 ? width_ : terminal_width(fd_);
  double elapsed = std::chrono::duration<double>(now - start_).count();
  buf_.assign(1, '\r');
  append_progress(buf_, label_, done_, total_, elapsed, width);
  std::size_t len = buf_.size() - 1;
  // Blank the rest of a longer previous line, within the current width (after the window
  // shrank, the terminal has rewrapped the old line anyway).
  std::size_t cover = std::min(last_len_, width > 0 ? width - 1 : 0);
  if (len < cover) buf_.append(cover - len, ' ');
  if (last) buf_ += '\n';
  last_len_ = len;
  last_draw_ = now;
  drawn_ = true;
  // Errors are ignored: a closed terminal does not stop the program (see the header).
  (void)write_all(fd_, buf_.data(), buf_.size());
}

Ref<ProgressTracker> ProgressTracker::make(const Callback& cb, bool bar,
                                           std::optional<std::size_t> total) {
  std::unique_ptr<ProgressBar> b = bar ? ProgressBar::on_stderr("") : nullptr;
  if (!cb && !b) return nullptr;
  return make_ref<ProgressTracker>(cb, std::move(b), total);
}

Ref<ProgressTracker> make_progress(const ProgressFn& cb, bool bar,
                                   std::optional<std::size_t> total) {
  return ProgressTracker::make(cb, bar, total);
}

void finish_progress(ProgressTracker* progress) noexcept {
  if (progress != nullptr) progress->finish();
}

ProgressTracker::ProgressTracker(Callback cb, std::unique_ptr<ProgressBar> bar,
                                 std::optional<std::size_t> total)
    : cb_(std::move(cb)), bar_(std::move(bar)), total_(total) {}

ProgressTracker::~ProgressTracker() { finish(); }

void ProgressTracker::add(std::size_t items) noexcept {
  const std::size_t done = done_.fetch_add(items, std::memory_order_relaxed) + items;
  if (cb_) {
    try {
      cb_(done, total_);
    } catch (...) {
      // A progress callback's exception is dropped (documented at MapOptions::progress).
    }
  }
  if (bar_) bar_->update(done, total_);
}

void ProgressTracker::finish() noexcept {
  if (bar_) bar_->finish(done_.load(std::memory_order_relaxed), total_);
}

}  // namespace mproc::detail
