// A queue's shared region written by a buggy or hostile process: header fields (constants,
// indices, counts, journals, flags), record headers with any kind and length, garbage over the
// ring. Whatever was written, a process using the queue afterwards never crashes, never reads or
// writes outside the ring, never waits past its deadline (while no live producer holds a stream
// open) and the queue never allocates for a length it read: it gets its messages, a timeout, or
// mproc::Error "mproc::Queue: corrupt ring: ...". Each victim runs in a forked child whose exit
// status is checked, with a watchdog.
//
// The robust mutexes in the region are left alone: their words belong to glibc, and a forged lock
// word makes the lock look held by a live thread, which only stalls the callers whose deadline
// allows it (as a live holder would).
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mproc/detail/queue_core.hpp>
#include <mproc/errors.hpp>
#include <mproc/queue.hpp>  // QueueOptions
#include <random>
#include <string>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/queue_access.hpp"
#include "helpers/shared_page.hpp"
#include "queue_shared.hpp"

using namespace std::chrono_literals;
using mproc::QueueOptions;
using mproc::detail::Clock;
using mproc::detail::EncodeJob;
using mproc::detail::Expiry;
using mproc::detail::QueueCore;
using mproc::detail::QueueCoreTestAccess;
using mproc::detail::QueueShared;
using mproc::detail::RecordHeader;
using mproc_test::Child;
using mproc_test::SharedPage;

namespace {

using Bytes = std::vector<unsigned char>;
constexpr std::size_t kCap = 64 * 1024;  // max_record 16 KiB, chunk 8 KiB - 8
constexpr std::string_view kCorrupt = "mproc::Queue: corrupt ring: ";

void encode_bytes(mproc::Writer& w, const void* obj) {
  const auto& b = *static_cast<const Bytes*>(obj);
  w.write(b.data(), b.size());
}

// Reads a message in 4 KiB pieces and keeps only its size and a checksum: it never allocates for
// the length the ring announces.
struct Digest {
  std::size_t size = 0;
  std::uint64_t sum = 0;
};
void decode_digest(mproc::Reader& r, void* out) {
  auto& d = *static_cast<Digest*>(out);
  d = Digest{};
  unsigned char piece[4096];
  while (r.remaining() > 0) {
    std::size_t n = r.remaining() < sizeof piece ? r.remaining() : sizeof piece;
    r.read(piece, n);
    for (std::size_t i = 0; i < n; ++i) d.sum = d.sum * 31 + piece[i];
    d.size += n;
  }
}

Bytes pattern(std::uint32_t tag, std::size_t size) {
  Bytes b(size);
  std::uint32_t x = tag * 2654435761u + 1;
  for (auto& c : b) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<unsigned char>(x);
  }
  return b;
}

bool put(QueueCore& q, const Bytes& b, const Expiry& d) {
  return q.put(EncodeJob{b.size(), &encode_bytes, &b}, d);
}

Expiry in(std::chrono::milliseconds ms) { return Clock::now() + ms; }

// Fills a queue the way traffic does: positions far from zero, padding at the end of the ring, and
// small and streamed (3 chunks, all in the ring) messages waiting.
void seed(QueueCore& q, std::mt19937_64& rng) {
  const int cycles = static_cast<int>(rng() % 40);
  Digest d;
  for (int i = 0; i < cycles; ++i) {
    if (!put(q, pattern(i, 100 + rng() % 3000), Clock::now())) break;
    (void)q.get(&decode_digest, &d, Clock::now());
  }
  (void)put(q, pattern(1, 10), Clock::now());
  (void)put(q, pattern(2, 20 * 1024), Clock::now());  // streamed
  (void)put(q, pattern(3, 5000), Clock::now());
  (void)put(q, pattern(4, 0), Clock::now());
}

// What a victim saw, summed over trials.
struct Tally {
  std::atomic<long> corrupt{0};      // Errors naming the corruption
  std::atomic<long> other_error{0};  // other mproc::Error (DecodeError, ...)
  std::atomic<long> delivered{0};    // messages got
  std::atomic<long> wrong_error{0};  // an exception that is not an mproc::Error
  std::atomic<int> last_trial{0};
};

