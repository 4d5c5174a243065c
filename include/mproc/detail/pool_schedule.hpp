// mproc/detail/pool_schedule.hpp — how map and imap cut their input into chunks, and how many
// chunks an imap keeps in flight: the policy, as non-template code (src/pool_schedule.cpp) that
// takes measurements and returns decisions. The templates in mproc/pool.hpp keep only the
// mechanics (reading the input, encoding, submitting, handing out results).
//
// No stability promise. The reasons for each number are in docs/design.md ("Pool", "Adaptive
// chunks").
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/export.hpp>
#include <optional>

namespace mproc::detail {

// The one rule that ends a chunk of map or imap: a chunk holds at most `elements` elements, and
// ends before the element whose encoded size would bring its elements' encoded sizes past `bytes`
// (an element alone larger than `bytes` is a chunk of its own). So a chunk is encoded once,
// straight from the input, and never split afterwards.
struct ChunkLimit {
  std::size_t elements = 1;
  std::size_t bytes = 0;

  // True when a chunk of `count` elements takes no more.
  [[nodiscard]] bool full(std::size_t count) const noexcept { return count >= elements; }
  // Whether the next element (encoded in `size` bytes) fits in a chunk, not full, that holds
  // `count` elements of `sum` encoded bytes so far; false: it begins the next chunk.
  [[nodiscard]] bool fits(std::size_t count, std::size_t sum, std::size_t size) const noexcept {
    return count == 0 || sum + size <= bytes;
  }
  // The elements of a chunk whose elements are all encoded in `size` bytes (trivially copyable
  // types): the same rule without looking at each element.
  [[nodiscard]] std::size_t uniform(std::size_t size) const noexcept {
    const std::size_t fit = size == 0 ? elements : bytes / size;
    return fit == 0 ? 1 : (fit < elements ? fit : elements);
  }
};

// The limit of a chunk of `elements` elements: a chunksize the caller gave (`fixed`) keeps its
// elements but ends before a mailbox message (`max_task_bytes`) is full; an automatic one also
// ends before the encoded size an automatic chunk aims at (PoolCore::chunk_bytes(), 64 KiB).
MPROC_API ChunkLimit chunk_limit(std::size_t elements, bool fixed,
                                 std::size_t max_task_bytes) noexcept;

// map's automatic chunksize for `n` elements over `workers` workers: ceil(n / (4 * workers)) as in
// Python (at least 1). imap applies it to what is left of an input of known size.
MPROC_API std::size_t share_chunksize(std::size_t n, std::size_t workers) noexcept;

// The scheduling policy of one imap/imap_unordered: the size of each chunk and the window (chunks
// submitted and not yet consumed). Lives with the IMapResult on its consumer thread: not
// thread-safe.
//
// Measurements: submitted() after each chunk (its elements and their encoded bytes); the mean time
// of an element in the workers and the chunks consumed so far are passed to the decisions.
// Decisions: next_chunk() (adaptive: about 1 ms of work, at most twice the last chunk, 8192
// elements and 64 KiB of encoded elements; a tail share for inputs of known size) and window_now()
// (opens gradually: 2 chunks per worker at first, 2 more for each chunk consumed, up to window()).
class MPROC_API ImapSchedule {
 public:
  // `chunksize` 0: adaptive. `max_in_flight` 0: the automatic window. `total`: the input's size,
  // when known. `max_task_bytes`: a mailbox message (PoolCore::max_task_bytes()).
  ImapSchedule(std::size_t workers, std::size_t chunksize, std::size_t max_in_flight,
               std::optional<std::size_t> total, std::size_t max_task_bytes) noexcept;

  // The limit of the next chunk, given the mean time of one element in a worker so far in
  // nanoseconds (empty before any chunk succeeded).
  [[nodiscard]] ChunkLimit next_chunk(std::optional<double> ns_per_element) const noexcept;
  // Chunks that may be in flight at once once the window is open: the given max_in_flight, or 64
  // elements per worker while chunks are small and never fewer than 4 chunks per worker.
  [[nodiscard]] std::size_t window() const noexcept;
  // Chunks that may be in flight now, `taken` chunks having been consumed.
  [[nodiscard]] std::size_t window_now(std::uint64_t taken) const noexcept;
  // True when chunks are sized by measurement (chunksize 0): only then does next_chunk() need the
  // time per element (a fixed chunksize spares the consumer asking the result thread's state).
  [[nodiscard]] bool adaptive() const noexcept { return chunksize_ == 0; }
  // Elements in the chunk submitted last (0 before the first).
  [[nodiscard]] std::size_t last_chunk() const noexcept { return last_chunk_; }

  // A chunk of `elements` (at least 1) whose encoded sizes add up to `bytes` was submitted.
  void submitted(std::size_t elements, std::size_t bytes) noexcept;

 private:
  std::size_t workers_;
  std::size_t chunksize_;                 // 0: adaptive
  std::size_t fixed_window_;              // 0: automatic
  std::optional<std::size_t> remaining_;  // elements not submitted yet, for sized inputs
  std::size_t max_task_bytes_;
  std::size_t last_chunk_ = 0;
  std::size_t bytes_per_element_ = 0;
};

}  // namespace mproc::detail
