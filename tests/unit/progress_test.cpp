// The progress bar: exact lines of format_progress (bar, percentage, times, rate units, narrow
// widths), and ProgressBar on a pipe (first draw at once, throttling, finish once, the
// destructor's draw, threads) and on a pseudo-terminal (on_stderr, the window's width).
//
// No test waits for a draw to happen by itself: a throttled update is checked right after a draw
// (well within 100 ms), and the one test that expects the throttle to lift sleeps 250 ms first.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mproc/detail/progress.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helpers/pty.hpp"

using namespace std::chrono_literals;
using mproc::detail::format_progress;
using mproc::detail::ProgressBar;
using mproc_test::Pty;
using mproc_test::StderrTo;

namespace {

constexpr auto kNone = std::nullopt;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::size_t count(const std::string& s, char c) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), c));
}

// A pipe whose read end does not block: drain() returns what was written since the last drain.
class Pipe {
 public:
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    r_ = fds[0];
    w_ = fds[1];
    ::fcntl(r_, F_SETFL, ::fcntl(r_, F_GETFL) | O_NONBLOCK);
  }
  ~Pipe() {
    ::close(r_);
    ::close(w_);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  int w() const { return w_; }
  std::string drain() const {
    std::string out;
    char b[4096];
    for (;;) {
      ssize_t n = ::read(r_, b, sizeof b);
      if (n > 0) {
        out.append(b, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        return out;  // EAGAIN: nothing more for now
      }
    }
  }

 private:
  int r_ = -1;
  int w_ = -1;
};

// ---- format_progress: known totals ----

TEST(FormatProgress, ZeroPercent) {
  // 9 + 26 columns of text leave 59 - 35 - 2 = 22 bar cells at width 60.
  EXPECT_EQ(format_progress("work", 0, 100, 0.0, 60),
            "work   0%|" + std::string(22, ' ') + "| 0/100 [00:00<?, 0.0 it/s]");
}

TEST(FormatProgress, FortyFivePercentLikeTqdm) {
  // 450 in 1.125 s: 400 it/s, 550 left: 1.375 s; 20 cells, 9 of them full.
  std::string line = format_progress("label", 450, 1000, 1.125, 68);
  EXPECT_EQ(line, "label  45%|#########           | 450/1000 [00:01<00:01, 400.0 it/s]");
  EXPECT_EQ(line.size(), 67u);
}

TEST(FormatProgress, HundredPercent) {
  EXPECT_EQ(format_progress("x", 1000, 1000, 2.0, 50),
            "x 100%|#####| 1000/1000 [00:02<00:00, 500.0 it/s]");
}

TEST(FormatProgress, DoneAboveTotalShowsAFullBarAndTheNumbersAsGiven) {
  EXPECT_EQ(format_progress("x", 15, 10, 1.0, 50),
            "x 100%|##########| 15/10 [00:01<00:00, 15.0 it/s]");
}

TEST(FormatProgress, TotalZeroIsComplete) {
  EXPECT_EQ(format_progress("e", 0, 0, 0.0, 40), "e 100%|#######| 0/0 [00:00<?, 0.0 it/s]");
}

TEST(FormatProgress, EmptyLabelIsLeftOutWithItsSpace) {
  // 45% of 6 cells: 2 full.
  EXPECT_EQ(format_progress("", 45, 100, 0.0, 40), " 45%|##    | 45/100 [00:00<?, 0.0 it/s]");
}

TEST(FormatProgress, PercentIsRoundedDown) {
  // 29/100 is not exact in binary floating point; the percentage must still say 29.
  EXPECT_EQ(format_progress("", 29, 100, 0.0, 33), " 29% 29/100 [00:00<?, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 999, 1000, 0.0, 34), " 99% 999/1000 [00:00<?, 0.0 it/s]");
}

TEST(FormatProgress, HugeCountsDoNotOverflow) {
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  std::string line = format_progress("", kMax - 1, kMax, 1.0, 200);
  EXPECT_NE(line.find(" 99%|"), std::string::npos) << line;
  EXPECT_NE(line.find("| 18446744073709551614/18446744073709551615 [00:01<00:00, "),
            std::string::npos)
      << line;
  EXPECT_EQ(line.size(), 199u);
  EXPECT_TRUE(ends_with(line, "M it/s]")) << line;
}

// ---- format_progress: unknown totals ----

TEST(FormatProgress, UnknownTotal) {
  EXPECT_EQ(format_progress("label", 450, kNone, 1.125, 80), "label 450 it [00:01, 400.0 it/s]");
  EXPECT_EQ(format_progress("", 450, kNone, 1.125, 80), "450 it [00:01, 400.0 it/s]");
}

TEST(FormatProgress, NegativeOrNaNElapsedCountsAsZero) {
  EXPECT_EQ(format_progress("", 5, kNone, -1.0, 80), "5 it [00:00, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 5, kNone, std::nan(""), 80), "5 it [00:00, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 5, 10, -3.0, 30), " 50% 5/10 [00:00<?, 0.0 it/s]");
}

// ---- times ----

TEST(FormatProgress, ElapsedTimes) {
  EXPECT_EQ(format_progress("", 0, kNone, 59.0, 80), "0 it [00:59, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 0, kNone, 59.99, 80), "0 it [00:59, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 0, kNone, 61.0, 80), "0 it [01:01, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 0, kNone, 3599.5, 80), "0 it [59:59, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 0, kNone, 3661.0, 80), "0 it [1:01:01, 0.0 it/s]");
  EXPECT_EQ(format_progress("", 0, kNone, 36000.0, 80), "0 it [10:00:00, 0.0 it/s]");
}

TEST(FormatProgress, RemainingTimes) {
  // 1 it/s: 50 left take 50 s; 3661 left take 1:01:01.
  EXPECT_TRUE(
      ends_with(format_progress("", 50, 100, 50.0, 80), "| 50/100 [00:50<00:50, 1.0 it/s]"));
  EXPECT_TRUE(
      ends_with(format_progress("", 1, 3662, 1.0, 80), "| 1/3662 [00:01<1:01:01, 1.0 it/s]"));
  // A rate of 0 after some time: the time left is unknown.
  EXPECT_TRUE(ends_with(format_progress("", 0, 10, 5.0, 80), "| 0/10 [00:05<?, 0.0 it/s]"));
}

// ---- rates ----

TEST(FormatProgress, RateUnits) {
  EXPECT_EQ(format_progress("", 1, kNone, 3.0, 80), "1 it [00:03, 0.3 it/s]");
  EXPECT_EQ(format_progress("", 999, kNone, 1.0, 80), "999 it [00:01, 999.0 it/s]");
  EXPECT_EQ(format_progress("", 1000, kNone, 1.0, 80), "1000 it [00:01, 1.0k it/s]");
  EXPECT_EQ(format_progress("", 12345, kNone, 1.0, 80), "12345 it [00:01, 12.3k it/s]");
  EXPECT_EQ(format_progress("", 999949, kNone, 1.0, 80), "999949 it [00:01, 999.9k it/s]");
  EXPECT_EQ(format_progress("", 2500000, kNone, 1.0, 80), "2500000 it [00:01, 2.5M it/s]");
}

TEST(FormatProgress, RateUnitFollowsTheRoundedValue) {
  // 999.97 it/s would print as "1000.0"; 999.999k as "1000.0k".
  EXPECT_EQ(format_progress("", 99997, kNone, 100.0, 80), "99997 it [01:40, 1.0k it/s]");
  EXPECT_EQ(format_progress("", 999999, kNone, 1.0, 80), "999999 it [00:01, 1.0M it/s]");
}

// ---- narrow widths ----

TEST(FormatProgress, NarrowWidthDropsTheBarFirst) {
  const std::string no_bar = "label  45% 450/1000 [00:01<00:01, 400.0 it/s]";  // 45 columns
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 46), no_bar);
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 47), no_bar);
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 48), no_bar);
  // Three columns more: a one-cell bar, empty at 45%.
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 49),
            "label  45%| | 450/1000 [00:01<00:01, 400.0 it/s]");
}

