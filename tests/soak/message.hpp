// soak/message.hpp — self-describing queue messages: who sent it, its seq, its length and a
// checksum of its payload, so that a receiver can tell a torn or forged message from a good one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace soak {

using Rng = std::mt19937_64;

inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// `n` bytes that depend on `seed` alone.
inline std::vector<std::uint8_t> make_bytes(std::uint64_t seed, std::size_t n) {
  std::vector<std::uint8_t> out(n);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = mix(seed + i);
    std::memcpy(out.data() + i, &w, 8);
  }
  const std::uint64_t tail = mix(seed + i);
  if (i < n) std::memcpy(out.data() + i, &tail, n - i);
  return out;
}

// A checksum of `bytes` that also depends on `seed`, so a payload moved to another message fails.
inline std::uint64_t checksum(std::uint64_t seed, const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = mix(seed ^ bytes.size());
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = mix(h ^ w);
  }
  std::uint64_t tail = 0;
  if (i < bytes.size()) std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  return mix(h ^ tail);
}

// Msg::flags: the decoder reads the header only and leaves the rest unread, as a codec that reads
// fewer bytes than it wrote would. The queue must refuse such a message with DecodeError and
// consume it (a small one and a streamed one alike), and its counts must stay exact.
inline constexpr std::uint32_t kShortDecode = 1;

// Where a consumer notes each message it starts to decode (see Msg::serialize).
struct Receipts {
  static constexpr std::uint32_t kMax = 32;
  struct Entry {
    std::atomic<std::uint32_t> producer;
    std::atomic<std::uint32_t> flags;
    std::atomic<std::uint64_t> seq;
  };
  std::atomic<std::uint32_t> count{0};
  Entry entries[kMax];
  std::atomic<std::uint32_t> overflow{0};
  void note(std::uint32_t producer, std::uint64_t seq, std::uint32_t flags) {
    const std::uint32_t n = count.load();
    if (n >= kMax) {
      overflow.store(1);
      return;
    }
    entries[n].producer.store(producer);
    entries[n].seq.store(seq);
    entries[n].flags.store(flags);
    count.store(n + 1);  // counted only once complete
  }
};

// The calling process's receipts (consumers only; null elsewhere).
inline Receipts* g_receipts = nullptr;

struct Msg {
  std::uint32_t producer = 0;
  std::uint32_t flags = 0;  // kShortDecode
  std::uint64_t seq = 0;
  std::uint64_t length = 0;  // payload.size() as sent
  std::uint64_t sum = 0;     // checksum(seed_of(producer, seq), payload)
  std::vector<std::uint8_t> payload;
  // While decoding, the header is noted in the consumer's receipts as soon as it is read: inside
  // get(), before the queue lets the message go (a small message is released after it decoded,
  // a streamed one after its first chunk, which holds the header). So a consumer killed anywhere
  // from there on leaves the exact (producer, seq) of every message it may have taken, and the
  // driver excuses exactly those if they never arrive (see Cast::ended).
  template <class Archive>
  void serialize(Archive& ar) {
    ar(producer, flags, seq);
    if constexpr (Archive::is_loading::value) {
      if (g_receipts) g_receipts->note(producer, seq, flags);
      if (flags & kShortDecode) return;
    }
    ar(length, sum, payload);
  }
};

inline std::uint64_t seed_of(std::uint32_t producer, std::uint64_t seq) {
  return mix((std::uint64_t{producer} << 56) ^ seq);
}

inline Msg make_msg(std::uint32_t producer, std::uint64_t seq, std::size_t size,
                    std::uint32_t flags = 0) {
  Msg m{producer, flags, seq, size, 0, make_bytes(seed_of(producer, seq), size)};
  m.sum = checksum(seed_of(producer, seq), m.payload);
  return m;
}

// True when the message is exactly what its header says it is.
inline bool intact(const Msg& m, std::uint32_t producers) {
  return m.producer < producers && m.flags == 0 && m.payload.size() == m.length &&
         checksum(seed_of(m.producer, m.seq), m.payload) == m.sum;
}

// A payload size for a queue whose ring holds `ring` bytes: mostly small, some near a quarter of
// the ring (where messages start to stream), a few up to 1.5 rings (streamed in many chunks).
inline std::size_t pick_size(Rng& rng, std::size_t ring) {
  const std::size_t quarter = ring / 4;
  const auto r = rng() % 100;
  if (r < 70) return 8 + rng() % 248;
  if (r < 92) return 256 + rng() % (quarter / 2);
  if (r < 98) return quarter / 2 + rng() % (quarter / 2 + quarter / 8);  // around a quarter
  return quarter + rng() % (5 * quarter);
}

}  // namespace soak
