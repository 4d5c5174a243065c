// pool/protocol.hpp — the wire protocol between a Pool's parent, its workers and its launcher.
//
// Everything that crosses a process boundary is defined here, once:
//   * TaskMsg: parent -> worker, through the slot's mailbox (an mproc::Queue). Invoker 0 is the
//     stop message. A large payload travels in a memfd whose descriptor follows over the slot's
//     descriptor channel, tagged with the task's id.
//   * EventMsg: worker (results, life events), launcher (exit reports) and parent (kQuit, kWake)
//     -> the parent's result thread, through the one result queue. Its codec is below.
//   * SlotShared: the record a worker slot shares with the parent (the task it runs, the element
//     it began last, the outcomes it staged and has not sent), read by the parent once the worker
//     is dead. The staged word's packing and a piece's layout (the chunk result) are TaskContext's
//     static members (include/mproc/detail/pool_core.hpp), because the worker's per-element path
//     inlines them; every reader and writer uses those.
// Both ends include this header and nothing else encodes or decodes these messages. The one
// reader outside src/pool/ is decode_piece (pool_core.hpp, the template side), which turns a
// piece into values of the task's result type.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/detail/atomic.hpp>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/travel.hpp>
#include <string>
#include <vector>

#include "stacktrace.hpp"

namespace mproc::detail {

// The capacity of each worker slot's mailbox and of the result queue.
inline constexpr std::size_t kMailboxBytes = std::size_t{1} << 20;
inline constexpr std::size_t kEventBytes = std::size_t{4} << 20;

// The staging areas of a slot: values and error records (see TaskContext).
inline constexpr std::size_t kStageValueBytes = std::size_t{1} << 20;
inline constexpr std::size_t kStageErrorBytes = std::size_t{32} << 10;

// What a worker slot shares with the parent, which reads it once the worker is dead (see
// TaskContext): the task it runs, 1 + the index of the element it began last (0: none yet), and
// the outcomes it staged and has not sent: `staged` is TaskContext::pack_staged's word;
// `staged_first` is the first one's element. The workers inherit it (shared memory made before the
// launcher starts).
//
// Cancelling and killing (see "Futures" in docs/design.md; the parent's side is in cancel.cpp):
//   * `taken`: how many tasks the slot's current worker has taken from its mailbox (stop messages
//     not counted); the parent numbers the tasks it puts there the same way (Slot::put_seq), and
//     resets this word when it replaces the worker.
//   * `skip[k]`: ids of tasks in the mailbox that the parent withdrew. The worker, having counted
//     a task in `taken`, claims its id from these words with a compare-and-swap (id -> 0) and, if
//     it gets it, does not run the task (kSkipped). The parent, having written an id, reads
//     `taken`: below the task's number, the worker has not reached it and will skip it; otherwise
//     it takes the id back with the same compare-and-swap, and whoever of the two wins decides.
//   * `doomed`: set by the parent before it kills the worker (a cancelled or timed-out task). A
//     worker that finds it set when it begins a task does not begin it: it records the id in
//     `parked` and waits (futex on `doomed`) to be killed or released, so a kill aimed at one task
//     never hits the next.
//   * `started_ns`: CLOCK_MONOTONIC time at which the task (or, for a chunk with a per-element
//     limit, the element) now running began: the parent's timeout watch reads it.
//   * `worker_pid`: the pid of the worker that published `task`, which the parent names when it
//     asks the launcher to kill that worker (the launcher kills it only if it is still there).
//
// Insights (Pool::insights(); "Insights" in docs/design.md): `figures`, on a cache line of its
// own, written by the slot's current worker only (relaxed stores of its running totals), read by
// the parent without a message. When the worker's exit is reported the parent adds them to the
// slot's totals and zeroes them (on_exit_locked; the worker is dead and its replacement not yet
// asked for), so a killed worker's figures are kept and its replacement starts from zero.
struct WorkerFigures {
  Atomic<std::int64_t> start_ns{0};  // CLOCK_MONOTONIC when the worker loop began (0: no worker)
  Atomic<std::int64_t> ready_ns{0};  // when it had reported "ready" (initializer done)
  Atomic<std::uint64_t> tasks{0};    // tasks run (a chunk is one), withdrawn ones not counted
  Atomic<std::int64_t> work_ns{0};   // running tasks: decoding arguments, the call, encoding
  Atomic<std::int64_t> wait_ns{0};   // waiting for a task and taking it from the mailbox
  Atomic<std::int64_t> send_ns{0};   // putting results on the result queue (pieces included)
  Atomic<std::int64_t> code_ns{0};   // of work_ns: decoding a task's arguments, encoding its
                                     // result (a chunk: decoding its elements)
};
struct alignas(64) SlotShared {
  Atomic<std::uint64_t> task{0};
  Atomic<std::uint64_t> element{0};
  Atomic<std::uint64_t> staged{0};
  Atomic<std::uint64_t> staged_first{0};
  Atomic<std::uint64_t> taken{0};
  Atomic<std::uint64_t> skip[2] = {};
  Atomic<std::uint64_t> parked{0};
  Atomic<std::int64_t> started_ns{0};
  Atomic<std::int32_t> worker_pid{0};    // the worker that published `task` (stored before it)
  std::atomic<std::uint32_t> doomed{0};  // a futex word
  alignas(64) WorkerFigures figures;
  alignas(64) std::byte values[kStageValueBytes];
  std::byte errors[kStageErrorBytes];
};
static_assert(sizeof(Atomic<std::uint64_t>) == sizeof(std::uint64_t));
static_assert(kStageValueBytes < (std::uint64_t{1} << 24) && kStageErrorBytes < (1u << 16),
              "the staged word holds the areas' byte counts in 24 and 16 bits");

// A message to a worker's mailbox; invoker 0 tells the worker to leave. A payload larger than
// PoolCore::max_task_bytes() does not travel in the message: it is in a memfd (`big` bytes) whose
// descriptor the parent sends over the slot's descriptor channel, tagged with the task's id.
// `run`: for a chunk of map/imap, the elements still to run (empty: all of them).
// `fds`: the number of descriptors of the handles among the task's arguments, which follow the
// large payload's (if any) on the descriptor channel, tagged with the task's id (see
// mproc/detail/travel.hpp). For a pool whose workers are fresh images of the program (spawn,
// forkserver), `invoker` is a packed code reference (pack_code_ref) and `images` the records of
// the parent's images the worker may not know yet (those recorded after the zygote started).
struct TaskMsg {
  std::uint64_t id = 0;
  std::uint64_t invoker = 0;
  std::uint64_t big = 0;
  std::uint64_t fds = 0;
  Spans run;
  std::vector<std::byte> payload;
  std::vector<ImageRecord> images;
  // A per-element limit (a chunk whose elements each have a timeout): the worker then records
  // each element's start in SlotShared::started_ns (a clock read per element), not only the
  // task's.
  bool element_clock = false;
  template <class A>
  void serialize(A& ar) {
    ar(id, invoker, big, fds, run, payload, images, element_clock);
  }
};

// A code reference in one word, as TaskMsg::invoker: the image in the top 16 bits, the offset in
// the low 48 (no image is 256 TiB long). Never 0 (the stop message): the image is offset by 1.
inline std::uint64_t pack_code_ref(const CodeRef& r) noexcept {
  return (static_cast<std::uint64_t>(r.image + 1) << 48) |
         (r.offset & ((std::uint64_t{1} << 48) - 1));
}
inline CodeRef unpack_code_ref(std::uint64_t word) noexcept {
  return CodeRef{static_cast<std::uint32_t>((word >> 48) - 1),
                 word & ((std::uint64_t{1} << 48) - 1)};
}

enum EventKind : std::uint8_t {
  kOk = 1,           // a task's result (payload)
  kFailed = 2,       // a task threw (type, what)
  kReady = 3,        // a worker finished its initializer
  kInitFailed = 4,   // a worker's initializer threw (type, what); the worker then exits
  kExited = 5,       // (from the launcher) a worker ended and was reaped; status = exit code; for
                     // kSpawnFailed, id = the errno and type = the system call that failed
  kQuit = 6,         // (from the parent) the result thread should end
  kUndecodable = 7,  // (in the parent) a result whose payload could not be decoded (type, what)
  kWake = 8,         // (from the parent) tasks failed outside the result thread wait for it
  kPart = 9,         // outcomes of some elements of a chunk still running (covered, payload)
  kSkipped = 10,     // a task the parent withdrew from the mailbox was not run (see SlotShared)
  kExitValue = 11,   // a worker leaving normally ran the exit hook: status 1 and its encoded
                     // value in payload, or status 0 (the hook returns nothing)
  kExitFailed = 12,  // a worker leaving normally: its exit hook threw (type, what, trace)
};

// Everything that reaches the parent: results and worker life events. Encoded by the codec
// below: the header (kind, slot, pid, status, id, ns), then covered, payload, type, what and
// trace.
struct EventMsg {
  std::uint8_t kind = 0;
  std::int32_t slot = -1;
  std::int32_t pid = 0;
  std::int32_t status = 0;
  std::uint64_t id = 0;
  Spans covered;  // kOk, kPart of a chunk: the elements whose outcomes the payload holds
  std::vector<std::byte> payload;
  std::string type;
  std::string what;
  // kFailed, kInitFailed: the traceback of the exception (see stacktrace.hpp; "" when unknown),
  // at most kMaxTraceBytes (a longer one does not decode: the event becomes kUndecodable).
  std::string trace;
  std::uint64_t ns = 0;  // kOk, kPart of a chunk: how long the piece took in the worker
  // Not sent: kUndecodable: the size of what could not be decoded, and the kind that was sent.
  std::uint64_t bytes = 0;
  std::uint8_t sent_kind = 0;
  // When sending a chunk's piece straight from a worker's staging areas (see TaskContext): the
  // payload is written from these (TaskContext::write_piece) instead of `payload`.
  bool piece = false;
  const std::byte* piece_errors = nullptr;
  std::size_t piece_error_bytes = 0;
  const std::byte* piece_values = nullptr;
  std::size_t piece_value_bytes = 0;