TEST(FormatProgress, NarrowerStillDropsTheLabelThenCuts) {
  // Without the label (39 columns of text), 44 columns leave room for a 3-cell bar again.
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 45),
            " 45%|#  | 450/1000 [00:01<00:01, 400.0 it/s]");
  const std::string bare = " 45% 450/1000 [00:01<00:01, 400.0 it/s]";
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 42), bare);
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 41), bare);
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 40), bare);
  // Then the end is cut.
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 39),
            " 45% 450/1000 [00:01<00:01, 400.0 it/s");
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 6), " 45% ");
  EXPECT_EQ(format_progress("label", 450, kNone, 1.125, 20), "450 it [00:01, 400.");
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 1), "");
  EXPECT_EQ(format_progress("label", 450, 1000, 1.125, 0), "");
}

TEST(FormatProgress, ALabelWiderThanTheLineGivesWayToTheBar) {
  // Without the label, 39 columns of text leave 79 - 39 - 2 = 38 cells: 17 full at 45%.
  EXPECT_EQ(format_progress(std::string(100, 'L'), 450, 1000, 1.125, 80),
            " 45%|" + std::string(17, '#') + std::string(21, ' ') +
                "| 450/1000 [00:01<00:01, 400.0 it/s]");
}

TEST(FormatProgress, NeverExceedsWidthMinusOne) {
  struct Case {
    std::string label;
    std::size_t done;
    std::optional<std::size_t> total;
    double elapsed;
  };
  const std::vector<Case> cases = {
      {"label", 450, 1000, 1.125},       {"", 0, 100, 0.0},
      {"a longer label", 7, kNone, 3.5}, {"x", 123456789, 1000, 7200.0},
      {std::string(90, 'L'), 1, 2, 1e9}, {"", std::numeric_limits<std::size_t>::max(), kNone, 1e-9},
  };
  for (const auto& c : cases) {
    for (std::size_t width = 0; width <= 130; ++width) {
      std::string line = format_progress(c.label, c.done, c.total, c.elapsed, width);
      EXPECT_LE(line.size(), width == 0 ? 0 : width - 1) << "width " << width << ": " << line;
      EXPECT_EQ(line.find_first_of("\r\n"), std::string::npos);
      // With a known total, a line that has its bar fills the width exactly.
      if (c.total && line.find('|') != std::string::npos) {
        EXPECT_EQ(line.size(), width - 1);
      }
    }
  }
}

