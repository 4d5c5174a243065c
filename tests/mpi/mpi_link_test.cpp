// mproc::mpi's Link (src/mpi/link.cpp): messages of every size across the piece boundaries, both
// ways at once, and what a peer's garbage does (a DecodeError naming it, never an allocation of a
// hostile size or a read past the message). Run under mpirun with 2 ranks; both run every test
// (rank 1 sends what rank 0 checks).
#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <mproc/errors.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mpi/link.hpp"

namespace {

using mproc::mpi::detail::Link;

int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

std::vector<std::byte> message(std::size_t n, int seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 13 + seed) & 0xff);
  return v;
}

// Each rank sends every size to the other, then receives every one: the sends must not wait for
// the receives (Isend), whatever the sizes.
TEST(MpiLink, EverySizeBothWaysAtOnce) {
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  for (std::size_t piece : {std::size_t{16}, std::size_t{1000}, std::size_t{0}}) {
    Link link(comm, piece);
    const std::size_t p = piece == 0 ? (std::size_t{1} << 30) : piece;
    std::vector<std::size_t> sizes{0, 1, 15, 16, 17, 999, 1000, 1001, 3 * 1000 + 5, 1 << 16};
    if (p < 100) sizes.push_back(p - 1);
    const int peer = 1 - rank();
    for (std::size_t i = 0; i < sizes.size(); ++i)
      link.send(peer, 5, message(sizes[i], static_cast<int>(i)));
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      int from = -1;
      std::vector<std::byte> got;
      std::size_t off = 9;
      link.receive(MPI_ANY_SOURCE, 5, from, got, off);
      EXPECT_EQ(from, peer);
      ASSERT_EQ(got.size() - off, sizes[i]) << "piece " << piece << " message " << i;
      EXPECT_EQ(std::vector<std::byte>(got.begin() + static_cast<std::ptrdiff_t>(off), got.end()),
                message(sizes[i], static_cast<int>(i)));
      EXPECT_EQ(off, sizes[i] + 1 <= p ? 1u : 0u) << "one piece: after the flag byte";
    }
    link.flush();
    EXPECT_FALSE(link.progress());
  }
  MPI_Barrier(comm);
  MPI_Comm_free(&comm);
}

// Rank 1 sends raw bytes; rank 0's Link must refuse each with a DecodeError.
void expect_refused(MPI_Comm comm, const std::vector<std::vector<std::byte>>& raw,
                    const std::string& says) {
  if (rank() == 1) {
    for (const auto& m : raw) MPI_Send(m.data(), static_cast<int>(m.size()), MPI_BYTE, 0, 6, comm);
  } else {
    Link link(comm, 0);
    int from = -1;
    std::vector<std::byte> got;
    std::size_t off = 0;
    try {
      link.receive(1, 6, from, got, off);
      ADD_FAILURE() << "accepted: " << says;
    } catch (const mproc::DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
    // Drain what the refused message left behind (pieces), so the next test starts clean.
    int flag = 1;
    while (flag) {
      MPI_Status st;
      MPI_Iprobe(1, 6, comm, &flag, &st);
      if (flag) {
        int n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        std::vector<std::byte> sink(static_cast<std::size_t>(n) + 1);
        MPI_Recv(sink.data(), n, MPI_BYTE, 1, 6, comm, MPI_STATUS_IGNORE);
      }
    }
  }
  MPI_Barrier(comm);
}

std::vector<std::byte> header(std::uint64_t size) {
  std::vector<std::byte> h(9);
  h[0] = std::byte{1};
  std::memcpy(h.data() + 1, &size, sizeof size);
  return h;
}

TEST(MpiLink, GarbageFromAPeerIsADecodeError) {
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  expect_refused(comm, {{}}, "has no valid header (0 bytes)");
  expect_refused(comm, {{std::byte{7}, std::byte{1}}}, "has no valid header (2 bytes)");
  expect_refused(comm, {{std::byte{1}, std::byte{2}, std::byte{3}}}, "has no valid header");
  expect_refused(comm, {header(std::uint64_t{1} << 62)}, "claims a size of 4611686018427387904");
  expect_refused(comm, {header(std::uint64_t(-1))}, "claims a size of 18446744073709551615");
  expect_refused(comm, {header(3)}, "claims a size of 3 bytes");
  expect_refused(comm, {header(100), message(200, 1)},
                 "has 200 bytes, with 100 of its message left");
  expect_refused(comm, {header(100), message(60, 1), message(60, 2)},
                 "has 60 bytes, with 40 of its message left");
  MPI_Comm_free(&comm);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ::testing::InitGoogleTest(&argc, argv);
  if (size != 2) {
    std::fprintf(stderr, "run under mpirun -np 2\n");
    MPI_Finalize();
    return 2;
  }
  const int failed = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
