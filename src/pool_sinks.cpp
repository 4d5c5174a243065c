// The bookkeeping of the sinks of map and imap (MapBook, ImapBook; see mproc/detail/pool_core.hpp):
// the non-template half of MapSink<R> and IMapSink<R>. The parts that hold values of R are owned
// here through their erased bases and handled through the sink's PieceOps.
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/progress.hpp>
#include <string>
#include <utility>
#include <vector>

#include "stacktrace.hpp"
#include "thread_annotations.hpp"

namespace mproc::detail {

void decode_piece_errors(Reader& r, std::uint64_t first, const Spans& covered, std::int32_t pid,
                         IndexedErrors& errors) {
  const auto error_bytes = TaskContext::read_piece_header(r);
  if (error_bytes == 0) return;
  std::vector<std::byte> buf(static_cast<std::size_t>(error_bytes));
  r.read(buf.data(), buf.size());
  Reader er(buf.data(), buf.size());
  std::size_t c = 0;  // the span of `covered` that holds the next error
  while (er.remaining() != 0) {
    std::uint64_t index = 0;
    std::string type, what, trace;
    read_error_record(er, index, type, what, trace);
    while (c < covered.size() && covered[c].end <= index) ++c;
    if (c == covered.size() || index < covered[c].begin ||
        (!errors.empty() && index <= errors.back().first))
      throw DecodeError("mproc::Pool: a chunk's result does not match its elements");
    TaskOrigin origin{.position = static_cast<std::size_t>(first + index)};
    if (const DeliveryPlace* place = delivery_place()) {
      origin.rank = place->rank;
      origin.host = place->host;
    }
    errors.emplace_back(index, remote_error(type, what, trace, pid, std::move(origin)));
  }
}

OutcomesBase::~OutcomesBase() = default;
ChunkGather::~ChunkGather() = default;

namespace {

// Holds a Monitor's lock for a scope.
class Hold {
 public:
  explicit Hold(const Monitor& w) noexcept : w_(w) { w_.lock(); }
  ~Hold() { w_.unlock(); }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;

 private:
  const Monitor& w_;
};

void add_progress(ProgressTracker* p, const Spans& covered) noexcept {
  if (p != nullptr) p->add(static_cast<std::size_t>(span_count(covered)));
}

// The errors of a piece (by index in the chunk) by ordinal among the piece's outcomes, for a part
// in the piece's own order (imap_unordered takes pieces as they come).
IndexedErrors errors_in_piece_order(const Spans& covered, IndexedErrors&& errors) {
  std::uint64_t before = 0;  // covered elements before covered[c]
  std::size_t c = 0;
  for (auto& [index, e] : errors) {
    while (covered[c].end <= index) before += covered[c].end - covered[c].begin, ++c;
    index = before + (index - covered[c].begin);
  }
  return std::move(errors);
}

}  // namespace

// ---- MapBook ----------------------------------------------------------------------------------

struct MapBook::State {
  State(std::vector<std::size_t> s, Ref<ProgressTracker> p, const PieceOps& o, StoreFn st, void* ow)
      : sizes(std::move(s)),
        left(sizes.size()),
        progress(std::move(p)),
        ops(o),
        store(st),
        owner(ow) {}

