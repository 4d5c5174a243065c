// mpi/wire.hpp — the messages between rank 0's pool and the other ranks (private to mproc::mpi).
//
// Every message is one mproc::codec value: a kind byte, then the body of that kind. Rank 0 sends
// on tag kDown, the other ranks answer on tag kUp, on the pools' duplicate of MPI_COMM_WORLD, so
// each direction between two ranks is one ordered stream (MPI's non-overtaking rule): an outcome
// sent before a reply arrives before it. A message larger than a piece travels in pieces
// (link.hpp).
//
//   rank 0 -> rank r                      rank r -> rank 0
//   Start  (the pool's options, images)   Started (workers, host, or why it could not start)
//   Tasks  (a batch of tasks)             Outcomes (a batch of outcomes)
//   Query  (cancel / running: ids)        Reply (to a Query)
//   Stop   (join or terminate)            Stopped (its pool is gone)
//   Exit   (rank 0's program ends)
#pragma once

#include <cstdint>
#include <exception>
#include <mproc/codec.hpp>
#include <mproc/detail/pool_core.hpp>
#include <mproc/detail/travel.hpp>
#include <string>
#include <vector>

namespace mproc::mpi::detail {

using mproc::detail::CodeRef;
using mproc::detail::ImageRecord;
using mproc::detail::Spans;

inline constexpr int kDown = 7301;  // rank 0 -> rank r
inline constexpr int kUp = 7302;    // rank r -> rank 0

enum Kind : std::uint8_t {
  kStart = 1,
  kTasks = 2,
  kQuery = 3,
  kStop = 4,
  kExit = 5,
  kStarted = 20,
  kOutcomes = 21,
  kReply = 22,
  kStopped = 23,
};

struct StartMsg {
  std::vector<ImageRecord> images;  // rank 0's image table
  std::vector<CodeRef> probes;      // one address per image: each rank resolves it (build-id check)
  std::int32_t processes = 0;       // workers per rank; 0: the rank's share of its node's cores
  std::int32_t maxtasks = 0;
  std::int64_t task_limit_ns = 0;
  std::int64_t init_limit_ns = 0;
  bool daemon = true;
  bool insights = false;
  bool has_init = false;
  CodeRef init_decoder;  // the initializer: ProcessTarget::decoder() and encode()
  std::vector<std::byte> init_bytes;
  template <class A>
  void serialize(A& a) {
    a(images, probes, processes, maxtasks, task_limit_ns, init_limit_ns, daemon, insights, has_init,
      init_decoder, init_bytes);
  }
};

struct StartedMsg {
  std::int32_t workers = 0;
  std::string host;
  std::string error;  // non-empty: the rank could not start its pool (it serves on, without one)
  template <class A>
  void serialize(A& a) {
    a(workers, host, error);
  }
};

// A task as it travels: rank 0's id, the invoker (a code reference in rank 0's table), and the
// TaskSpec's fields that the rank's local pool needs.
struct WireTask {
  std::uint64_t id = 0;
  CodeRef invoker;
  std::uint64_t first = 0;
  std::uint64_t elements = 0;
  std::int64_t limit_ns = 0;
  std::vector<std::byte> payload;
  template <class A>
  void serialize(A& a) {
    a(id, invoker, first, elements, limit_ns, payload);
  }
};

// An exception as it travels (outcome.hpp: describe_error in the rank, rebuild_error in rank 0).
enum ErrorClass : std::uint8_t {
  kRemote = 1,     // RemoteError (a registered type is rebuilt from its type name in rank 0)
  kLost = 2,       // WorkerLost
  kTimeout = 3,    // TaskTimeout
  kCancelled = 4,  // CancelledError
  kBroken = 5,     // BrokenPool
  kDecode = 6,     // DecodeError
  kOther = 7,      // anything else (the rank's own failure, e.g. std::system_error)
};
struct WireError {
  std::uint8_t cls = kOther;
  std::string type;
  std::string what;
  std::string trace;
  std::int32_t pid = 0;
  std::int32_t exitcode = 0;
  double limit = 0;
  bool has_position = false;
  std::uint64_t position = 0;
  template <class A>
  void serialize(A& a) {
    a(cls, type, what, trace, pid, exitcode, limit, has_position, position);
  }
};

enum OutcomeKind : std::uint8_t { kOk = 1, kError = 2, kElements = 3, kElementsError = 4 };
// One outcome: of a whole task (kOk: `data` is the encoded result; kError), or of the elements
// `covered` of a chunk (kElements: `data` is the piece; kElementsError). `last`: the task has no
// outcome left after this one.
struct Outcome {
  std::uint64_t id = 0;
  std::uint8_t kind = kOk;
  bool last = true;
  Spans covered;
  std::int32_t pid = 0;
  std::uint64_t ns = 0;
  std::vector<std::byte> data;
  WireError error;
  template <class A>
  void serialize(A& a) {
    a(id, kind, last, covered, pid, ns, data, error);
  }
};

struct QueryMsg {
  std::uint64_t req = 0;
  bool cancel = false;  // false: running
  bool kill = false;    // cancel: CancelMode::kill_running
  std::vector<std::uint64_t> ids;
  template <class A>
  void serialize(A& a) {
    a(req, cancel, kill, ids);
  }
};

struct ReplyMsg {
  std::uint64_t req = 0;
  bool value = false;
  template <class A>
  void serialize(A& a) {
    a(req, value);
  }
};

// The message's kind, then its body: what travels.
template <class Body>
std::vector<std::byte> frame(Kind kind, const Body& body) {
  std::vector<std::byte> out(1 + mproc::encoded_size(body));
  Writer w(out.data(), out.data() + out.size());
  w.write_value(static_cast<std::uint8_t>(kind));
  mproc::encode(w, body);
  return out;
}
inline std::vector<std::byte> frame(Kind kind) {
  return std::vector<std::byte>{static_cast<std::byte>(kind)};
}

}  // namespace mproc::mpi::detail
