"""CPython anchors of the start-method groups: multiprocessing's Process and Pool under each method.

Rows (bench/workloads_start.cpp has mproc's, bench/floors_start.cpp the floors):

    process.start_join_spawn/python        get_context("spawn").Process(noop) start + join
    process.start_join_forkserver/python   the same with "forkserver", the server started first
    process.forkserver_first_start/python  the first forkserver start: the server stopped before
                                           each (untimed), so that each start spawns it again
    pool.lifecycle_<method>/python         ctx.Pool(2), apply(add_one, (41,)), close(), join()

(process.start_join/python, the fork row, is in anchors_process.py.) Run it alone with
`python3 bench/python/anchors_start.py`, or through bench/compare.py. Under spawn and forkserver
the children import this file again as __mp_main__; main() runs only when it is the program.
"""

import multiprocessing
import multiprocessing.forkserver
import time

from harness import LoopRunner, ScaledRunner, main, workload

FIRST_START_CALLS = 1 << 62  # one first start per op; the harness's count decides


def _noop():
    pass


def _add_one(x):
    return x + 1


def _start_join(ctx):
    p = ctx.Process(target=_noop)
    p.start()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError("child exited with %r" % (p.exitcode,))


def _start_join_row(method):
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        _start_join(ctx)  # the server starts here, outside the clock

    def body(n):
        for _ in range(n):
            _start_join(ctx)

    return LoopRunner(body)


@workload("process.start_join_spawn/python", "process.start_join_spawn", 'get_context("spawn").Process(noop) start + join')
def start_join_spawn():
    return _start_join_row("spawn")


@workload(
    "process.start_join_forkserver/python",
    "process.start_join_forkserver",
    'get_context("forkserver").Process(noop) start + join, server already running',
)
def start_join_forkserver():
    return _start_join_row("forkserver")


@workload(
    "process.forkserver_first_start/python",
    "process.forkserver_first_start",
    'first get_context("forkserver").Process(noop) start + join: starts the server '
    "(forkserver._forkserver._stop() before each, untimed)",
)
def forkserver_first_start():
    ctx = multiprocessing.get_context("forkserver")
    server = multiprocessing.forkserver._forkserver

    def once():
        server._stop()  # CPython's own test hook: the next start spawns a new server
        t0 = time.perf_counter_ns()
        _start_join(ctx)
        return (time.perf_counter_ns() - t0) * 1e-9

    return ScaledRunner(1, FIRST_START_CALLS, once, cleanup=server._stop)


def _pool_lifecycle_row(method):
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        _start_join(ctx)  # the server starts here, outside the clock

    def body(n):
        for _ in range(n):
            pool = ctx.Pool(2)
            r = pool.apply(_add_one, (41,))
            pool.close()
            pool.join()
            if r != 42:
                raise RuntimeError("wrong result %r" % (r,))

    return LoopRunner(body)


for _method in ("fork", "spawn", "forkserver"):
    workload(
        "pool.lifecycle_%s/python" % _method,
        "pool.lifecycle_%s" % _method,
        'get_context("%s").Pool(2), apply(add_one, (41,)), close(), join()' % _method,
    )((lambda m: lambda: _pool_lifecycle_row(m))(_method))


if __name__ == "__main__":
    raise SystemExit(main())