// Uses the queue every way a process would, with short deadlines; returns 0 unless an exception
// other than mproc::Error escaped (a crash or a hang shows in the exit status).
int victim(QueueCore& q, QueueCore& joinable, Tally& tally) {
  auto attempt = [&](auto&& op) {
    try {
      op();
    } catch (const mproc::Error& e) {
      if (std::string_view(e.what()).substr(0, kCorrupt.size()) == kCorrupt)
        tally.corrupt++;
      else
        tally.other_error++;
    } catch (...) {
      tally.wrong_error++;
    }
  };
  (void)q.qsize();
  (void)q.empty();
  (void)q.full();
  for (int i = 0; i < 6; ++i) {
    attempt([&] {
      Digest d;
      if (q.get(&decode_digest, &d, i == 0 ? in(20ms) : Expiry(Clock::now()))) tally.delivered++;
    });
  }
  attempt([&] {
    std::vector<Digest> batch;
    auto append = [](mproc::Reader& r, void* out) {
      auto& v = *static_cast<std::vector<Digest>*>(out);
      v.emplace_back();
      decode_digest(r, &v.back());
    };
    tally.delivered += static_cast<long>(q.get_batch(+append, &batch, 8, Clock::now()));
  });
  attempt([&] { (void)put(q, pattern(5, 100), Clock::now()); });
  attempt([&] { (void)put(q, pattern(6, 3 * kCap), in(20ms)); });  // streamed, nobody reads
  attempt([&] {
    const Bytes b = pattern(7, 30);
    EncodeJob jobs[3] = {{b.size(), &encode_bytes, &b},
                         {b.size(), &encode_bytes, &b},
                         {b.size(), &encode_bytes, &b}};
    (void)q.put_batch(jobs, 3, Clock::now());
  });
  attempt([&] {
    Digest d;
    if (q.get(&decode_digest, &d, Clock::now())) tally.delivered++;
  });
  (void)q.qsize();
  (void)q.empty();
  (void)q.full();
  attempt([&] { joinable.task_done(); });
  attempt([&] { (void)joinable.join(Clock::now()); });
  attempt([&] {
    Digest d;
    (void)joinable.get(&decode_digest, &d, Clock::now());
  });
  (void)joinable.qsize();
  return tally.wrong_error.load() == 0 ? 0 : 3;
}

// Runs the victim on copies of the handles in a child; returns its exit code (or -signal, or
// kTimedOut).
int run_victim(QueueCore& q, QueueCore& joinable, Tally& tally) {
  return mproc_test::run_in_child([&] { return victim(q, joinable, tally); }, 20s);
}

std::uint64_t hostile_value(std::mt19937_64& rng, std::uint64_t near) {
  static const std::uint64_t fixed[] = {0,
                                        1,
                                        7,
                                        8,
                                        kCap - 8,
                                        kCap,
                                        kCap + 8,
                                        std::uint64_t{1} << 31,
                                        std::uint64_t{1} << 32,
                                        (std::uint64_t{1} << 32) - 1,
                                        std::uint64_t{1} << 62,
                                        std::uint64_t{1} << 63,
                                        ~std::uint64_t{0},
                                        ~std::uint64_t{7}};
  switch (rng() % 4) {
    case 0:
      return fixed[rng() % std::size(fixed)];
    case 1:
      return near + (rng() % 64) * 8 - 256;  // an index a few records off
    case 2:
      return near + kCap * (1 + rng() % 3);
    default:
      return rng();
  }
}

// The byte ranges of the header that are not glibc's lock words.
bool in_lock(std::size_t off) {
  const std::size_t put_lock = offsetof(QueueShared, put_lock);
  const std::size_t get_lock = offsetof(QueueShared, get_lock);
  const std::size_t n = sizeof(mproc::detail::MutexState);
  return (off >= put_lock && off < put_lock + n) || (off >= get_lock && off < get_lock + n);
}

void scribble_header(QueueShared* s, std::mt19937_64& rng) {
  auto* base = reinterpret_cast<unsigned char*>(s);
  const std::uint64_t near = s->head.load() + (rng() % 3) * kCap / 2;
  const int n = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < n; ++i) {
    std::size_t off = (rng() % sizeof(QueueShared)) & ~std::size_t{7};
    if (in_lock(off)) continue;
    const std::uint64_t v = hostile_value(rng, near);
    switch (rng() % 3) {
      case 0:
        std::memcpy(base + off, &v, 8);
        break;
      case 1:
        std::memcpy(base + off + 4 * (rng() % 2), &v, 4);
        break;
      default:
        base[off + rng() % 8] = static_cast<unsigned char>(v);
        break;
    }
  }
}

