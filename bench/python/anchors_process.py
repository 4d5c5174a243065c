"""CPython anchor of the process group: multiprocessing's fork Process, start() + join().

Run it alone with `python3 bench/python/anchors_process.py`, or through bench/compare.py.
"""

from harness import CTX, LoopRunner, main, workload


def _noop():
    pass


@workload("process.start_join/python", "process.start_join", 'get_context("fork").Process(noop) start + join')
def process_start_join():
    def body(n):
        for _ in range(n):
            p = CTX.Process(target=_noop)
            p.start()
            p.join()
            if p.exitcode != 0:
                raise RuntimeError("child exited with %r" % (p.exitcode,))

    return LoopRunner(body)


if __name__ == "__main__":
    raise SystemExit(main())