// ---- ProgressBar on a pipe ----

TEST(ProgressBar, FirstUpdateDrawsAtOnce) {
  Pipe p;
  ProgressBar bar(p.w(), "job", 60);
  bar.update(1, 10);
  std::string s = p.drain();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0], '\r');
  EXPECT_EQ(s.rfind('\r'), 0u);
  EXPECT_EQ(s.compare(1, 10, "job  10%|#"), 0) << s;
  EXPECT_NE(s.find("| 1/10 [00:00<"), std::string::npos) << s;
  EXPECT_EQ(count(s, '\n'), 0u);
  EXPECT_EQ(s.size(), 60u);  // "\r" and 59 columns: the bar fills the width
  bar.finish(10, 10);
}

TEST(ProgressBar, UpdatesWithin100msAreThrottled) {
  Pipe p;
  ProgressBar bar(p.w(), "job", 60);
  bar.update(1, 10);
  EXPECT_NE(p.drain().find("1/10"), std::string::npos);
  bar.update(2, 10);  // right after a draw
  bar.update(3, 10);
  EXPECT_EQ(p.drain(), "");
  bar.finish(10, 10);
}

TEST(ProgressBar, ThrottleLiftsAfter100ms) {
  Pipe p;
  ProgressBar bar(p.w(), "job", 60);
  bar.update(1, 10);
  p.drain();
  bar.update(2, 10);
  EXPECT_EQ(p.drain(), "");
  std::this_thread::sleep_for(250ms);
  bar.update(3, 10);
  std::string s = p.drain();
  EXPECT_EQ(s.rfind('\r'), 0u) << s;
  EXPECT_NE(s.find("| 3/10 ["), std::string::npos) << s;
  bar.finish(10, 10);
}