// The positions of the records from head to tail, walked as a correct consumer would.
std::vector<std::uint64_t> record_positions(QueueShared* s, std::byte* ring) {
  std::vector<std::uint64_t> out;
  std::uint64_t h = s->head.load();
  const std::uint64_t t = s->tail.load();
  while (h < t && out.size() < 1000) {
    out.push_back(h);
    RecordHeader rh;
    std::memcpy(&rh, ring + (h & (kCap - 1)), sizeof rh);
    h += rh.kind == mproc::detail::kPad ? kCap - (h & (kCap - 1))
                                        : mproc::detail::record_size(rh.len);
  }
  return out;
}

void scribble_record(QueueShared* s, std::byte* ring, std::mt19937_64& rng) {
  auto positions = record_positions(s, ring);
  if (positions.empty()) return;
  const std::uint64_t pos = positions[rng() % positions.size()];
  // The position may come from lengths already scribbled: write through memcpy, never through a
  // (possibly misaligned) RecordHeader pointer.
  std::byte* rh = ring + (pos & (kCap - 1));
  auto set_len = [rh](std::uint32_t v) {
    std::memcpy(rh + offsetof(RecordHeader, len), &v, sizeof v);
  };
  auto set_kind = [rh](std::uint32_t v) {
    std::memcpy(rh + offsetof(RecordHeader, kind), &v, sizeof v);
  };
  static const std::uint32_t kinds[] = {0, 1, 2, 3, 4, 5, 6, 7, 0xffffffffu};
  const std::uint32_t to_end = static_cast<std::uint32_t>(kCap - (pos & (kCap - 1)));
  const std::uint32_t lens[] = {0,    1,        7,           8,           8184,
                                8185, 16376,    16384,       to_end - 8,  to_end,
                                kCap, 1u << 31, 0xffffffffu, 0xfffffff8u, 4096};
  switch (rng() % 4) {
    case 0:
      set_kind(kinds[rng() % std::size(kinds)]);
      break;
    case 1:
      set_len(lens[rng() % std::size(lens)]);
      break;
    case 2:
      set_kind(kinds[rng() % std::size(kinds)]);
      set_len(lens[rng() % std::size(lens)]);
      break;
    default: {  // a stream's announced total, or a payload word
      const std::uint64_t v = hostile_value(rng, 0);
      std::memcpy(ring + ((pos + 8) & (kCap - 1)), &v, 8);
      break;
    }
  }
}

void scribble_ring(std::byte* ring, std::mt19937_64& rng) {
  const std::size_t start = rng() % kCap;
  const std::size_t n = 1 + rng() % 256;
  for (std::size_t i = 0; i < n && start + i < kCap; ++i)
    ring[start + i] = static_cast<std::byte>(rng());
}

TEST(QueueHostile, RandomAndTargetedScribblesNeverCrashHangOrReadOutOfBounds) {
  SharedPage<Tally> tally;
  // MPROC_SOAK=1: ten times as many trials; MPROC_HOSTILE_SEED=n: another series of them.
  const int trials = std::getenv("MPROC_SOAK") ? 3000 : 300;
  const char* seed_env = std::getenv("MPROC_HOSTILE_SEED");
  const std::uint64_t base = seed_env ? std::strtoull(seed_env, nullptr, 0) << 32 : 0x5eed0000u;
  for (int trial = 0; trial < trials; ++trial) {
    std::mt19937_64 rng(base + static_cast<unsigned>(trial));
    QueueCore q(rng() % 3 == 0 ? 4 : 0, QueueOptions{.capacity = kCap, .spin = 100}, false);
    QueueCore joinable(0, QueueOptions{.capacity = kCap, .spin = 100}, true);
    seed(q, rng);
    (void)put(joinable, pattern(9, 10), Clock::now());
    QueueShared* s = QueueCoreTestAccess::shared(q);
    std::byte* ring = QueueCoreTestAccess::ring(q);
    const int rounds = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < rounds; ++i) {
      switch (rng() % 3) {
        case 0:
          scribble_header(s, rng);
          break;
        case 1:
          scribble_record(s, ring, rng);
          break;
        default:
          scribble_ring(ring, rng);
          break;
      }
    }
    if (rng() % 4 == 0) scribble_header(QueueCoreTestAccess::shared(joinable), rng);
    tally->last_trial = trial;
    const int rc = run_victim(q, joinable, *tally);
    ASSERT_EQ(rc, 0) << "seed " << base + static_cast<unsigned>(trial)
                     << (rc == mproc_test::kTimedOut ? " hung" : "");
  }
  std::printf("corrupt=%ld other errors=%ld delivered=%ld\n", tally->corrupt.load(),
              tally->other_error.load(), tally->delivered.load());
  EXPECT_EQ(tally->wrong_error.load(), 0);
  EXPECT_GT(tally->corrupt.load(), 0) << "no scribble was ever reported as corruption";
  EXPECT_GT(tally->delivered.load(), 0);
}

