"""The Python side of mproc's benchmarks: CPython anchors as rows that bench/compare.py runs.

An anchor script registers workloads with @workload and calls main(). A workload's `make()` builds
a runner once; `runner.run(n)` does n operations and returns the seconds they took. The program
speaks the command line of the C++ `bench` (bench/main.cpp):

    --list               one JSON line per workload
    --serve [--pin P]    reads "make NAME" and "run NAME N" lines on stdin, answers each with one
                         JSON line ("made", "time" with "seconds", or "error"); at the end of input
                         the runners are closed, last made first

How many iterations, how often and in which order is bench/compare.py's policy, for these rows and
the C++ ones alike (docs/benchmarks.md). A two-process runner pins its processes as the C++ one
does (TeamRunner's `pin`; --pin overrides).
"""

import argparse
import ctypes
import json
import multiprocessing
import os
import signal
import sys
import time

# Every anchor uses the fork start method explicitly (the default on Linux up to Python 3.13).
CTX = multiprocessing.get_context("fork")

_WORKLOADS = {}
_INITIAL_CPUS = sorted(os.sched_getaffinity(0))
_pin_override = None


def workload(name, group, label, primary=True):
    """Registers `make()` (which returns a runner) as the workload `name`."""

    def register(make):
        _WORKLOADS[name] = dict(name=name, group=group, impl="python", label=label, primary=primary, make=make)
        return make

    return register


def _pin_to(cpu):
    os.sched_setaffinity(0, _INITIAL_CPUS if cpu is None else {cpu})


class LoopRunner:
    """Runs body(n) in this process; close() runs `cleanup` (closing queues, shutting a pool down)."""

    def __init__(self, body, cleanup=None):
        self._body = body
        self._cleanup = cleanup

    def run(self, n):
        t0 = time.perf_counter_ns()
        self._body(n)
        return (time.perf_counter_ns() - t0) * 1e-9

    def close(self):
        if self._cleanup is not None:
            self._cleanup()


class ScaledRunner(LoopRunner):
    """bench/protocols.hpp's scaled_runner: once() does `per` ops and returns the seconds to count;
    run(n) makes ceil(n / per) calls, at most `cap`, and scales the counted time to n ops."""

    def __init__(self, per, cap, once, cleanup=None):
        super().__init__(None, cleanup)
        self._per, self._cap, self._once = per, cap, once

    def run(self, n):
        calls = min(max(1, -(-n // self._per)), self._cap)
        t = sum(self._once() for _ in range(calls))
        return t * n / (calls * self._per)


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: a partner stuck in a broken protocol dies with the harness.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _partner_loop(conn, other_end, partner, cpu):
    other_end.close()
    _die_with_parent()
    _pin_to(cpu)  # None: every CPU (this process may have been forked from a pinned one)
    while True:
        try:
            n = conn.recv()
        except EOFError:
            return
        if n is None:
            return
        try:
            partner(n)
        except BaseException as e:  # report, then leave: the parent raises
            conn.send("partner failed: %r" % (e,))
            return
        conn.send("ok")


class TeamRunner:
    """This process and `partners` partners forked once, as bench/harness.hpp's team_runner.

    For each run: before() runs here while the partners idle; the clock starts; partner `i` is told
    to run partner(i, n) while this process runs self_(n); the clock stops when all are done.
    `pin`: "split" puts this process on the first CPU and the partners on the next ones in turn,
    "same" all on the first, "none" leaves placement to the scheduler (harness.cpp's team_cpus).
    """

    def __init__(self, self_, partner, partners=1, before=None, pin="none", cleanup=None):
        self._self, self._before, self._cleanup = self_, before, cleanup
        pin = _pin_override or pin
        if pin == "none" or not _INITIAL_CPUS:
            cpus = [None] * (partners + 1)
        elif pin == "same":
            cpus = [_INITIAL_CPUS[0]] * (partners + 1)
        else:
            cpus = [_INITIAL_CPUS[i % len(_INITIAL_CPUS)] for i in range(partners + 1)]
        self._cpu = cpus[0]
        self._conns, self._procs = [], []
        try:
            for i in range(partners):
                conn, child_end = CTX.Pipe()
                call = (lambda i: lambda n: partner(i, n))(i)
                proc = CTX.Process(target=_partner_loop, args=(child_end, conn, call, cpus[i + 1]), daemon=True)
                proc.start()
                child_end.close()
                self._conns.append(conn)
                self._procs.append(proc)
        except BaseException:
            self.close()
            raise

    def run(self, n):
        _pin_to(self._cpu)
        if self._before is not None:
            self._before()
        t0 = time.perf_counter_ns()
        for conn in self._conns:
            conn.send(n)
        self._self(n)
        replies = [conn.recv() for conn in self._conns]
        t1 = time.perf_counter_ns()
        for reply in replies:
            if reply != "ok":
                raise RuntimeError(reply)
        return (t1 - t0) * 1e-9

    def close(self):
        try:
            for conn in self._conns:
                try:
                    conn.send(None)
                except OSError:
                    pass
            for proc in self._procs:
                proc.join(1.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            for conn in self._conns:
                conn.close()
            self._conns, self._procs = [], []
        finally:
            if self._cleanup is not None:
                self._cleanup()


def PairRunner(self_, partner, before=None, pin="split", cleanup=None):
    """Two processes, as bench/harness.hpp's pair_runner: a TeamRunner with one partner."""
    return TeamRunner(self_, lambda _, n: partner(n), 1, before, pin, cleanup)


def _serve():
    made = []  # [name, runner or None (failed)], in the order made

    def reply(**obj):
        print(json.dumps(obj), flush=True)

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd, name = words[0], words[1] if len(words) > 1 else ""
        try:
            if cmd == "make":
                if name not in _WORKLOADS:
                    raise LookupError("no such workload")
                made.append([name, None])
                made[-1][1] = _WORKLOADS[name]["make"]()
                reply(kind="made", name=name)
            elif cmd == "run":
                n = int(words[2]) if len(words) > 2 else 0
                if n < 1:
                    raise ValueError("run: bad iteration count")
                slot = next((m for m in made if m[0] == name and m[1] is not None), None)
                if slot is None:
                    raise LookupError("run: not made here, or failed before")
                try:
                    seconds = slot[1].run(n)
                except BaseException:
                    runner, slot[1] = slot[1], None
                    runner.close()
                    raise
                reply(kind="time", name=name, iters=n, seconds=seconds)
            else:
                raise ValueError("unknown command %r (make NAME, run NAME N)" % cmd)
        except Exception as e:
            reply(kind="error", name=name, error=repr(e))
    for _, runner in reversed(made):
        if runner is not None:
            runner.close()
    _pin_to(None)
    return 0


def main(argv=None):
    global _pin_override
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print the workloads as JSON lines")
    mode.add_argument("--serve", action="store_true", help="run workloads on request (see bench/main.cpp)")
    p.add_argument("--pin", choices=("default", "split", "same", "none"), default="default",
                   help="where two-process rows run (default: each workload's own)")
    a = p.parse_args(argv)
    _pin_override = None if a.pin == "default" else a.pin
    if a.list:
        for w in _WORKLOADS.values():
            print(json.dumps(dict(kind="workload", **{k: v for k, v in w.items() if k != "make"})))
        return 0
    return _serve()