  Mutex mu;
  const std::vector<std::size_t> sizes;  // elements of each chunk
  std::map<std::uint64_t, std::unique_ptr<ChunkGather>> pending
      MPROC_GUARDED_BY(mu);                  // chunks in several pieces
  std::size_t left MPROC_GUARDED_BY(mu);     // chunks not stored yet
  bool closed MPROC_GUARDED_BY(mu) = false;  // completed or failed
  const Ref<ProgressTracker> progress;
  const PieceOps& ops;
  const StoreFn store;
  void* const owner;
};

MapBook::MapBook(std::vector<std::size_t> sizes, Ref<ProgressTracker> progress, const PieceOps& ops,
                 StoreFn store, void* owner)
    : st_(make_box<State>(std::move(sizes), std::move(progress), ops, store, owner)) {}

MapBook::~MapBook() = default;

std::size_t MapBook::chunks() const noexcept { return st_->sizes.size(); }

bool MapBook::add(std::uint64_t part, const Spans& covered, PieceBase& piece) {
  State& s = *st_;
  {
    Guard g(s.mu);
    if (s.closed) return false;
    add_progress(s.progress.get(), covered);
    const std::uint64_t size = s.sizes[static_cast<std::size_t>(part)];
    auto it = s.pending.find(part);
    if (it == s.pending.end() && covers_chunk(covered, size)) {
      s.store(s.owner, part, &piece, nullptr);  // the common case: the chunk in one piece
    } else {
      if (it == s.pending.end()) {
        std::unique_ptr<ChunkGather> gather(s.ops.gather(size));
        it = s.pending.emplace(part, std::move(gather)).first;
      }
      s.ops.add(*it->second, covered, piece);
      if (!it->second->complete()) return false;
      std::unique_ptr<OutcomesBase> o(s.ops.take(*it->second));
      s.pending.erase(it);
      s.store(s.owner, part, nullptr, o.get());
    }
    if (--s.left != 0) return false;
    s.closed = true;
  }
  finish_progress(s.progress.get());
  return true;
}

bool MapBook::fail(const Spans& covered) noexcept {
  State& s = *st_;
  {
    Guard g(s.mu);
    if (s.closed) return false;
    s.closed = true;
    s.pending.clear();
    add_progress(s.progress.get(), covered);
  }
  finish_progress(s.progress.get());
  return true;
}

// ---- ImapBook ---------------------------------------------------------------------------------

struct ImapBook::State {
  State(bool o, Ref<ProgressTracker> p, const PieceOps& ops_)
      : ordered(o), progress(std::move(p)), ops(ops_) {}
  ~State() {
    while (ready_head != nullptr) delete std::exchange(ready_head, ready_head->next);
  }

  // A chunk from `base` on. Ordered: `count` is its size; its outcomes gather in `pending` (when
  // they come in several pieces) until they are `done`. Unordered: `count` is the outcomes still
  // to come.
  struct Chunk {
    std::uint64_t count = 0;
    std::unique_ptr<ChunkGather> pending;
    std::unique_ptr<OutcomesBase> done;
  };
  Chunk* chunk(std::uint64_t part) noexcept {
    if (part < base || part - base >= chunks.size()) return nullptr;
    return &chunks[static_cast<std::size_t>(part - base)];
  }
  void push_ready(std::unique_ptr<OutcomesBase> o) noexcept {
    OutcomesBase* p = o.release();
    if (ready_tail != nullptr)
      ready_tail->next = p;
    else
      ready_head = p;
    ready_tail = p;
  }
  // Unordered: `items` more outcomes of chunk `part`; true when that completes it.
  bool count_locked(std::uint64_t part, std::uint64_t items) noexcept {
    Chunk* c = chunk(part);
    if (c == nullptr || c->count == 0) return true;
    if (c->count > items) {
      c->count -= items;
      return false;
    }
    c->count = 0;
    while (!chunks.empty() && chunks.front().count == 0) chunks.pop_front(), ++base;
    return true;
  }
  // Ordered: the outcomes of the chunk are complete.
  void done_locked(Chunk& c, std::unique_ptr<OutcomesBase> o) noexcept {
    if (!c.done) c.done = std::move(o);
  }
  // Ordered: moves what `pending` gathered to `done` once it is complete.
  void complete_locked(Chunk& c) {
    if (!c.pending->complete()) return;
    std::unique_ptr<OutcomesBase> o(ops.take(*c.pending));
    c.pending.reset();
    done_locked(c, std::move(o));
  }