TEST(ProgressBar, FinishDrawsOnceAndEndsTheLine) {
  Pipe p;
  ProgressBar bar(p.w(), "job", 60);
  bar.update(1, 10);
  p.drain();
  bar.update(5, 10);  // throttled, then finish draws anyway
  bar.finish(10, 10);
  std::string s = p.drain();
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s[0], '\r');
  EXPECT_EQ(count(s, '\r'), 1u);
  EXPECT_EQ(count(s, '\n'), 1u);
  EXPECT_EQ(s.back(), '\n');
  EXPECT_EQ(s.compare(1, 10, "job 100%|#"), 0) << s;
  EXPECT_NE(s.find("| 10/10 [00:00<00:00, "), std::string::npos) << s;
  EXPECT_EQ(s.size(), 61u);

  bar.finish(10, 10);
  bar.finish(11, 12);
  bar.update(12, 12);
  EXPECT_EQ(p.drain(), "");
}

TEST(ProgressBar, FinishWithoutUpdateDraws) {
  Pipe p;
  ProgressBar bar(p.w(), "", 60);
  bar.finish(0, kNone);
  EXPECT_EQ(p.drain(), "\r0 it [00:00, 0.0 it/s]\n");
}

TEST(ProgressBar, DestructorFinishesWithTheLastCounts) {
  Pipe p;
  {
    ProgressBar bar(p.w(), "d", 60);
    bar.update(7, 10);
    EXPECT_NE(p.drain().find("| 7/10 ["), std::string::npos);
    bar.update(8, 10);  // throttled: only recorded
    EXPECT_EQ(p.drain(), "");
  }
  std::string s = p.drain();
  EXPECT_EQ(count(s, '\n'), 1u);
  EXPECT_TRUE(ends_with(s, "]\n")) << s;
  EXPECT_EQ(s.compare(0, 7, "\rd  80%"), 0) << s;
  EXPECT_NE(s.find("| 8/10 ["), std::string::npos) << s;
}

TEST(ProgressBar, DestructorWithoutUpdateDrawsZero) {
  Pipe p;
  { ProgressBar bar(p.w(), "", 60); }
  EXPECT_EQ(p.drain(), "\r0 it [00:00, 0.0 it/s]\n");
}

TEST(ProgressBar, DestructorAfterFinishDrawsNothing) {
  Pipe p;
  {
    ProgressBar bar(p.w(), "", 60);
    bar.finish(3, kNone);
    EXPECT_TRUE(ends_with(p.drain(), "]\n"));
  }
  EXPECT_EQ(p.drain(), "");
}

TEST(ProgressBar, AShorterLineBlanksTheRestOfTheLongerOne) {
  Pipe p;
  ProgressBar bar(p.w(), "", 60);
  bar.update(123456789, kNone);
  std::string first = p.drain();
  ASSERT_GT(first.size(), 1u);
  std::string line1 = first.substr(1);
  bar.finish(1, kNone);
  std::string s = p.drain();
  ASSERT_GE(s.size(), 2u);
  EXPECT_EQ(s[0], '\r');
  EXPECT_EQ(s.back(), '\n');
  std::string line2 = s.substr(1, s.size() - 2);
  std::size_t visible = line2.rfind(']') + 1;
  EXPECT_EQ(line2.compare(0, 6, "1 it ["), 0) << line2;
  EXPECT_EQ(line2.size(), std::max(visible, line1.size())) << line2;
  EXPECT_EQ(line2.find_first_not_of(' ', visible), std::string::npos) << line2;
  EXPECT_GT(line1.size(), visible);  // "123456789 it" vs "1 it": the padding did happen
}