// The same while the region changes under the victim's feet: a scribbler keeps writing while the
// victim keeps using the queue (a check and a use of the same word must read it once).
TEST(QueueHostile, ScribblesDuringUseNeverCrashOrHang) {
  SharedPage<Tally> tally;
  SharedPage<std::atomic<int>> stop;
  for (int trial = 0; trial < 4; ++trial) {
    QueueCore q(trial % 2 ? 4 : 0, QueueOptions{.capacity = kCap, .spin = 100}, false);
    QueueCore joinable(0, QueueOptions{.capacity = kCap, .spin = 100}, true);
    std::mt19937_64 seed_rng(0xabc0u + static_cast<unsigned>(trial));
    seed(q, seed_rng);
    stop->store(0);
    Child scribbler([&] {
      std::mt19937_64 rng(0xdef0u + static_cast<unsigned>(trial));
      QueueShared* s = QueueCoreTestAccess::shared(q);
      std::byte* ring = QueueCoreTestAccess::ring(q);
      while (stop->load() == 0) {
        switch (rng() % 4) {
          case 0:
            scribble_header(s, rng);
            break;
          case 1:
            scribble_record(s, ring, rng);
            break;
          case 2:
            scribble_ring(ring, rng);
            break;
          default:  // now and then the traffic a real producer would add
            try {
              (void)put(q, pattern(8, rng() % 2 ? 50 : 3 * kCap), Clock::now() + 1ms);
            } catch (const mproc::Error&) {
            }
            break;
        }
      }
      return 0;
    });
    const int rc = mproc_test::run_in_child(
        [&] {
          const auto end = Clock::now() + 250ms;
          while (Clock::now() < end)
            if (victim(q, joinable, *tally) != 0) return 3;
          return 0;
        },
        30s);
    stop->store(1);
    EXPECT_EQ(scribbler.wait(30s), 0);
    ASSERT_EQ(rc, 0) << "trial " << trial << (rc == mproc_test::kTimedOut ? " hung" : "");
  }
  EXPECT_EQ(tally->wrong_error.load(), 0);
}

// The constants in the region are a record for whoever inspects it; the handle works from its own
// copy, so overwriting them changes nothing.
TEST(QueueHostile, ConstantsInTheRegionAreNotTrusted) {
  const std::uint64_t values[] = {0, 1, 8, 4096, std::uint64_t{1} << 40, ~std::uint64_t{0}};
  for (std::uint64_t v : values) {
    QueueCore q(2, QueueOptions{.capacity = kCap}, false);
    QueueShared* s = QueueCoreTestAccess::shared(q);
    int rc = mproc_test::run_in_child(
        [&] {
          s->capacity = v;
          s->mask = v;
          s->maxsize = v;
          s->max_record = v;
          s->chunk = v;
          s->spin = static_cast<std::uint32_t>(v);
          // Small and streamed messages still go through whole, and maxsize still holds.
          Child producer([&] {
            for (std::uint32_t i = 0; i < 6; ++i)
              if (!put(q, pattern(i, i % 2 ? 5 * kCap : 100), in(30s))) return 1;
            return 0;
          });
          for (std::uint32_t i = 0; i < 6; ++i) {
            Digest d, expect;
            if (!q.get(&decode_digest, &d, in(30s))) return 2;
            Bytes b = pattern(i, i % 2 ? 5 * kCap : 100);
            mproc::Reader r(reinterpret_cast<const std::byte*>(b.data()), b.size());
            decode_digest(r, &expect);
            if (d.size != expect.size || d.sum != expect.sum) return 3;
          }
          if (producer.wait(30s) != 0) return 4;
          if (!put(q, pattern(1, 10), Clock::now()) || !put(q, pattern(2, 10), Clock::now()))
            return 5;
          if (put(q, pattern(3, 10), Clock::now())) return 6;  // maxsize 2
          return q.qsize() == 2 && q.capacity() == kCap && q.maxsize() == 2 ? 0 : 7;
        },
        60s);
    EXPECT_EQ(rc, 0) << "value " << v;
  }
}