  Monitor w;
  const bool ordered;
  // Guarded by w's lock:
  std::deque<Chunk> chunks;  // from `base` on (ordered: until taken; unordered: until complete)
  std::uint64_t base = 0;
  OutcomesBase* ready_head = nullptr;  // unordered: pieces in completion order
  OutcomesBase* ready_tail = nullptr;
  double busy_ns = 0;
  std::size_t busy_items = 0;
  const Ref<ProgressTracker> progress;
  const PieceOps& ops;
};

ImapBook::ImapBook(bool ordered, Ref<ProgressTracker> progress, const PieceOps& ops)
    : st_(make_box<State>(ordered, std::move(progress), ops)) {}

ImapBook::~ImapBook() = default;

void ImapBook::expect(std::uint64_t part, std::size_t items) {
  State& s = *st_;
  Hold g(s.w);
  if (s.chunks.empty()) s.base = part;  // part == base + chunks.size() otherwise
  s.chunks.push_back(State::Chunk{items, nullptr, nullptr});
}

void ImapBook::add(std::uint64_t part, const Spans& covered, std::uint64_t ns, PieceBase& piece) {
  State& s = *st_;
  const std::uint64_t items = span_count(covered);
  {
    Hold g(s.w);
    if (ns != 0) {
      s.busy_ns += static_cast<double>(ns);
      s.busy_items += items;
    }
    if (s.ordered) {
      if (State::Chunk* c = s.chunk(part)) {
        if (!c->pending && covers_chunk(covered, c->count)) {  // the whole chunk in one piece
          std::unique_ptr<OutcomesBase> o(s.ops.make());
          s.ops.move_values(piece, *o);
          o->element_errors = std::move(piece.errors);  // index == ordinal here
          s.done_locked(*c, std::move(o));
        } else {
          if (!c->pending) c->pending.reset(s.ops.gather(c->count));
          s.ops.add(*c->pending, covered, piece);
          s.complete_locked(*c);
        }
      }
    } else {
      std::unique_ptr<OutcomesBase> o(s.ops.make());
      s.ops.move_values(piece, *o);
      o->element_errors = errors_in_piece_order(covered, std::move(piece.errors));
      o->completes_chunk = s.count_locked(part, items);
      s.push_ready(std::move(o));
    }
  }
  add_progress(s.progress.get(), covered);
  s.w.notify_all();
}

void ImapBook::add_error(std::uint64_t part, const Spans& covered,
                         const std::exception_ptr& e) noexcept {
  State& s = *st_;
  const std::uint64_t items = span_count(covered);
  try {
    Hold g(s.w);
    if (s.ordered) {
      if (State::Chunk* c = s.chunk(part)) {
        if (!c->pending && covers_chunk(covered, c->count)) {
          std::unique_ptr<OutcomesBase> o(s.ops.make());
          for (std::uint64_t i = 0; i < items; ++i) o->element_errors.emplace_back(i, e);
          s.done_locked(*c, std::move(o));
        } else {
          if (!c->pending) c->pending.reset(s.ops.gather(c->count));
          s.ops.add_error(*c->pending, covered, e);
          s.complete_locked(*c);
        }
      }
    } else {
      std::unique_ptr<OutcomesBase> o(s.ops.make());
      for (std::uint64_t i = 0; i < items; ++i) o->element_errors.emplace_back(i, e);
      o->completes_chunk = s.count_locked(part, items);
      s.push_ready(std::move(o));
    }
  } catch (...) {
    // No memory to record the outcomes: nothing better can be done for this consumer.
  }
  add_progress(s.progress.get(), covered);
  s.w.notify_all();
}

void ImapBook::fail(std::uint64_t part, std::exception_ptr e) noexcept {
  State& s = *st_;
  try {
    Hold g(s.w);
    std::unique_ptr<OutcomesBase> o(s.ops.make());
    o->error = std::move(e);
    if (State::Chunk* c = s.chunk(part)) {
      if (s.ordered) {
        c->pending.reset();
        s.done_locked(*c, std::move(o));
      } else {
        (void)s.count_locked(part, c->count);  // it ends the chunk
        s.push_ready(std::move(o));
      }
    } else if (!s.ordered) {
      s.push_ready(std::move(o));
    }
  } catch (...) {
  }
  s.w.notify_all();
}

Box<OutcomesBase> ImapBook::take(std::optional<std::uint64_t> part, const Expiry& expiry) {
  State& s = *st_;
  Hold g(s.w);
  const std::pair<State*, const std::optional<std::uint64_t>*> want(&s, &part);
  auto have = [](const void* arg) {
    const auto* w = static_cast<const decltype(want)*>(arg);
    State& st = *w->first;
    if (!*w->second) return st.ready_head != nullptr;
    const State::Chunk* c = st.chunk(**w->second);
    return c != nullptr && c->done != nullptr;
  };
  if (!s.w.wait_locked(expiry, have, &want)) return nullptr;
  if (!part) {
    OutcomesBase* o = s.ready_head;
    s.ready_head = o->next;
    if (s.ready_head == nullptr) s.ready_tail = nullptr;
    o->next = nullptr;
    return Box<OutcomesBase>(o);
  }
  Box<OutcomesBase> o(s.chunk(*part)->done.release());
  while (!s.chunks.empty() && s.base <= *part) {  // taken in order: the chunk is not needed
    s.chunks.pop_front();
    ++s.base;
  }
  return o;
}

std::optional<double> ImapBook::ns_per_item() const {
  const State& s = *st_;
  Hold g(s.w);
  if (s.busy_items == 0) return std::nullopt;
  return s.busy_ns / static_cast<double>(s.busy_items);
}

void ImapBook::finish_progress() noexcept { detail::finish_progress(st_->progress.get()); }

}  // namespace mproc::detail
