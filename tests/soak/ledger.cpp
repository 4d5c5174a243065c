// soak/ledger.cpp — see ledger.hpp for the argument behind the window.
#include "soak/ledger.hpp"

namespace soak {

namespace {

std::atomic<std::uint64_t>& word_of(std::atomic<std::uint64_t> (&bits)[Ledger::kWindow / 64],
                                    std::uint64_t seq) {
  return bits[(seq % Ledger::kWindow) / 64];
}

std::uint64_t mask_of(std::uint64_t seq) { return std::uint64_t{1} << (seq % 64); }

}  // namespace

Ledger::Verdict Ledger::record(int producer, std::uint64_t seq) {
  const std::uint64_t bottom = finalized_[producer].load();
  if (seq < bottom) return Verdict::kLate;
  if (seq >= bottom + kWindow) return Verdict::kOutOfWindow;
  const std::uint64_t mask = mask_of(seq);
  const std::uint64_t old = word_of(bits_[producer], seq).fetch_or(mask);
  // Published after the bit: a driver that reads this maximum also sees the bit.
  std::uint64_t cur = max_recorded_[producer].load();
  while (cur < seq + 1 && !max_recorded_[producer].compare_exchange_weak(cur, seq + 1)) {
  }
  return (old & mask) ? Verdict::kDuplicate : Verdict::kNew;
}

void Ledger::Excuses::trim_below(std::uint64_t seq) {
  put.erase(put.begin(), put.lower_bound(seq));
  taken.erase(taken.begin(), taken.lower_bound(seq));
}

void Ledger::finalize_below(int producer, std::uint64_t safe, Excuses& excuses, Tally& tally) {
  const std::uint64_t bottom = finalized_[producer].load();
  if (safe > bottom + kWindow) safe = bottom + kWindow;
  for (std::uint64_t seq = bottom; seq < safe; ++seq) {
    const std::uint64_t mask = mask_of(seq);
    const bool got = (word_of(bits_[producer], seq).fetch_and(~mask) & mask) != 0;
    const bool maybe_put = excuses.put.erase(seq) != 0;
    const bool maybe_taken = excuses.taken.erase(seq) != 0;
    if (got) {
      ++tally.delivered;
    } else if (maybe_put) {
      ++tally.maybe_put;
    } else if (maybe_taken) {
      ++tally.maybe_taken;
    } else {
      ++tally.missing;
      if (tally.first_missing.size() < 8) tally.first_missing.push_back(seq);
    }
  }
  if (safe > bottom) finalized_[producer].store(safe);
}

}  // namespace soak
