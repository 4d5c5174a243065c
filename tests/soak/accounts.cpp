// soak/accounts.cpp — see accounts.hpp.
#include "soak/accounts.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mproc/errors.hpp>
#include <optional>

#include "soak/roles.hpp"

namespace soak {

namespace {

using namespace std::chrono_literals;

// More gets than this while draining a queue whose item limit is far lower means it never
// empties.
constexpr int kDrainLimit = 10000;

Role consumer_role_of(int producer) {
  return producer == kJoinableProducer ? Role::kJoinableConsumer : Role::kConsumer;
}

int slot_of_producer(int producer) {
  for (int s = 0; s < kSlots; ++s)
    if ((kCast[s].role == Role::kProducer || kCast[s].role == Role::kJoinableProducer) &&
        kCast[s].index == producer)
      return s;
  return -1;
}

std::uint64_t absdiff(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : b - a; }

// Drains `q`, recording what it gets as consumers do and calling `got()` for each item taken
// (decoded or not); returns the count drift as Accounts::drain_queue documents.
template <class Got>
std::uint64_t drain(World& w, mproc::Queue<Msg>& q, const char* name, Got&& got) {
  Receipts receipts;
  g_receipts = &receipts;
  const std::uint64_t before = q.qsize();
  const bool empty_before = q.empty();
  const bool full_before = q.full();
  std::uint64_t real = 0;
  int gets = 0;
  for (; gets < kDrainLimit; ++gets) {
    receipts.count.store(0);
    try {
      std::optional<Msg> m = q.try_get();
      if (!m) break;
      accept(w, *m);
      got();
    } catch (const mproc::DecodeError& e) {
      if (!accept_decode_error(w, receipts, e)) break;  // wedged: reported, and drift shows it
      got();
    }
    ++real;
  }
  g_receipts = nullptr;
  if (gets == kDrainLimit) report_error(*w.board, "%s: still not empty after %d gets", name, gets);
  const std::uint64_t after = q.qsize();
  const bool empty_after = q.empty();
  const bool full_after = q.full();
  std::uint64_t drift = absdiff(before, real) + after;
  drift += (empty_before != (real == 0)) + !empty_after;
  drift += (full_before != (real >= q.maxsize())) + full_after;
  if (drift)
    w.board->log.add(
        "%s count drift: qsize() %llu empty() %d full() %d with %llu items; after draining "
        "qsize() %llu empty() %d full() %d",
        name, static_cast<unsigned long long>(before), empty_before, full_before,
        static_cast<unsigned long long>(real), static_cast<unsigned long long>(after), empty_after,
        full_after);
  return drift;
}

}  // namespace

void Accounts::sweep_producer(int producer, std::uint64_t safe) {
  w_.board->ledger.finalize_below(producer, safe, cast_.excuses(producer), tally_[producer]);
}

void Accounts::sweep() {
  for (int p = 0; p < kLedgerProducers; ++p) {
    // max_recorded first, the windows second: see ledger.hpp.
    std::uint64_t safe = w_.board->ledger.max_recorded(p);
    for (int s = 0; s < kSlots; ++s) {
      if (kCast[s].role != consumer_role_of(p)) continue;
      const Slot& c = w_.board->slots[s];
      if (c.in_window.load()) safe = std::min(safe, c.floor[p].load());
    }
    sweep_producer(p, safe);
  }
}

void Accounts::final_sweep() {
  for (int p = 0; p < kLedgerProducers; ++p) {
    const Slot& st = w_.board->slots[slot_of_producer(p)];
    const std::uint64_t end = std::max(st.put_upto.load(), st.putting.load());
    // The window moves as the sweep goes; judge it window by window.
    while (w_.board->ledger.finalized(p) < end) {
      const std::uint64_t before = w_.board->ledger.finalized(p);
      sweep_producer(p, std::min(end, before + Ledger::kWindow));
      if (w_.board->ledger.finalized(p) == before) break;
    }
  }
}

std::uint64_t Accounts::drain_queue() {
  return drain(w_, w_.queue, "Queue", [] {});
}

std::uint64_t Accounts::drain_joinable() {
  std::uint64_t drift = drain(w_, w_.joinable, "JoinableQueue", [&] {
    try {
      w_.joinable.task_done();
    } catch (const mproc::ValueError& e) {
      report_error(*w_.board, "JoinableQueue::task_done() for a drained item: %s", e.what());
    }
  });
  if (w_.joinable.join(1s)) return drift;
  // Items still counted as unfinished: count them by marking them done until refused.
  std::uint64_t unfinished = 0;
  try {
    while (unfinished < kDrainLimit) {
      w_.joinable.task_done();
      ++unfinished;
    }
  } catch (const mproc::ValueError&) {
  }
  const std::uint64_t excused = cast_.stats().holding_deaths;
  if (unfinished > excused) {
    w_.board->log.add(
        "JoinableQueue::join() did not return with every item received and done: %llu items "
        "still counted unfinished (%llu excused by consumer deaths)",
        static_cast<unsigned long long>(unfinished), static_cast<unsigned long long>(excused));
    drift += unfinished - excused;
  }
  if (!w_.joinable.join(1s)) {
    w_.board->log.add("JoinableQueue::join() still blocks after %llu more task_done() calls",
                      static_cast<unsigned long long>(unfinished));
    ++drift;
  }
  return drift;
}

std::uint64_t Accounts::check_locks() {
  std::uint64_t stuck = 0;
  auto check = [&](auto& lock, const char* what, mproc::Value<std::int64_t>& a,
                   mproc::Value<std::int64_t>& b) {
    if (!lock.acquire(5s)) {
      report_error(*w_.board, "%s still held after every participant stopped", what);
      ++stuck;
      return;
    }
    check_pair(w_, what, a.get_obj(), b.get_obj(), lock.owner_died());
    lock.release();
  };
  check(w_.lock, "Lock", w_.lock_a, w_.lock_b);
  check(w_.rlock, "RLock", w_.rlock_a, w_.rlock_b);
  check(w_.cond_lock, "Condition", w_.turn, w_.steps);
  return stuck;
}

std::uint64_t Accounts::lost() const {
  std::uint64_t n = 0;
  for (const auto& t : tally_) n += t.missing;
  return n;
}

std::uint64_t Accounts::delivered() const {
  std::uint64_t n = 0;
  for (const auto& t : tally_) n += t.delivered;
  return n;
}

std::uint64_t Accounts::maybe_put() const {
  std::uint64_t n = 0;
  for (const auto& t : tally_) n += t.maybe_put;
  return n;
}

std::uint64_t Accounts::maybe_taken() const {
  std::uint64_t n = 0;
  for (const auto& t : tally_) n += t.maybe_taken;
  return n;
}

void Accounts::print_missing(std::FILE* out) const {
  for (int p = 0; p < kLedgerProducers; ++p) {
    if (!tally_[p].missing) continue;
    std::fprintf(out, "soak:   producer %d: %llu messages fully put and never received, e.g. seq",
                 p, static_cast<unsigned long long>(tally_[p].missing));
    for (std::uint64_t s : tally_[p].first_missing)
      std::fprintf(out, " %llu", static_cast<unsigned long long>(s));
    std::fprintf(out, "\n");
  }
}

}  // namespace soak
