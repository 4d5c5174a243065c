"""The mpi4py.futures anchors of the MPI groups (bench/mpi_bench.cpp): MPIPoolExecutor over the ranks
of an MPI job, step for step as mproc::mpi::Pool's rows.

It must run under mpi4py.futures' own launcher, as bench/compare.py runs it:

    mpiexec -n 2 python3 -m mpi4py.futures bench/python/anchors_mpi.py --serve

Rank 0 runs this script; the other ranks are the executor's workers, so `-n 2` gives ONE worker
(rank 0 is the master and runs no task), where mproc::mpi::Pool with 2 ranks has a worker on each.
The rows say so in their labels, and bench/compare.py shows them as measured. `--list` needs no
MPI (it only prints the rows); a workload made outside `-m mpi4py.futures` is an error, not an
executor that spawns its own workers (MPI_Comm_spawn: not the layout being compared).

Python is Debian's (python3-mpi4py): bench/compare.py picks a python3 that imports mpi4py.futures.
"""

import os
import time

from harness import LoopRunner, ScaledRunner, main, workload

MAP_ITEMS = 10**5  # mpi_bench.cpp kMpiMapItems
CPU_TASKS = 16  # mpi_bench.cpp kMpiCpuTasks
CPU_TASK_NS = 10_000_000  # mpi_bench.cpp kMpiCpuTaskNs
ONE_WORKER = "mpiexec -n 2: 1 worker, rank 0 is the master"


def _noop():
    pass


def _identity(x):
    return x


def _burn_cpu(ns):
    # protocols.hpp burn_cpu (and anchors_pool.py): busy until `ns` of this thread's CPU time have
    # passed, so a task lasts the same in C++ and in Python.
    end = time.thread_time_ns() + ns
    x = 0
    while time.thread_time_ns() < end:
        for i in range(256):
            x ^= i
    return x


# One executor for every row made in this job (mpi4py.futures' shared pool: the workers are the
# job's other ranks), made on first use, shut down when the last row using it is closed.
_executor = None
_users = 0


def _acquire():
    global _executor, _users
    if _executor is None:
        if "OMPI_COMM_WORLD_SIZE" not in os.environ and "PMI_RANK" not in os.environ and "PMIX_RANK" not in os.environ:
            raise RuntimeError("not under an MPI launcher: run mpiexec -n 2 python3 -m mpi4py.futures %s --serve"
                               % os.path.relpath(__file__))
        from mpi4py.futures import MPIPoolExecutor

        ex = MPIPoolExecutor()
        ex.bootup(wait=True)  # the workers are up before any clock runs
        if ex.submit(_noop).result() is not None:
            raise RuntimeError("a no-op returned something")
        _executor = ex
    _users += 1
    return _executor


def _release():
    global _executor, _users
    _users -= 1
    if _users == 0 and _executor is not None:
        ex, _executor = _executor, None
        ex.shutdown(wait=True)


def _workers(ex):
    n = getattr(ex, "num_workers", None)
    if n is None:
        from mpi4py import MPI

        n = MPI.COMM_WORLD.Get_size() - 1
    return max(1, n)


def _noop_tasks():
    ex = _acquire()

    def body(n):
        futures = [ex.submit(_noop) for _ in range(n)]
        for f in futures:
            f.result()

    return LoopRunner(body, cleanup=_release)


@workload(
    "mpi.submit_noop/python",
    "mpi.submit_noop",
    "mpi4py.futures MPIPoolExecutor submit(noop) x n, then result() each (%s)" % ONE_WORKER,
)
def submit_noop():
    return _noop_tasks()


# The same calls: mpi4py.futures' rank 0 never runs a task, so its every task crosses MPI, as in
# mproc's row with MpiOptions::rank0_works false.
@workload(
    "mpi.remote_noop/python",
    "mpi.remote_noop",
    "mpi4py.futures MPIPoolExecutor submit(noop) x n, then result() each (%s)" % ONE_WORKER,
)
def remote_noop():
    return _noop_tasks()


@workload(
    "mpi.map_1e5/python",
    "mpi.map_1e5",
    "mpi4py.futures MPIPoolExecutor map(identity, range(10^5), chunksize as multiprocessing.Pool.map "
    "chooses: 10^5 / (4 x workers), 25000) (%s)" % ONE_WORKER,
)
def map_1e5():
    ex = _acquire()
    chunksize = -(-MAP_ITEMS // (4 * _workers(ex)))

    def once():
        t0 = time.perf_counter_ns()
        v = list(ex.map(_identity, range(MAP_ITEMS), chunksize=chunksize))
        t = (time.perf_counter_ns() - t0) * 1e-9
        if len(v) != MAP_ITEMS or v[-1] != MAP_ITEMS - 1:
            raise RuntimeError("mpi.map_1e5: wrong results")
        return t

    return ScaledRunner(MAP_ITEMS, 1 << 62, once, cleanup=_release)


@workload(
    "mpi.cpu_bound/python",
    "mpi.cpu_bound",
    "mpi4py.futures MPIPoolExecutor map(burn 10 ms, 16 tasks, chunksize=1) (%s)" % ONE_WORKER,
)
def cpu_bound():
    ex = _acquire()
    tasks = [CPU_TASK_NS] * CPU_TASKS

    def once():
        t0 = time.perf_counter_ns()
        v = list(ex.map(_burn_cpu, tasks))
        t = (time.perf_counter_ns() - t0) * 1e-9
        if len(v) != len(tasks):
            raise RuntimeError("mpi.cpu_bound: results missing")
        return t

    return ScaledRunner(len(tasks), 1 << 62, once, cleanup=_release)


@workload(
    "mpi.cpu_bound/python.serial",
    "mpi.cpu_bound",
    "serial: the same 16 tasks of burn 10 ms called in a loop in rank 0 (the speedup's base)",
    primary=False,
)
def cpu_bound_serial():
    tasks = [CPU_TASK_NS] * CPU_TASKS

    def once():
        t0 = time.perf_counter_ns()
        v = [_burn_cpu(ns) for ns in tasks]
        t = (time.perf_counter_ns() - t0) * 1e-9
        if len(v) != len(tasks):
            raise RuntimeError("mpi.cpu_bound: results missing")
        return t

    return ScaledRunner(len(tasks), 1 << 62, once)


if __name__ == "__main__":
    raise SystemExit(main())
