// Uses an installed mproc::mpi: a map over the ranks of an MPI job (run without mpirun here, it
// runs on a local pool of this machine's cores).
#include <cstdio>
#include <mproc/mpi.hpp>
#include <vector>

int twice(int x) { return 2 * x; }

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::mpi::Pool pool;
  const std::vector<int> v = pool.map(twice, std::vector<int>{1, 2, 3});
  std::printf("launched by mpirun: %s, workers %d, results %d %d %d\n",
              mproc::mpi::launched() ? "yes" : "no", pool.processes(), v[0], v[1], v[2]);
  return v == std::vector<int>{2, 4, 6} ? 0 : 1;
}
