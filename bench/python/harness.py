"""The Python side of mproc's benchmark harness: what bench/main.cpp does, for CPython anchors.

An anchor script registers workloads with @workload and calls main(). Each workload builds a runner
once; the harness calibrates an iteration count so that one repetition lasts at least --min-time,
runs --reps repetitions and reports the median time per op, as the C++ binary does, in the same
JSON lines (docs/benchmarks.md):

    {"kind": "result", "name": ..., "group": ..., "impl": "python", "value": ..., "unit": "ns/op", ...}

The workloads of one group are measured together, repetition by repetition in turn, and a
two-process runner pins its processes as the C++ one does (PairRunner's `pin`; --pin overrides);
TeamRunner is the C++ team_runner: this process and several partners, each told its index.

Command line (the same as `bench`): --list, --only REGEX, --json, --quick, --reps N, --min-time S,
--pin default|split|same|none.
"""

import argparse
import ctypes
import json
import math
import multiprocessing
import os
import re
import signal
import statistics
import sys
import time

# Every anchor uses the fork start method explicitly (the default on Linux up to Python 3.13).
CTX = multiprocessing.get_context("fork")

_WORKLOADS = []


def workload(name, group, label, primary=True, unit="ns/op"):
    """Registers `make()` (which returns a runner) as the workload `name`."""

    def register(make):
        _WORKLOADS.append(
            dict(name=name, group=group, impl="python", label=label, primary=primary, unit=unit, make=make)
        )
        return make

    return register


_INITIAL_CPUS = sorted(os.sched_getaffinity(0))
_pin_override = None


def _pair_cpus(pin):
    """(this process's CPU, the partner's CPU) for `pin`, or (None, None): as bench/harness.cpp."""
    pin = _pin_override or pin
    if pin == "none" or not _INITIAL_CPUS:
        return None, None
    if pin == "same" or len(_INITIAL_CPUS) == 1:
        return _INITIAL_CPUS[0], _INITIAL_CPUS[0]
    return _INITIAL_CPUS[0], _INITIAL_CPUS[1]


def _pin_to(cpu):
    os.sched_setaffinity(0, _INITIAL_CPUS if cpu is None else {cpu})


class ClosingRunner:
    """Wraps a runner; after closing it, runs `cleanup()` (closing queues, shutting a pool down)."""

    def __init__(self, runner, cleanup):
        self._runner = runner
        self._cleanup = cleanup

    def run(self, n):
        return self._runner.run(n)

    def close(self):
        try:
            self._runner.close()
        finally:
            self._cleanup()


class LoopRunner:
    """Runs body(n) in this process."""

    def __init__(self, body):
        self._body = body

    def run(self, n):
        t0 = time.perf_counter_ns()
        self._body(n)
        return (time.perf_counter_ns() - t0) * 1e-9

    def close(self):
        pass


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


