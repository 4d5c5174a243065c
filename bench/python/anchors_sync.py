"""CPython anchors of the lock and event groups: multiprocessing.Lock, Event and Queue.

Each workload follows the protocol of bench/protocols.hpp step for step, so that its row sits beside
mproc's and the floor's. Run it alone with `python3 bench/python/anchors_sync.py`, or through
bench/compare.py.
"""

import os

from harness import CTX, LoopRunner, PairRunner, main, workload


@workload("lock.uncontended/python", "lock.uncontended", "multiprocessing.Lock: with lock: pass")
def lock_with():
    lock = CTX.Lock()

    def body(n):
        for _ in range(n):
            with lock:
                pass

    return LoopRunner(body)


@workload(
    "lock.uncontended/python.acquire_release",
    "lock.uncontended",
    "multiprocessing.Lock: lock.acquire(); lock.release()",
    primary=False,
)
def lock_acquire_release():
    lock = CTX.Lock()

    def body(n):
        for _ in range(n):
            lock.acquire()
            lock.release()

    return LoopRunner(body)


def _handoff_side(lock, turns, side, limit):
    # bench/protocols.hpp lock_handoff_side: lock; take the turn if it is ours; unlock; yield if not.
    while True:
        with lock:
            c = turns.value
            if c >= limit:
                return
            mine = c % 2 == side
            if mine:
                turns.value = c + 1
        if not mine:
            os.sched_yield()


@workload("lock.handoff/python", "lock.handoff", "multiprocessing.Lock + Value('Q', lock=False) turn")
def lock_handoff():
    lock = CTX.Lock()
    turns = CTX.Value("Q", 0, lock=False)  # guarded by `lock`, as in C++; no second lock

    def before():
        turns.value = 0

    return PairRunner(
        self_=lambda n: _handoff_side(lock, turns, 0, n),
        partner=lambda n: _handoff_side(lock, turns, 1, n),
        before=before,
        pin="split",
    )


@workload("event.pingpong/python", "event.pingpong", "multiprocessing.Event set/wait/clear")
def event_pingpong():
    e1, e2 = CTX.Event(), CTX.Event()

    def a(n):
        for _ in range(n):
            e1.set()
            e2.wait()
            e2.clear()

    def b(n):
        for _ in range(n):
            e1.wait()
            e1.clear()
            e2.set()

    return PairRunner(self_=a, partner=b, pin="same")


def _close_queues(*queues):
    for q in queues:
        q.close()
        q.join_thread()


@workload(
    "event.pingpong/python.queue",
    "event.pingpong",
    "two multiprocessing.Queue: put / get round trip",
    primary=False,
)
def queue_pingpong():
    q1, q2 = CTX.Queue(), CTX.Queue()

    def a(n):
        for _ in range(n):
            q1.put(1)
            q2.get()

    def b(n):
        for _ in range(n):
            q1.get()
            q2.put(1)

    return PairRunner(self_=a, partner=b, pin="same", cleanup=lambda: _close_queues(q1, q2))


if __name__ == "__main__":
    raise SystemExit(main())
