// soak/queue_roles.cpp — producers and consumers on the Queue and the JoinableQueue.
//
// Producers put messages of mixed sizes (some stream through the 64 KiB ring), one at a time or
// with put_many, and publish how far their puts got (Slot::put_upto / putting) so that the driver
// knows which messages were fully put. One message in 256 does not decode (kShortDecode).
// Consumers use get() and get_many(), check each message and record it in the ledger inside their
// get/record window (Slot::in_window); a get that throws DecodeError records the message it
// consumed, which the receipts name.
#include <chrono>
#include <mproc/errors.hpp>
#include <thread>
#include <vector>

#include "soak/roles.hpp"

namespace soak {

namespace {

using namespace std::chrono_literals;

constexpr auto kPutTimeout = 200ms;
constexpr auto kGetTimeout = 200ms;
constexpr std::size_t kBatch = 8;

Msg make_random_msg(int producer, std::uint64_t seq, Rng& rng) {
  const std::uint32_t flags = rng() % 256 == 0 ? kShortDecode : 0;
  return make_msg(static_cast<std::uint32_t>(producer), seq, pick_size(rng, kRing), flags);
}

mproc::Queue<Msg>& queue_of_producer(World& w, int producer) {
  return producer == kJoinableProducer ? w.joinable : w.queue;
}

// The get/record window of ledger.hpp: opened before get(), closed once the result is recorded.
void enter_window(World& w, Slot& me, int first_producer, int last_producer) {
  me.receipts.count.store(0);
  g_receipts = &me.receipts;
  me.in_window.store(1);
  for (int p = first_producer; p <= last_producer; ++p)
    me.floor[p].store(w.board->ledger.max_recorded(p));
}
void leave_window(Slot& me) { me.in_window.store(0); }

// Puts one message (or a batch) starting at `seq`; returns how many were put.
std::size_t put_some(World& w, Slot& me, int producer, std::uint64_t seq, Rng& rng) {
  mproc::Queue<Msg>& q = queue_of_producer(w, producer);
  set_doing(me, Doing::kPut);
  if (rng() % 8 != 0) {
    const Msg m = make_random_msg(producer, seq, rng);
    me.putting.store(seq + 1);
    try {
      q.put(m, kPutTimeout);
    } catch (const mproc::Full&) {
      return 0;  // not put: the same seq is tried again
    }
    me.put_upto.store(seq + 1);
    return 1;
  }
  std::vector<Msg> batch;
  for (std::uint64_t s = seq; s < seq + kBatch && w.board->ledger.may_put(producer, s); ++s)
    batch.push_back(make_random_msg(producer, s, rng));
  me.putting.store(seq + batch.size());
  const std::size_t n = q.put_many(batch, kPutTimeout);  // a prefix of the batch
  me.put_upto.store(seq + n);
  return n;
}

}  // namespace

namespace {

// Records a received (producer, seq) in the ledger; reports what can only be a queue's fault.
Ledger::Verdict record(Board& b, std::uint32_t producer, std::uint64_t seq) {
  const Ledger::Verdict v = b.ledger.record(static_cast<int>(producer), seq);
  if (v == Ledger::Verdict::kLate) {
    b.counters.late++;
    report_error(b,
                 "message producer %u seq %llu received after later messages of its producer "
                 "were recorded and no consumer could still hold it (delivered twice, or out of "
                 "order)",
                 producer, static_cast<unsigned long long>(seq));
  } else if (v == Ledger::Verdict::kOutOfWindow) {
    report_error(b, "message producer %u seq %llu: a seq its producer cannot have put yet",
                 producer, static_cast<unsigned long long>(seq));
  }
  return v;
}

}  // namespace

void accept(World& w, const Msg& m) {
  Board& b = *w.board;
  if (!intact(m, kLedgerProducers)) {
    if (b.counters.torn_messages++ < 8) {
      if (m.flags & kShortDecode)
        b.log.add("producer %u seq %llu decoded short of its length and was delivered anyway",
                  m.producer, static_cast<unsigned long long>(m.seq));
      else
        b.log.add("torn message: producer %u seq %llu length %llu, payload %zu bytes", m.producer,
                  static_cast<unsigned long long>(m.seq), static_cast<unsigned long long>(m.length),
                  m.payload.size());
    }
    // Received, though torn: recorded (when its header can be) so that it is not also lost.
    if (m.producer < kLedgerProducers) (void)b.ledger.record(static_cast<int>(m.producer), m.seq);
    return;
  }
  if (record(b, m.producer, m.seq) == Ledger::Verdict::kDuplicate && b.counters.duplicated++ < 8)
    b.log.add("duplicated message: producer %u seq %llu", m.producer,
              static_cast<unsigned long long>(m.seq));
}

bool accept_decode_error(World& w, const Receipts& receipts, const mproc::DecodeError& e) {
  Board& b = *w.board;
  const std::uint32_t n = receipts.count.load();
  // The message that failed is the last one the decoder began.
  if (n == 0 || n > Receipts::kMax || !(receipts.entries[n - 1].flags.load() & kShortDecode)) {
    if (b.counters.torn_messages++ < 8) b.log.add("decode error: %s", e.what());
    return true;
  }
  const Receipts::Entry& last = receipts.entries[n - 1];
  const std::uint32_t producer = last.producer.load();
  const std::uint64_t seq = last.seq.load();
  if (producer >= kLedgerProducers) return true;
  const Ledger::Verdict v = b.ledger.record(static_cast<int>(producer), seq);
  if (v == Ledger::Verdict::kNew) {
    b.counters.undecodable++;
    return true;
  }
  // The same message failed before: the get() that threw then did not consume it.
  b.counters.undecodable_again++;
  if (b.first_time((std::uint64_t{producer} << 56 ^ seq) + 1)) {
    report_error(b,
                 "producer %u seq %llu failed to decode again: the get() that threw did not "
                 "consume it (%s)",
                 producer, static_cast<unsigned long long>(seq), e.what());
  }
  return false;
}

int producer_main(World& w, Slot& me, int producer) {
  Rng rng(me.seed.load());
  std::uint64_t seq = me.put_upto.load();  // the driver starts us after every seq handed to put
  while (!stopping(w)) {
    if (!w.board->ledger.may_put(producer, seq)) {
      set_doing(me, Doing::kThrottled);  // the driver has not judged the window's bottom yet
      std::this_thread::sleep_for(1ms);
      continue;
    }
    const std::size_t n = put_some(w, me, producer, seq, rng);
    seq += n;
    beat(me, n);
  }
  return 0;
}

int consumer_main(World& w, Slot& me) {
  Rng rng(me.seed.load());
  while (!stopping(w)) {
    enter_window(w, me, 0, kJoinableProducer - 1);
    set_doing(me, Doing::kGet);
    try {
      if (rng() % 4 == 0) {
        const std::vector<Msg> got = w.queue.get_many(16, kGetTimeout);
        for (const Msg& m : got) accept(w, m);
        beat(me, got.size());
      } else {
        accept(w, w.queue.get(kGetTimeout));
        beat(me);
      }
    } catch (const mproc::Empty&) {
    } catch (const mproc::DecodeError& e) {
      if (accept_decode_error(w, me.receipts, e)) beat(me);
    }
    leave_window(me);
  }
  return 0;
}

// Gets, checks, records, task_done(). A get that throws DecodeError consumed its item, so the
// item is marked done as well (otherwise join() would wait for it forever).
int joinable_consumer_main(World& w, Slot& me) {
  while (!stopping(w)) {
    enter_window(w, me, kJoinableProducer, kJoinableProducer);
    set_doing(me, Doing::kGet);
    bool got = false;
    try {
      const Msg m = w.joinable.get(kGetTimeout);
      me.holding.store(1);
      got = true;
      accept(w, m);
    } catch (const mproc::Empty&) {
    } catch (const mproc::DecodeError& e) {
      // Consumed (and so to be marked done) unless it is one that failed before.
      got = accept_decode_error(w, me.receipts, e);
      me.holding.store(got ? 1 : 0);
    }
    leave_window(me);
    if (!got) continue;
    set_doing(me, Doing::kTaskDone);
    w.joinable.task_done();
    me.holding.store(0);
    beat(me);
  }
  return 0;
}

}  // namespace soak