TEST(ProgressBar, WidthZeroOnAPipeIs80Columns) {
  Pipe p;
  ProgressBar bar(p.w(), "w", 0);
  bar.update(1, 2);
  std::string s = p.drain();
  EXPECT_EQ(s.size(), 80u) << s;
  EXPECT_EQ(s.compare(0, 9, "\rw  50%|#"), 0) << s;
  bar.finish(2, 2);
}

TEST(ProgressBar, UpdateFromAnotherThreadWhileFinishing) {
  Pipe p;
  ProgressBar bar(p.w(), "t", 60);
  std::atomic<std::size_t> n{0};
  std::atomic<bool> stop{false};
  std::thread updater([&] {
    while (!stop.load()) bar.update(n.fetch_add(1) + 1, kNone);
  });
  while (n.load() < 1000) std::this_thread::yield();
  bar.finish(42, kNone);
  std::size_t after = n.load();
  while (n.load() < after + 1000) std::this_thread::yield();
  stop = true;
  updater.join();
  std::string s = p.drain();
  EXPECT_EQ(count(s, '\n'), 1u);
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.back(), '\n');
  std::string last = s.substr(s.rfind('\r'));
  EXPECT_EQ(last.compare(0, 8, "\rt 42 it"), 0) << last;
}

// ---- stderr and terminals ----

TEST(ProgressBar, OnStderrIsNullWhenStderrIsAPipe) {
  Pipe p;
  std::unique_ptr<ProgressBar> bar;
  {
    StderrTo redirect(p.w());
    bar = ProgressBar::on_stderr("x");
  }
  EXPECT_EQ(bar.get(), nullptr);
  EXPECT_EQ(p.drain(), "");
}

TEST(ProgressBar, OnStderrIsNullWhenStderrIsDevNull) {
  int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(null, 0);
  std::unique_ptr<ProgressBar> bar;
  {
    StderrTo redirect(null);
    bar = ProgressBar::on_stderr("x");
  }
  ::close(null);
  EXPECT_EQ(bar.get(), nullptr);
}

TEST(ProgressBar, OnStderrDrawsOnATerminalAtItsWidth) {
  Pty pty;
  if (!pty.ok()) GTEST_SKIP() << "no pseudo-terminal here";
  pty.set_columns(50);
  std::unique_ptr<ProgressBar> bar;
  {
    StderrTo redirect(pty.slave());
    bar = ProgressBar::on_stderr("tty");
    if (bar) bar->finish(2, 2);
  }
  ASSERT_NE(bar.get(), nullptr);
  std::string s = pty.read_line();
  ASSERT_GE(s.size(), 2u);
  EXPECT_EQ(s[0], '\r');
  EXPECT_EQ(s.back(), '\n');
  EXPECT_EQ(s.size(), 1 + 49 + 1u) << s;
  EXPECT_EQ(s.compare(0, 10, "\rtty 100%|"), 0) << s;
  EXPECT_NE(s.find("#| 2/2 ["), std::string::npos) << s;
}

TEST(ProgressBar, FollowsTheTerminalsWidthAtEachDraw) {
  Pty pty;
  if (!pty.ok()) GTEST_SKIP() << "no pseudo-terminal here";
  pty.set_columns(70);
  ProgressBar bar(pty.slave(), "r", 0);
  bar.update(1, 4);
  pty.set_columns(45);
  bar.finish(4, 4);
  std::string s = pty.read_line();
  ASSERT_EQ(count(s, '\r'), 2u) << s;
  std::size_t second = s.find('\r', 1);
  EXPECT_EQ(second, 1 + 69u) << s;                 // the first line filled 69 columns
  EXPECT_EQ(s.size() - second, 1 + 44 + 1u) << s;  // the last one 44, and no blanking beyond
  EXPECT_EQ(s.compare(second, 8, "\rr 100%|"), 0) << s;
}

}  // namespace
