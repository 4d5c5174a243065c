"""CPython anchors of the futures groups: concurrent.futures.as_completed and Future.cancel with a
ProcessPoolExecutor (fork context, one worker per usable CPU), step for step as
bench/workloads_futures.cpp. Run it alone with `python3 bench/python/anchors_futures.py`, or
through bench/compare.py.
"""

import concurrent.futures
import os
import threading

from harness import CTX, LoopRunner, main, workload

PROCESSES = len(os.sched_getaffinity(0))


def _noop():
    pass


def _wait_for(event):
    event.wait()


@workload(
    "pool.as_completed_noop/python",
    "pool.as_completed_noop",
    "ProcessPoolExecutor submit(noop) x n, then concurrent.futures.as_completed over the n futures",
)
def as_completed_noop():
    ex = concurrent.futures.ProcessPoolExecutor(PROCESSES, mp_context=CTX)
    ex.submit(_noop).result()  # starts the workers outside the clock

    def body(n):
        futures = [ex.submit(_noop) for _ in range(n)]
        seen = 0
        for f in concurrent.futures.as_completed(futures):
            f.result()
            seen += 1
        if seen != n:
            raise RuntimeError("futures missing")

    return LoopRunner(body, cleanup=lambda: ex.shutdown(wait=True))


@workload(
    "pool.cancel_queued/python",
    "pool.cancel_queued",
    "ProcessPoolExecutor submit(noop) then cancel(), every worker busy, x n",
)
def cancel_queued():
    manager = CTX.Manager()
    gate = manager.Event()
    ex = concurrent.futures.ProcessPoolExecutor(PROCESSES, mp_context=CTX)
    # Busy workers, and the executor's call queue (workers + 1 items) filled, so that the futures
    # submitted next stay pending (cancellable).
    busy = [ex.submit(_wait_for, gate) for _ in range(2 * PROCESSES + 1)]

    def body(n):
        for _ in range(n):
            f = ex.submit(_noop)
            if not f.cancel():
                raise RuntimeError("a queued task was not cancelled")

    def cleanup():
        gate.set()
        for b in busy:
            b.result()
        ex.shutdown(wait=True)
        manager.shutdown()

    return LoopRunner(body, cleanup=cleanup)


if __name__ == "__main__":
    raise SystemExit(main())