class PairRunner:
    """Two processes, as bench/harness.hpp's pair_runner: this one and a partner forked once.

    For each repetition: before() runs here while the partner idles; the clock starts; the partner is
    told to run partner(n) while this process runs self_(n); the clock stops when both are done.
    `pin` is "split" (two CPUs), "same" (one CPU) or "none", as harness.hpp's Pin.
    """

    def __init__(self, self_, partner, before=None, pin="split"):
        self._self = self_
        self._before = before
        self._cpu, partner_cpu = _pair_cpus(pin)
        self._conn, child_end = CTX.Pipe()
        self._proc = CTX.Process(
            target=_partner_loop, args=(child_end, self._conn, partner, partner_cpu), daemon=True
        )
        self._proc.start()
        child_end.close()

    def run(self, n):
        _pin_to(self._cpu)
        if self._before is not None:
            self._before()
        t0 = time.perf_counter_ns()
        self._conn.send(n)
        self._self(n)
        reply = self._conn.recv()
        t1 = time.perf_counter_ns()
        if reply != "ok":
            raise RuntimeError(reply)
        return (t1 - t0) * 1e-9

    def close(self):
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._proc.join(1.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()


def _team_cpus(pin, partners):
    """CPUs for this process and each partner (None: leave alone), as bench/harness.cpp's team_cpus."""
    pin = _pin_override or pin
    if pin == "none" or not _INITIAL_CPUS:
        return [None] * (partners + 1)
    if pin == "same":
        return [_INITIAL_CPUS[0]] * (partners + 1)
    return [_INITIAL_CPUS[i % len(_INITIAL_CPUS)] for i in range(partners + 1)]


def _call_with_index(partner, index):
    return lambda n: partner(index, n)


class TeamRunner:
    """This process and `partners` partners forked once, as bench/harness.hpp's team_runner.

    As PairRunner, with partner(index, n) run in partner `index` (0 ... partners - 1); the clock
    stops when this process and every partner are done. `pin`: "split" puts this process on the
    first CPU and the partners on the next ones in turn, "same" all on the first, "none" (default)
    leaves placement to the scheduler.
    """

    def __init__(self, self_, partner, partners, before=None, pin="none"):
        self._self = self_
        self._before = before
        cpus = _team_cpus(pin, partners)
        self._cpu = cpus[0]
        self._conns, self._procs = [], []
        try:
            for i in range(partners):
                conn, child_end = CTX.Pipe()
                proc = CTX.Process(
                    target=_partner_loop,
                    args=(child_end, conn, _call_with_index(partner, i), cpus[i + 1]),
                    daemon=True,
                )
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


def _scale(n, t, min_time):
    return max(1, math.ceil(n * min_time / t * 1.05))


class _Slot:
    """One workload being measured: the same steps as bench/main.cpp's Slot."""

    def __init__(self, w):
        self.w = w
        self.runner = None
        self.n = 1
        self.samples = []
        self.dropped = 0
        self.error = None

    def done(self, reps):
        return self.error is not None or len(self.samples) >= reps

    def calibrate(self, min_time):
        n = 1
        while True:
            t = self.runner.run(n)
            if t >= min_time / 5:
                self.n = _scale(n, t, min_time)
                return
            grow = (min_time / 5) / t * 1.5 if t > 0 else 100.0
            n = int(n * min(max(grow, 2.0), 100.0))

    def repeat(self, min_time):
        t = self.runner.run(self.n)
        if t < min_time / 2 and self.dropped < 5:
            self.dropped += 1
            self.n = _scale(self.n, t, min_time)
            self.samples.clear()
            return
        self.samples.append(t * 1e9 / self.n)
        if t > 4 * min_time:
            self.n = _scale(self.n, t, min_time)

    def close(self):
        if self.runner is not None:
            try:
                self.runner.close()
            finally:
                self.runner = None


def _measure_group(members, reps, min_time):
    """Makes and calibrates every runner, then goes round them one repetition at a time."""
    slots = [_Slot(w) for w in members]
    try:
        for s in slots:
            try:
                s.runner = s.w["make"]()
                s.calibrate(min_time)
            except Exception as e:
                s.error = repr(e)
                s.close()
        while not all(s.done(reps) for s in slots):
            for s in slots:
                if s.done(reps):
                    continue
                try:
                    s.repeat(min_time)
                except Exception as e:
                    s.error = repr(e)
                    s.close()
    finally:
        for s in reversed(slots):
            s.close()
        _pin_to(None)
    return slots


def _select(only):
    pattern = re.compile(only) if only else None
    return [w for w in _WORKLOADS if pattern is None or pattern.search(w["name"])]


def _public(w):
    return {k: w[k] for k in ("name", "group", "impl", "label", "primary", "unit")}


def _on_alarm(signum, frame):
    sys.stderr.write("anchor: watchdog expired in group %s\n" % _current)
    sys.stderr.flush()
    os._exit(124)


_current = ""


def main(argv=None):
    global _current, _pin_override
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="print the workloads")
    p.add_argument("--only", default="", metavar="REGEX", help="run the workloads whose name matches")
    p.add_argument("--json", action="store_true", help="one JSON object per line; progress on stderr")
    p.add_argument("--quick", action="store_true", help="1 repetition of at least 0.05 s")
    p.add_argument("--reps", type=int, default=None, help="repetitions per workload (default 5)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per repetition (default 0.2)")
    p.add_argument("--pin", choices=("default", "split", "same", "none"), default="default",
                   help="where two-process rows run (default: each workload's own)")
    a = p.parse_args(argv)
    reps = a.reps if a.reps is not None else (1 if a.quick else 5)
    min_time = a.min_time if a.min_time is not None else (0.05 if a.quick else 0.2)
    if reps < 1 or min_time <= 0:
        p.error("--reps must be >= 1 and --min-time > 0")
    _pin_override = None if a.pin == "default" else a.pin
    selected = _select(a.only)

    if a.list:
        for w in selected:
            if a.json:
                print(json.dumps(dict(kind="workload", **_public(w))))
            else:
                print("%-42s %-8s %s" % (w["name"], w["impl"], w["label"]))
        return 0
    if not selected:
        sys.stderr.write("anchor: no workload matches %r\n" % a.only)
        return 1

    signal.signal(signal.SIGALRM, _on_alarm)
    failures = 0
    if not a.json:
        print("%-42s %12s %12s %12s %12s" % ("workload", "median", "min", "max", "iters"))
    groups = []
    for w in selected:
        if groups and groups[-1][0]["group"] == w["group"]:
            groups[-1].append(w)
        else:
            groups.append([w])
    for members in groups:
        _current = members[0]["group"]
        signal.alarm(int(60 + 10 * reps * min_time * len(members)))
        if a.json:
            sys.stderr.write("  %s\n" % " ".join(w["name"] for w in members))
            sys.stderr.flush()
        for s in _measure_group(members, reps, min_time):
            w = s.w
            if s.error is not None:
                failures += 1
                if a.json:
                    print(json.dumps(dict(kind="error", name=w["name"], group=w["group"], impl=w["impl"], error=s.error)))
                sys.stderr.write("anchor: %s failed: %s\n" % (w["name"], s.error))
                continue
            med = statistics.median(s.samples)
            if a.json:
                row = dict(kind="result", **_public(w))
                row.update(value=med, stat="median", min=min(s.samples), max=max(s.samples), samples=s.samples,
                           iters=s.n, reps=reps, min_time=min_time)
                print(json.dumps(row))
            else:
                print("%-42s %9.1f ns %9.1f ns %9.1f ns %12d" % (w["name"], med, min(s.samples), max(s.samples), s.n))
        signal.alarm(0)
        sys.stdout.flush()
    return 0 if failures == 0 else 1
