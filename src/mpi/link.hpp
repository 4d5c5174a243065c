// mpi/link.hpp — messages of any size over MPI, without blocking the sender (private to
// mproc::mpi).
//
// A message is a byte vector (wire.hpp). One of at most `piece` bytes travels as one MPI message:
// a flag byte 0, then its bytes. A larger one travels as a header (flag 1, its size as 8 bytes)
// followed by its bytes in pieces of `piece` bytes, received straight into the message's buffer:
// MPI counts are int, so no single MPI message exceeds `piece` (at most 1 GiB). The pieces of one
// message follow its header on the same (source, tag), and MPI keeps them in order; the
// receiver probes each for its size.
//
// Sends never block: each is an MPI_Isend whose buffer the Link keeps until MPI reports it done
// (progress()), so two ranks sending each other large messages at once cannot deadlock. Receives
// poll (MPI_Iprobe); a large message's pieces are then received with MPI_Recv (the sender has
// posted them all already).
//
// Not thread-safe: one thread of the process uses the Link (MPI_THREAD_SERIALIZED is enough).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <deque>
#include <vector>

namespace mproc::mpi::detail {

class Link {
 public:
  Link(MPI_Comm comm, std::size_t piece) noexcept;
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // The largest MPI message this side sends (0: 1 GiB; at least 16 bytes). The receiver needs
  // not know it.
  void set_piece(std::size_t piece) noexcept;
  // Starts sending `msg` to `dest` on `tag`; the Link keeps it until it has been sent.
  void send(int dest, int tag, std::vector<std::byte> msg);
  // A message from `source` (MPI_ANY_SOURCE: any) on `tag`, if one has arrived: true, with its
  // sender in `from` and its bytes in `out` (the bytes of a one-piece message start at
  // out[offset]: offset is 1, or 0 for a message that came in pieces).
  bool try_receive(int source, int tag, int& from, std::vector<std::byte>& out,
                   std::size_t& offset);
  // The same, waiting until one arrives.
  void receive(int source, int tag, int& from, std::vector<std::byte>& out, std::size_t& offset);
  // Frees the sends that are done. True while some are not.
  bool progress();
  // Waits until every send is done.
  void flush();
  [[nodiscard]] bool sending() const noexcept { return !out_.empty(); }

 private:
  struct Out {
    std::vector<std::byte> head;  // the flag (and size) of a message in pieces
    std::vector<std::byte> body;
    std::vector<MPI_Request> reqs;
  };
  void take(const MPI_Status& st, int& from, std::vector<std::byte>& out, std::size_t& offset);

  MPI_Comm comm_;
  std::size_t piece_;
  std::deque<Out> out_;
};

}  // namespace mproc::mpi::detail
