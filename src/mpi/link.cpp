// Messages of any size over MPI (see link.hpp).
#include "mpi/link.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <mproc/errors.hpp>
#include <string>

namespace mproc::mpi::detail {
namespace {

constexpr std::size_t kMaxPiece = std::size_t{1} << 30;
constexpr std::size_t kHeadBytes = 1 + sizeof(std::uint64_t);

int count_of(std::size_t n) { return static_cast<int>(n); }  // n <= kMaxPiece

}  // namespace

Link::Link(MPI_Comm comm, std::size_t piece) noexcept : comm_(comm) { set_piece(piece); }

void Link::set_piece(std::size_t piece) noexcept {
  piece_ = piece == 0 ? kMaxPiece : std::clamp<std::size_t>(piece, 16, kMaxPiece);
}

Link::~Link() {
  // Sends still in flight are cancelled (the peer is gone, or the job ends).
  for (Out& o : out_)
    for (MPI_Request& r : o.reqs)
      if (r != MPI_REQUEST_NULL) {
        MPI_Cancel(&r);
        MPI_Request_free(&r);
      }
}

void Link::send(int dest, int tag, std::vector<std::byte> msg) {
  Out o;
  if (msg.size() + 1 <= piece_) {
    // One piece: the flag byte goes in front (the caller's frame leaves no room; one copy of a
    // small message).
    o.body.reserve(msg.size() + 1);
    o.body.push_back(std::byte{0});
    o.body.insert(o.body.end(), msg.begin(), msg.end());
    o.reqs.resize(1);
    MPI_Isend(o.body.data(), count_of(o.body.size()), MPI_BYTE, dest, tag, comm_, &o.reqs[0]);
  } else {
    o.head.resize(kHeadBytes);
    o.head[0] = std::byte{1};
    const std::uint64_t size = msg.size();
    std::memcpy(o.head.data() + 1, &size, sizeof size);
    o.body = std::move(msg);
    const std::size_t pieces = (o.body.size() + piece_ - 1) / piece_;
    o.reqs.resize(1 + pieces);
    MPI_Isend(o.head.data(), count_of(o.head.size()), MPI_BYTE, dest, tag, comm_, &o.reqs[0]);
    for (std::size_t i = 0; i < pieces; ++i) {
      const std::size_t at = i * piece_;
      const std::size_t n = std::min(piece_, o.body.size() - at);
      MPI_Isend(o.body.data() + at, count_of(n), MPI_BYTE, dest, tag, comm_, &o.reqs[1 + i]);
    }
  }
  out_.push_back(std::move(o));
}

void Link::take(const MPI_Status& probed, int& from, std::vector<std::byte>& out,
                std::size_t& offset) {
  from = probed.MPI_SOURCE;
  const int tag = probed.MPI_TAG;
  int count = 0;
  MPI_Get_count(&probed, MPI_BYTE, &count);
  out.resize(static_cast<std::size_t>(count));
  MPI_Recv(out.data(), count, MPI_BYTE, from, tag, comm_, MPI_STATUS_IGNORE);
  if (count >= 1 && out[0] == std::byte{0}) {
    offset = 1;
    return;
  }
  if (count != static_cast<int>(kHeadBytes) || out[0] != std::byte{1})
    throw DecodeError("mproc::mpi: a message from rank " + std::to_string(from) +
                      " has no valid header (" + std::to_string(count) + " bytes)");
  std::uint64_t size = 0;
  std::memcpy(&size, out.data() + 1, sizeof size);
  // A message in pieces is larger than one piece of at least 16 bytes, and no larger than this
  // machine could hold: anything else is a corrupt header, refused before allocating.
  if (size < 16 || size > (std::uint64_t{1} << 47))
    throw DecodeError("mproc::mpi: a message from rank " + std::to_string(from) +
                      " claims a size of " + std::to_string(size) + " bytes");
  out.clear();
  try {
    out.resize(static_cast<std::size_t>(size));
  } catch (const std::bad_alloc&) {
    throw DecodeError("mproc::mpi: no memory for a message of " + std::to_string(size) +
                      " bytes from rank " + std::to_string(from));
  }
  // Each piece is probed for its size: the sender's piece size is its own (MpiOptions).
  for (std::size_t at = 0; at < out.size();) {
    MPI_Status st;
    MPI_Probe(from, tag, comm_, &st);
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (got <= 0 || static_cast<std::size_t>(got) > out.size() - at)
      throw DecodeError("mproc::mpi: a piece from rank " + std::to_string(from) + " has " +
                        std::to_string(got) + " bytes, with " + std::to_string(out.size() - at) +
                        " of its message left");
    MPI_Recv(out.data() + at, got, MPI_BYTE, from, tag, comm_, MPI_STATUS_IGNORE);
    at += static_cast<std::size_t>(got);
  }
  offset = 0;
}

bool Link::try_receive(int source, int tag, int& from, std::vector<std::byte>& out,
                       std::size_t& offset) {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(source, tag, comm_, &flag, &st);
  if (!flag) return false;
  take(st, from, out, offset);
  return true;
}

void Link::receive(int source, int tag, int& from, std::vector<std::byte>& out,
                   std::size_t& offset) {
  MPI_Status st;
  MPI_Probe(source, tag, comm_, &st);
  take(st, from, out, offset);
}

bool Link::progress() {
  while (!out_.empty()) {
    Out& o = out_.front();
    int done = 0;
    MPI_Testall(static_cast<int>(o.reqs.size()), o.reqs.data(), &done, MPI_STATUSES_IGNORE);
    if (!done) break;
    out_.pop_front();
  }
  return !out_.empty();
}

void Link::flush() {
  for (Out& o : out_)
    MPI_Waitall(static_cast<int>(o.reqs.size()), o.reqs.data(), MPI_STATUSES_IGNORE);
  out_.clear();
}

}  // namespace mproc::mpi::detail