  // Makes this event carry the piece of the elements `covered` from the staging areas.
  void set_piece(const Spans& elements, const std::byte* errors, std::size_t error_bytes,
                 const std::byte* values, std::size_t value_bytes) {
    covered = elements;
    piece = true;
    piece_errors = errors;
    piece_error_bytes = error_bytes;
    piece_values = values;
    piece_value_bytes = value_bytes;
  }
  // The launcher's report that the worker of `slot` ended (see ExitReport in launcher.hpp).
  static EventMsg exited(int slot, int pid, int code, int error, const char* call) {
    EventMsg ev;
    ev.kind = kExited;
    ev.slot = slot;
    ev.pid = pid;
    ev.status = code;
    ev.id = static_cast<std::uint64_t>(error);
    if (call) ev.type = call;
    return ev;
  }
};

// The type name and what() of the exception being handled (src/pool/remote_error.cpp).
void describe_current(std::string& type, std::string& what) noexcept;

}  // namespace mproc::detail

// A result the parent cannot take (too large for its memory: std::bad_alloc, std::length_error;
// corrupt: DecodeError) must fail its own task, and neither vanish nor stop the result thread: the
// header is decoded first, and when the rest does not decode, the event becomes kUndecodable
// (naming the error) and the rest of the message is skipped, so the queue consumes it whole, a
// streamed one included. Only std::exception is caught: what the queue throws through a
// streamed message's refill when its producer died is no std::exception, and must reach the
// queue, which then resumes at the record that ended the stream.
template <>
struct mproc::codec<mproc::detail::EventMsg> {
  using EventMsg = mproc::detail::EventMsg;
  using TaskContext = mproc::detail::TaskContext;
  static constexpr std::size_t kHeader =
      sizeof(std::uint8_t) + 3 * sizeof(std::int32_t) + 2 * sizeof(std::uint64_t);
  // A piece is written as the std::vector<std::byte> of its bytes would be: count, then bytes.
  static std::size_t payload_size(const EventMsg& m) {
    return m.piece ? mproc::detail::kCountBytes +
                         TaskContext::piece_bytes(m.piece_error_bytes, m.piece_value_bytes)
                   : mproc::encoded_size(m.payload);
  }
  static std::size_t size(const EventMsg& m) {
    return kHeader + mproc::encoded_size(m.covered) + payload_size(m) +
           mproc::encoded_size(m.type) + mproc::encoded_size(m.what) + mproc::encoded_size(m.trace);
  }
  static void encode(Writer& w, const EventMsg& m) {
    w.write_value(m.kind);
    w.write_value(m.slot);
    w.write_value(m.pid);
    w.write_value(m.status);
    w.write_value(m.id);
    w.write_value(m.ns);
    mproc::encode(w, m.covered);
    if (m.piece) {
      mproc::detail::write_count(
          w, TaskContext::piece_bytes(m.piece_error_bytes, m.piece_value_bytes));
      TaskContext::write_piece(w, m.piece_errors, m.piece_error_bytes, m.piece_values,
                               m.piece_value_bytes);
    } else {
      mproc::encode(w, m.payload);
    }
    mproc::encode(w, m.type);
    mproc::encode(w, m.what);
    mproc::encode(w, m.trace);
  }
  static EventMsg decode(Reader& r) {
    EventMsg m;
    m.kind = r.read_value<std::uint8_t>();
    m.slot = r.read_value<std::int32_t>();
    m.pid = r.read_value<std::int32_t>();
    m.status = r.read_value<std::int32_t>();
    m.id = r.read_value<std::uint64_t>();
    m.ns = r.read_value<std::uint64_t>();
    const std::size_t rest = r.remaining();
    try {
      m.covered = mproc::decode<mproc::detail::Spans>(r);
      m.payload = mproc::decode<std::vector<std::byte>>(r);
      m.type = mproc::decode<std::string>(r);
      m.what = mproc::decode<std::string>(r);
      m.trace = mproc::detail::read_trace(r);
    } catch (const std::exception&) {
      std::vector<std::byte>().swap(m.payload);
      mproc::detail::Spans().swap(m.covered);
      m.type.clear();
      m.what.clear();
      m.trace.clear();
      mproc::detail::describe_current(m.type, m.what);
      m.sent_kind = m.kind;
      m.kind = mproc::detail::kUndecodable;
      m.bytes = rest;
      r.skip(r.remaining());
    }
    return m;
  }
};
