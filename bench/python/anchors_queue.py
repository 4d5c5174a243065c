"""CPython anchors of the queue and pipe groups: multiprocessing.Queue, SimpleQueue and Pipe.

Each workload follows the protocol of bench/protocols.hpp (queues section) step for step: for the
throughput rows the producers run in forked partner processes and the consumers in this one (or
the other way round for spmc), the clock running from the start of the transfer until every side
has finished, and one op is one message. A 64-byte message is a 64-byte `bytes` object, a 64 KiB
message a 65536-byte one. Run it alone with `python3 bench/python/anchors_queue.py`, or through
bench/compare.py.
"""

from harness import CTX, PairRunner, TeamRunner, main, workload

MSG64 = bytes(64)
MSG64K = bytes(64 * 1024)
BATCH = 256  # protocols.hpp kBatch
FANOUT = 4  # producers of mpsc, consumers of spmc


def _share(n, index, count):
    # harness.hpp share(): n / count each, the first n % count one more.
    return n // count + (1 if index < n % count else 0)


def _closing(*queues):
    """The cleanup of a runner: closes its queues and joins their feeder threads."""

    def cleanup():
        for q in queues:
            q.close()
            if hasattr(q, "join_thread"):
                q.join_thread()

    return cleanup


def _produce(q, msg):
    def body(n):
        put = q.put
        for _ in range(n):
            put(msg)

    return body


def _consume(q, size):
    def body(n):
        get = q.get
        for _ in range(n):
            m = get()
        if n and len(m) != size:
            raise RuntimeError("a message of the wrong size")

    return body


def _spsc(q, msg):
    return PairRunner(self_=_consume(q, len(msg)), partner=_produce(q, msg), pin="split", cleanup=_closing(q))


@workload("queue.spsc_64B/python", "queue.spsc_64B", "multiprocessing.Queue put / get of 64-byte bytes")
def spsc_64():
    return _spsc(CTX.Queue(), MSG64)


@workload(
    "queue.spsc_64B/python.simple",
    "queue.spsc_64B",
    "multiprocessing.SimpleQueue put / get of 64-byte bytes",
    primary=False,
)
def spsc_64_simple():
    return _spsc(CTX.SimpleQueue(), MSG64)


@workload(
    "queue.spsc_64B_batch/python",
    "queue.spsc_64B_batch",
    "multiprocessing.Queue put / get of a list of up to 256 64-byte bytes (no put_many)",
)
def spsc_64_batch():
    q = CTX.Queue()
    # 256 distinct objects: pickle would write one object repeated in a list only once.
    full = [bytes([j]) * 64 for j in range(BATCH)]

    def produce(n):
        i = 0
        while i < n:
            k = min(BATCH, n - i)
            q.put(full if k == BATCH else full[:k])
            i += k

    def consume(n):
        i = 0
        while i < n:
            i += len(q.get())
        if i != n:
            raise RuntimeError("got %d messages, not %d" % (i, n))

    return PairRunner(self_=consume, partner=produce, pin="split", cleanup=_closing(q))


@workload("queue.mpsc_64B/python", "queue.mpsc_64B", "multiprocessing.Queue put / get, 4 producers")
def mpsc_64():
    q = CTX.Queue()
    consume = _consume(q, len(MSG64))
    put = _produce(q, MSG64)
    return TeamRunner(self_=consume, partner=lambda i, n: put(_share(n, i, FANOUT)), partners=FANOUT, pin="none",
                      cleanup=_closing(q))


@workload("queue.spmc_64B/python", "queue.spmc_64B", "multiprocessing.Queue put / get, 4 consumers")
def spmc_64():
    q = CTX.Queue()
    get = _consume(q, len(MSG64))
    return TeamRunner(self_=_produce(q, MSG64), partner=lambda i, n: get(_share(n, i, FANOUT)), partners=FANOUT,
                      pin="none", cleanup=_closing(q))


@workload("queue.spsc_64KiB/python", "queue.spsc_64KiB", "multiprocessing.Queue put / get of 64 KiB bytes")
def spsc_64k():
    return _spsc(CTX.Queue(), MSG64K)


@workload(
    "queue.roundtrip/python",
    "queue.roundtrip",
    "two multiprocessing.Queue, 64-byte bytes: put q1, get q2 / get q1, put q2",
)
def queue_roundtrip():
    q1, q2 = CTX.Queue(), CTX.Queue()

    def a(n):
        for _ in range(n):
            q1.put(MSG64)
            q2.get()

    def b(n):
        for _ in range(n):
            q2.put(q1.get())

    return PairRunner(self_=a, partner=b, pin="same", cleanup=_closing(q1, q2))


@workload("pipe.roundtrip/python", "pipe.roundtrip", "multiprocessing.Pipe() send / recv of an int")
def pipe_roundtrip():
    ca, cb = CTX.Pipe()

    def a(n):
        for i in range(n):
            ca.send(i)
            if ca.recv() != i:
                raise RuntimeError("the answer is not the value sent")

    def b(n):
        for _ in range(n):
            cb.send(cb.recv())

    return PairRunner(self_=a, partner=b, pin="same", cleanup=_closing(ca, cb))


if __name__ == "__main__":
    raise SystemExit(main())
