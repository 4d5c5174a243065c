// How map and imap cut their input into chunks and how many an imap keeps in flight (see
// mproc/detail/pool_schedule.hpp; the measurements behind each number are in docs/design.md,
// "Adaptive chunks").
#include <algorithm>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/pool_schedule.hpp>

namespace mproc::detail {

namespace {

// Adaptive chunks aim at this much work per chunk in a worker (per-chunk costs are 1-2 us: 0.2 %),
// and hold at most kMaxChunk elements (which bounds the memory in flight: see window()).
constexpr double kTargetChunkNs = 1e6;
constexpr std::size_t kMaxChunk = 8192;
// The automatic window: this many elements per worker in flight while chunks are small (measured
// with one element per chunk on 2 workers: 4 per worker gave 11-14 us per element, 16 gave about
// 4 us, 64 about 1.7 us), and never fewer than this many chunks per worker.
constexpr std::size_t kWindowElementsPerWorker = 64;
constexpr std::size_t kMinWindowPerWorker = 4;
// The window opens gradually: this many chunks per worker at first, this many more per chunk
// consumed (filling a whole window before the first wait delayed the first result: 128
// submissions took about 100 us on 2 workers).
constexpr std::size_t kFirstWindowPerWorker = 2;
constexpr std::size_t kWindowGrowthPerTaken = 2;

}  // namespace

ChunkLimit chunk_limit(std::size_t elements, bool fixed, std::size_t max_task_bytes) noexcept {
  return ChunkLimit{.elements = std::max<std::size_t>(elements, 1),
                    .bytes = fixed ? max_task_bytes : PoolCore::chunk_bytes()};
}

std::size_t share_chunksize(std::size_t n, std::size_t workers) noexcept {
  const std::size_t parts = 4 * std::max<std::size_t>(workers, 1);
  return std::max<std::size_t>(n / parts + (n % parts != 0 ? 1 : 0), 1);
}

ImapSchedule::ImapSchedule(std::size_t workers, std::size_t chunksize, std::size_t max_in_flight,
                           std::optional<std::size_t> total, std::size_t max_task_bytes) noexcept
    : workers_(std::max<std::size_t>(workers, 1)),
      chunksize_(chunksize),
      fixed_window_(max_in_flight),
      remaining_(total),
      max_task_bytes_(max_task_bytes) {}

ChunkLimit ImapSchedule::next_chunk(std::optional<double> ns_per_element) const noexcept {
  if (chunksize_ != 0) return chunk_limit(chunksize_, true, max_task_bytes_);
  std::size_t size = 1;
  if (ns_per_element) {
    const double want = kTargetChunkNs / std::max(*ns_per_element, 1.0);
    const double grown = 2.0 * static_cast<double>(std::max<std::size_t>(last_chunk_, 1));
    size = static_cast<std::size_t>(
        std::clamp(want, 1.0, std::min(grown, static_cast<double>(kMaxChunk))));
  }
  // Keep a chunk's encoded elements inside the byte budget (the limit's `bytes` enforces it
  // exactly as the elements are read).
  if (bytes_per_element_ > 0)
    size = std::min(size, std::max<std::size_t>(1, PoolCore::chunk_bytes() / bytes_per_element_));
  if (remaining_) size = std::min(size, share_chunksize(*remaining_, workers_));
  return chunk_limit(size, false, max_task_bytes_);
}

std::size_t ImapSchedule::window() const noexcept {
  if (fixed_window_ != 0) return fixed_window_;
  return std::max(kMinWindowPerWorker * workers_,
                  kWindowElementsPerWorker * workers_ / std::max<std::size_t>(last_chunk_, 1));
}

std::size_t ImapSchedule::window_now(std::uint64_t taken) const noexcept {
  const std::uint64_t open =
      kFirstWindowPerWorker * workers_ + kWindowGrowthPerTaken * taken;  // no wrap: taken < 2^62
  return static_cast<std::size_t>(std::min<std::uint64_t>(window(), open));
}

void ImapSchedule::submitted(std::size_t elements, std::size_t bytes) noexcept {
  if (elements == 0) return;
  if (remaining_) *remaining_ -= std::min(*remaining_, elements);
  last_chunk_ = elements;
  bytes_per_element_ = std::max<std::size_t>(bytes / elements, 1);
}

}  // namespace mproc::detail