// Runs `f` on a queue holding one small message after `scribble`; returns the Error's text.
template <class Scribble, class Use>
std::string corrupt_error(Scribble scribble, Use use) {
  SharedPage<std::array<char, 256>> text;
  QueueCore q(0, QueueOptions{.capacity = kCap}, false);
  EXPECT_TRUE(put(q, pattern(1, 100), Clock::now()));
  int rc = mproc_test::run_in_child([&] {
    scribble(QueueCoreTestAccess::shared(q), QueueCoreTestAccess::ring(q));
    try {
      use(q);
    } catch (const mproc::Error& e) {
      std::snprintf(text->data(), text->size(), "%s", e.what());
      return 0;
    }
    std::snprintf(text->data(), text->size(), "no error");
    return 0;
  });
  EXPECT_EQ(rc, 0);
  return text->data();
}

void get_one(QueueCore& q) {
  Digest d;
  (void)q.get(&decode_digest, &d, in(20ms));
}

TEST(QueueHostile, RecordLongerThanTheRingIsCorrupt) {
  EXPECT_EQ(corrupt_error(
                [](QueueShared* s, std::byte* ring) {
                  reinterpret_cast<RecordHeader*>(ring + (s->head.load() & (kCap - 1)))->len =
                      0xffffffffu;
                },
                get_one),
            "mproc::Queue: corrupt ring: a record is longer than the largest record");
}

TEST(QueueHostile, UnknownRecordKindIsCorrupt) {
  EXPECT_EQ(corrupt_error(
                [](QueueShared* s, std::byte* ring) {
                  reinterpret_cast<RecordHeader*>(ring + (s->head.load() & (kCap - 1)))->kind = 77;
                },
                get_one),
            "mproc::Queue: corrupt ring: a record has an unknown kind");
}

TEST(QueueHostile, RecordPastThePublishedDataIsCorrupt) {
  EXPECT_EQ(corrupt_error(
                [](QueueShared* s, std::byte* ring) {
                  reinterpret_cast<RecordHeader*>(ring + (s->head.load() & (kCap - 1)))->len =
                      200;  // the record is 112 bytes, the next one is not yet written
                },
                get_one),
            "mproc::Queue: corrupt ring: a record runs past the end of the ring or of the "
            "published data");
}

TEST(QueueHostile, IndicesOutOfBoundsAreCorrupt) {
  EXPECT_EQ(
      corrupt_error([](QueueShared* s, std::byte*) { s->tail.store(s->head + kCap + 8); }, get_one),
      "mproc::Queue: corrupt ring: the producers' position (tail) is out of bounds");
  EXPECT_EQ(corrupt_error([](QueueShared* s, std::byte*) { s->head.store(s->head + 3); }, get_one),
            "mproc::Queue: corrupt ring: the consumers' position (head) is out of bounds");
  EXPECT_EQ(corrupt_error([](QueueShared* s, std::byte*) { s->tail.store(s->tail + 4); },
                          [](QueueCore& q) { (void)put(q, pattern(2, 10), Clock::now()); }),
            "mproc::Queue: corrupt ring: the producers' position (tail) is out of bounds");
  // A head past the tail: a producer that needs room finds it out of bounds.
  EXPECT_EQ(corrupt_error([](QueueShared* s, std::byte*) { s->head.store(s->tail + 2 * kCap); },
                          [](QueueCore& q) { (void)put(q, pattern(2, 3 * kCap), in(20ms)); }),
            "mproc::Queue: corrupt ring: the consumers' position (head) is out of bounds");
}

TEST(QueueHostile, StreamAnnouncingAnImpossibleLengthIsCorrupt) {
  SharedPage<std::array<char, 256>> text;
  QueueCore q(0, QueueOptions{.capacity = kCap}, false);
  ASSERT_TRUE(put(q, pattern(1, 20 * 1024), Clock::now()));  // streamed, wholly in the ring
  int rc = mproc_test::run_in_child([&] {
    QueueShared* s = QueueCoreTestAccess::shared(q);
    std::byte* ring = QueueCoreTestAccess::ring(q);
    const std::uint64_t total = std::uint64_t{1} << 60;  // would make a decoder allocate 1 EiB
    std::memcpy(ring + (s->head.load() & (kCap - 1)) + 8, &total, 8);
    try {
      get_one(q);
    } catch (const mproc::Error& e) {
      std::snprintf(text->data(), text->size(), "%s", e.what());
    }
    return 0;
  });
  EXPECT_EQ(rc, 0);
  // The chunks hold far less than announced: found at the last chunk, before anything is kept.
  EXPECT_STREQ(text->data(),
               "mproc::Queue: corrupt ring: a chunk does not match what its stream still holds");
}

}  // namespace
