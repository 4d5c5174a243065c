"""CPython anchors of the pool groups: multiprocessing.Pool and concurrent.futures.ProcessPoolExecutor.

Each workload makes its pool once (fork context, one worker per usable CPU) when its runner is made,
outside the clock, and follows bench/workloads_pool.cpp step for step. Rows whose unit of work is
bigger than one op run under ScaledRunner, as bench/protocols.hpp's scaled_runner. Run it alone with
`python3 bench/python/anchors_pool.py`, or through bench/compare.py.
"""

import concurrent.futures
import itertools
import os
import time

from harness import CTX, LoopRunner, ScaledRunner, main, workload

PROCESSES = len(os.sched_getaffinity(0))
MAP_ITEMS = 10**6  # pool.map_noop_1e6: items per map
CPU_TASKS = 64  # protocols.hpp kCpuTasks
CPU_TASK_NS = 5_000_000  # protocols.hpp kCpuTaskNs
CPU_UNEVEN_NS = [1_000_000, 2_000_000, 4_000_000, 8_000_000, 16_000_000]  # protocols.hpp kCpuUnevenNs
FIRST_RESULT_CALLS = 20  # workloads_pool.cpp kFirstResultCalls


def _noop():
    pass


def _identity(x):
    return x


def _burn_cpu(ns):
    # protocols.hpp burn_cpu: busy until `ns` of this thread's CPU time have passed.
    end = time.thread_time_ns() + ns
    x = 0
    while time.thread_time_ns() < end:
        for i in range(256):
            x ^= i
    return x


def _shutdown(pool):
    if isinstance(pool, concurrent.futures.Executor):
        pool.shutdown(wait=True)
    else:
        pool.terminate()
        pool.join()


def _pool():
    return CTX.Pool(PROCESSES)


@workload("pool.apply_async_noop/python", "pool.apply_async_noop", "multiprocessing.Pool apply_async(noop) x n, then get() each")
def apply_async_noop():
    pool = _pool()

    def body(n):
        results = [pool.apply_async(_noop) for _ in range(n)]
        for r in results:
            r.get()

    return LoopRunner(body, cleanup=lambda: _shutdown(pool))


@workload(
    "pool.apply_async_noop/python.executor",
    "pool.apply_async_noop",
    "ProcessPoolExecutor submit(noop) x n, then result() each",
    primary=False,
)
def executor_submit_noop():
    ex = concurrent.futures.ProcessPoolExecutor(PROCESSES, mp_context=CTX)
    ex.submit(_noop).result()  # starts the workers outside the clock

    def body(n):
        futures = [ex.submit(_noop) for _ in range(n)]
        for f in futures:
            f.result()

    return LoopRunner(body, cleanup=lambda: _shutdown(ex))


def _imap_identity(chunksize):
    # workloads_pool.cpp imap_identity_workload: imap(identity, range(n)) consumed in order.
    pool = _pool()

    def body(n):
        expect = 0
        for r in pool.imap(_identity, range(n), chunksize):
            if r != expect:
                raise RuntimeError("a result out of order")
            expect += 1
        if expect != n:
            raise RuntimeError("results missing")

    return LoopRunner(body, cleanup=lambda: _shutdown(pool))


@workload("pool.imap_chunk1/python", "pool.imap_chunk1", "multiprocessing.Pool imap(identity, range(n), 1), consumed in order")
def imap_chunk1():
    return _imap_identity(1)


@workload(
    "pool.imap_adaptive/python",
    "pool.imap_adaptive",
    "multiprocessing.Pool imap(identity, range(n)) (default chunksize 1), consumed in order",
)
def imap_default():
    return _imap_identity(1)  # Python's default chunksize


@workload("pool.map_noop_1e6/python", "pool.map_noop_1e6", "multiprocessing.Pool map(identity, range(10**6)), automatic chunksize")
def map_noop_1e6():
    pool = _pool()

    def once():
        t0 = time.perf_counter_ns()
        v = pool.map(_identity, range(MAP_ITEMS))
        t = (time.perf_counter_ns() - t0) * 1e-9
        if len(v) != MAP_ITEMS or v[-1] != MAP_ITEMS - 1:
            raise RuntimeError("wrong results")
        return t

    return ScaledRunner(MAP_ITEMS, 1 << 62, once, cleanup=lambda: _shutdown(pool))


def _cpu_bound(tasks):
    # workloads_pool.cpp cpu_bound_workload: map(burn_cpu, tasks, 1) over the group's batch.
    pool = _pool()

    def once():
        t0 = time.perf_counter_ns()
        v = pool.map(_burn_cpu, tasks, 1)
        t = (time.perf_counter_ns() - t0) * 1e-9
        if len(v) != len(tasks):
            raise RuntimeError("results missing")
        return t

    return ScaledRunner(len(tasks), 1 << 62, once, cleanup=lambda: _shutdown(pool))


@workload("pool.cpu_bound/python", "pool.cpu_bound", "multiprocessing.Pool map(burn 5 ms, 64 tasks, chunksize=1)")
def cpu_bound():
    return _cpu_bound([CPU_TASK_NS] * CPU_TASKS)  # protocols.hpp cpu_bound_tasks


@workload(
    "pool.cpu_bound_uneven/python",
    "pool.cpu_bound_uneven",
    "multiprocessing.Pool map(burn 1/2/4/8/16 ms in turn, 64 tasks, chunksize=1)",
)
def cpu_bound_uneven():
    # protocols.hpp cpu_bound_uneven_tasks
    return _cpu_bound([CPU_UNEVEN_NS[i % len(CPU_UNEVEN_NS)] for i in range(CPU_TASKS)])


@workload(
    "pool.imap_uneven/python",
    "pool.imap_uneven",
    "multiprocessing.Pool imap_unordered(burn 1/2/4/8/16 ms in turn, 64 tasks) (default chunksize 1)",
)
def imap_uneven():
    tasks = [CPU_UNEVEN_NS[i % len(CPU_UNEVEN_NS)] for i in range(CPU_TASKS)]
    pool = _pool()

    def once():
        t0 = time.perf_counter_ns()
        got = sum(1 for _ in pool.imap_unordered(_burn_cpu, tasks))
        t = (time.perf_counter_ns() - t0) * 1e-9
        if got != len(tasks):
            raise RuntimeError("results missing")
        return t

    return ScaledRunner(len(tasks), 1 << 62, once, cleanup=lambda: _shutdown(pool))


@workload(
    "pool.imap_first_result/python",
    "pool.imap_first_result",
    "multiprocessing.Pool imap(identity, unbounded generator), then next()",
)
def imap_first_result():
    pool = _pool()

    def once():
        stop = []

        def source():
            # Unbounded, like itertools.count(), but ends once the first result is in, so that the
            # tasks Pool's task thread has already sent can be drained outside the clock.
            for i in itertools.count():
                if stop:
                    return
                yield i

        t0 = time.perf_counter_ns()
        results = pool.imap(_identity, source())
        first = next(results)
        t = (time.perf_counter_ns() - t0) * 1e-9
        stop.append(True)
        if first != 0:
            raise RuntimeError("wrong first result")
        for _ in results:  # drain, untimed
            pass
        return t

    return ScaledRunner(1, FIRST_RESULT_CALLS, once, cleanup=lambda: _shutdown(pool))


if __name__ == "__main__":
    raise SystemExit(main())
