#!/usr/bin/env python3
"""Runs mproc's benchmarks and their anchors side by side and prints one table with ratios.

    python3 bench/compare.py --bin build/bench/bench [--only REGEX] [--quick | --smoke]
                             [--write-docs] [--baseline OLD_BIN]
                             [--no-mpi | --mpi-bin MPI_BENCH] [--mpi-options 'OPTS']

The programs (the C++ `bench`: mproc's rows, the raw-syscall floors and the Boost anchor; each
bench/python/anchors_*.py: CPython's rows) only list their rows and run "N iterations of row X" on
request (`--serve`, bench/command_line.hpp). This script owns the whole measurement policy, the same for
every row of every program: it calibrates the iteration counts, takes the repetitions in turn
across all the rows of a group (mproc, floor, Python, other anchors, the baseline), repeats that in
rounds and reports medians. Rows are grouped by operation ("lock.uncontended": mproc vs CPython's
multiprocessing vs the floor); ratios are ratios of time per op, so they hold where absolute times
drift. See docs/benchmarks.md.

With --baseline, a `bench` binary built from another commit runs its mproc rows in the same
rotation, and a second table compares each with the same row of this build (new/old time per op).
A baseline from before the serve protocol (which measured on its own: `--json --reps N`) is run
one repetition per call, in the same place in the rotation.

--smoke runs every row through the same policy with a 1 ms repetition, once: every row must give
a time, or the run fails (a check that nothing has rotted, not a measurement).

The MPI groups ("mpi.*": mproc::mpi::Pool over 2 ranks against mpi4py.futures and a local
mproc::Pool of as many workers) come from two programs that must run under an MPI launcher:
`mpi_bench` (built beside `bench` when CMake finds MPI) under `mpirun -np 2`, and
bench/python/anchors_mpi.py under `mpiexec -n 2 python3 -m mpi4py.futures`. Each is served as the
others are (one launch per group and round; stdin and stdout reach rank 0 through the launcher),
with a watchdog on every command and mpirun's own --timeout as a backstop; a program that is
missing (no mpirun, no mpi_bench, no python3 with mpi4py) is left out with a note. Their rows get
a table of their own (mpi_table).
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN = "<!-- bench:results:begin (written by bench/compare.py --write-docs) -->"
END = "<!-- bench:results:end -->"
IMPLS = ("mproc", "python", "floor")
# Where a row of each impl is shown: "anchor" rows (another library, e.g. Boost) go in the python
# column, which holds the anchors, and are compared with mproc as Python's rows are.
COLUMN = {"mproc": "mproc", "python": "python", "floor": "floor", "anchor": "python"}
# The order of a group's rows in the table and in the rotation.
IMPL_RANK = {"mproc": 0, "floor": 1, "python": 2, "anchor": 3}
OPS = r"(<=|>=|<|>)"
# Ratios of time per op: "mproc/floor<=1.5", "python/mproc>=8", and "mproc/manual<=1.5": mproc's main
# row (an automatic chunksize) against the fastest of the group's manual-chunksize rows, the mproc
# rows named "<group>/mproc.chunksize<N>".
RATIO_TARGET_RE = re.compile(r"^\s*(mproc/floor|python/mproc|mproc/manual)\s*" + OPS + r"\s*([0-9.]+)\s*$")
MANUAL_ROW_RE = re.compile(r"/mproc\.chunksize(\d+)$")
# mproc's own figure: time per op ("mproc<=100ns"), ops per second ("mproc>=10M/s") or bytes per
# second ("mproc>=5GB/s", for a group whose op moves a known number of bytes).
ABS_TARGET_RE = re.compile(r"^\s*mproc\s*" + OPS + r"\s*([0-9.]+)\s*(ns|us|µs|ms|s|[kMG]?/s|[kMG]?B/s)\s*$")
TIME_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}
PREFIX = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}
# A CPU-bound group's speedup: the time per task of its "<group>/mproc.serial" row (the same tasks
# called in a loop in rank 0) over that of its main mproc row ("speedup>=1.8").
SPEEDUP_TARGET_RE = re.compile(r"^\s*speedup\s*" + OPS + r"\s*([0-9.]+)\s*$")

# The MPI programs: their ranks, the launcher's options and environment (as root Open MPI refuses to
# run without the two ALLOW variables; oversubscribed ranks that busy-poll crawl without
# yield_when_idle). mpirun's own binding: with -np 2 each rank is bound to a core, the layout a user
# of `mpirun -np 2 ./app` gets (mpi_bench gives its local pool the launcher's CPUs, not rank 0's
# one core). --mpi-options adds to these, e.g. "--bind-to none": on a quiet 2-core machine it
# measured the same CPU-bound speedup (1.92x against 1.94x) and a smaller per-task overhead (a
# no-op 7.3 against 10.5 us; one sent over MPI with rank0_works false 14 against 25 us).
MPI_RANKS = 2
MPI_OPTIONS = ["--oversubscribe", "--mca", "btl", "self,vader"]
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_mpi_yield_when_idle": "1"}
MPI_SCRIPTS = ("anchors_mpi.py",)  # anchor scripts that run under mpiexec, not on their own


def note(msg):
    sys.stderr.write("compare.py: %s\n" % msg)
    sys.stderr.flush()


class Failed(Exception):
    """A row failed: what its program said, or that it did not answer."""


# ----------------------------------------------------------------------------- programs


class Program:
    """One program with rows: the C++ binary, the baseline binary or an anchor script."""

    def __init__(self, name, argv, baseline=False, launcher=None, served=None):
        self.name, self.argv, self.baseline = name, argv, baseline
        # An MPI program: --serve runs `launcher --timeout S served` (served: argv unless given);
        # --list and --info run argv alone, without MPI. Its groups are MPI groups.
        self.launcher, self.served = launcher, served or argv
        self.legacy = False  # speaks the old protocol (measures on its own), not --serve
        self.info, self.groups, self.workloads = {}, [], []

    def serve_argv(self, pin, backstop):
        """The command line of --serve; an MPI program's launcher ends the job after `backstop` s."""
        tail = self.served + ["--serve", "--pin", pin]
        if not self.launcher:
            return tail
        return self.launcher + ["--timeout", str(int(backstop))] + tail

    def load(self, is_binary):
        try:
            self._load(is_binary)
        except Failed as e:
            sys.exit("compare.py: %s" % e)
        return self

    def _load(self, is_binary):
        if is_binary:
            info = [o for o in json_lines(self.argv + ["--info"]) if o.get("kind") == "info"]
            self.info = info[0] if info else {}
            self.legacy = self.info.get("protocol") != "serve"
        listing = json_lines(self.argv + ["--list"] + (["--json"] if self.legacy else []))
        self.groups = [o for o in listing if o.get("kind") == "group"]
        self.workloads = [o for o in listing if o.get("kind") == "workload"]
        if not self.workloads:
            note("%s lists no workload; left out" % self.name)


def json_lines(argv, timeout=60):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise Failed("%s timed out after %d s" % (" ".join(argv), timeout))
    out = []
    for line in p.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def display_path(path):
    """A path as the user reads it: relative to the repository when it lies inside."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def resolve_bin(path):
    """--bin and --baseline take the executable or the build folder that holds it (build/bench/bench
    is both the folder CMake builds bench/ in and where `make bench` points)."""
    if os.path.isdir(path):
        path = os.path.join(path, "bench")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        sys.exit("compare.py: %s is not a bench executable or its build folder (build it first)" % path)
    return path


class Server:
    """A program in --serve mode, in a process group of its own (so that a watchdog kill takes its
    partners and pool workers with it; an MPI launcher's ranks, in process groups of their own,
    are found by its session)."""

    TERM_GRACE = 10  # seconds an MPI launcher gets to end its job on SIGTERM

    def __init__(self, program, pin, backstop=3600):
        self.program, self.buf = program, b""
        env = dict(MPI_ENV, **os.environ) if program.launcher else None
        self.proc = subprocess.Popen(program.serve_argv(pin, backstop), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=ROOT, start_new_session=True, env=env)

    def ask(self, line, timeout):
        """Sends one command; returns its answer (a dict) or raises Failed."""
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as e:
            raise Failed("%s (exit status %s): %s" % (self.program.name, self.proc.poll(), e))
        deadline = time.monotonic() + timeout
        while True:
            text, nl, rest = self.buf.partition(b"\n")
            if nl:
                self.buf = rest
                try:
                    answer = json.loads(text)
                except ValueError:
                    continue  # not ours: something a workload printed
                if answer.get("kind") == "error":
                    raise Failed(answer.get("error", "?"))
                return answer
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.kill()
                raise Failed("watchdog: no answer to '%s' in %d s (a stuck primitive?); %s killed"
                             % (line, timeout, self.program.name))
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.proc.wait()
                raise Failed("%s exited (status %s) during '%s'" % (self.program.name, self.proc.returncode, line))
            self.buf += chunk

    def kill(self):
        if self.program.launcher:
            # mpirun ends its job on SIGTERM (its ranks have process groups of their own, in this
            # session); whatever is left after TERM_GRACE is killed.
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=self.TERM_GRACE)
            except (OSError, subprocess.TimeoutExpired):
                pass
            kill_session(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()

    def close(self):
        """End of input: the program destroys its runners and exits."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass  # it is gone already
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            note("%s did not exit within 60 s of the end of its input; killed" % self.program.name)
            self.kill()
        self.proc.stdout.close()


def session_members(sid):
    """The pids of the processes in session `sid` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def kill_session(sid):
    """SIGKILLs every process of session `sid` (a launcher started with start_new_session, its
    ranks and their workers, whatever process groups they made)."""
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ----------------------------------------------------------------------------- policy


class Policy:
    def __init__(self, rounds, reps, min_time, pin):
        self.rounds, self.reps, self.min_time, self.pin = rounds, reps, min_time, pin

    def scale(self, n, t):
        """Iterations for one repetition of at least min_time (+5%), from a trial of n that took t s."""
        return max(1, math.ceil(n * self.min_time / t * 1.05)) if t > 0 else n * 100

    def timeout(self):
        """The watchdog of one command: a stuck primitive shows as a failure, not as a hang."""
        return 60 + 20 * self.min_time

    def backstop(self, rows):
        """The life of one MPI job serving `rows` rows for one round (mpirun --timeout): past every
        watchdog of its commands, so that it only ends a job whose driver is gone."""
        return 300 + rows * (self.reps + 10) * self.timeout()


class Slot:
    """One row of a --serve program being measured (rows: [its workload])."""

    def __init__(self, server, w):
        self.server, self.rows = server, [w]
        self.n, self.dropped, self.error = 1, 0, None
        self.samples = {w["name"]: []}  # ns per op, one per repetition
        self.iters = {w["name"]: []}

    def done(self, policy):
        return self.error is not None or len(self.samples[self.rows[0]["name"]]) >= policy.reps

    def run(self, n, policy):
        name = self.rows[0]["name"]
        return self.server.ask("run %s %d" % (name, n), policy.timeout())["seconds"]

    def start(self, policy):
        """Makes the runner, then calibrates: 1 iteration, then more (growing up to 100x per step)
        until a trial lasts min_time / 5, then scaled to min_time + 5%."""
        self.server.ask("make %s" % self.rows[0]["name"], 120 + policy.timeout())
        n = 1
        while True:
            t = self.run(n, policy)
            if t >= policy.min_time / 5:
                self.n = policy.scale(n, t)
                return
            grow = (policy.min_time / 5) / t * 1.5 if t > 0 else 100.0
            n = int(n * min(max(grow, 2.0), 100.0))

    def repeat(self, policy):
        """One repetition. One that lasted under half of min_time (calibrated in a slow moment) is
        dropped with those before it and n scaled up, at most 5 times; one over 4x min_time
        (calibrated in a fast moment) counts, and later ones get a smaller n."""
        name = self.rows[0]["name"]
        t = self.run(self.n, policy)
        if t < policy.min_time / 2 and self.dropped < 5:
            self.dropped += 1
            self.n = policy.scale(self.n, t)
            self.samples[name].clear()
            self.iters[name].clear()
            return
        self.samples[name].append(t * 1e9 / self.n)
        self.iters[name].append(self.n)
        if t > 4 * policy.min_time:
            self.n = policy.scale(self.n, t)


class LegacySlot:
    """Rows of a baseline binary from before --serve: each repetition is one call of
    `BIN --json --only ^(rows)$ --reps 1 --min-time S`, which makes, calibrates and times them
    itself with the same policy (bench/main.cpp of that commit)."""

    def __init__(self, program, rows):
        self.program, self.rows = program, rows
        self.samples = {w["name"]: [] for w in rows}
        self.iters = {w["name"]: [] for w in rows}
        self.error = None

    def done(self, policy):
        return self.error is not None or all(len(s) >= policy.reps for s in self.samples.values())

    def start(self, policy):
        pass

    def repeat(self, policy):
        only = "^(%s)$" % "|".join(re.escape(w["name"]) for w in self.rows)
        argv = self.program.argv + ["--json", "--only", only, "--reps", "1", "--min-time", repr(policy.min_time),
                                    "--pin", policy.pin]
        out = json_lines(argv, timeout=300 + 20 * policy.min_time * len(self.rows))
        for o in out:
            if o.get("kind") == "error":
                raise Failed(o.get("error", "?"))
            if o.get("kind") == "result" and o.get("name") in self.samples:
                self.samples[o["name"]].extend(o["samples"])
                self.iters[o["name"]].append(o["iters"])
        missing = [n for n, s in self.samples.items() if not s]
        if missing:
            raise Failed("%s gave no result for %s" % (self.program.name, ", ".join(missing)))


def measure_group(rows, policy, rnd, isolate):
    """Measures the rows of one group ([(program, workload)]) in one round: each program in a
    server of its own (an isolated group: each row in its own), every runner made and calibrated
    first, then the repetitions go round all the rows in turn, so that a slow spell of the machine
    falls on them all alike; the rotation runs the other way in every other round."""
    units = {}
    for prog, w in rows:
        units.setdefault((prog, w["name"] if isolate else ""), []).append(w)
    servers, slots = [], []
    try:
        for (prog, _), ws in units.items():
            if prog.legacy:
                slots.append(LegacySlot(prog, ws))
                continue
            servers.append(Server(prog, policy.pin, policy.backstop(len(ws))))
            slots.extend(Slot(servers[-1], w) for w in ws)
        if rnd % 2 == 1:
            slots.reverse()
        for s in slots:
            try:
                s.start(policy)
            except Failed as e:
                s.error = str(e)
        while not all(s.done(policy) for s in slots):
            for s in slots:
                if s.done(policy):
                    continue
                try:
                    s.repeat(policy)
                except Failed as e:
                    s.error = str(e)
    finally:
        for srv in reversed(servers):
            srv.close()
    return slots


# ----------------------------------------------------------------------------- machine


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def cpu_times():
    """The aggregate `cpu` line of /proc/stat (jiffies), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return [int(x) for x in fields[1:9]] if fields and fields[0] == "cpu" else None
    except (OSError, ValueError):
        return None


def busy_and_steal(before, after):
    """(share of CPU time busy, share stolen by the hypervisor) between two cpu_times(), in %."""
    if not before or not after:
        return None
    d = [b - a for a, b in zip(before, after)]
    total = sum(d)
    if total <= 0:
        return None
    idle = d[3] + d[4]  # idle + iowait
    return 100.0 * (total - idle) / total, 100.0 * d[7] / total


def machine(info):
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    compiler = info.get("compiler", "?")
    build = ", ".join(x for x in (info.get("build_type"), info.get("cxx_flags")) if x)
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "kernel": platform.release(),
        "compiler": compiler + (" (%s)" % build if build else ""),
        "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ----------------------------------------------------------------------------- formatting
#
# Every figure is a time per op in ns; a throughput group (group["rate"]) also shows the rate.


def fmt_rate(per_s, unit):
    """"14.6 M msg/s", "46 GB/s"."""
    sep = "" if unit == "B/s" else " "
    for div, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_s >= div:
            return "%.3g %s%s%s" % (per_s / div, prefix, sep, unit)
    return "%.3g %s" % (per_s, unit)


def fmt_value(ns, group=None):
    """A row's figure; in a throughput group, the rate it makes follows."""
    if ns is None:
        return "—"
    text = fmt_time(ns)
    rate = (group or {}).get("rate", "")
    if rate and ns > 0:
        if rate == "bytes" and group.get("bytes_per_op"):
            text += " · " + fmt_rate(group["bytes_per_op"] * 1e9 / ns, "B/s")
        else:
            text += " · " + fmt_rate(1e9 / ns, "msg/s")
    return text


def fmt_time(ns):
    if ns < 1e3:
        return "%.3g ns" % ns if ns < 100 else "%.0f ns" % ns
    if ns < 1e6:
        return "%.3g µs" % (ns / 1e3)
    if ns < 1e9:
        return "%.3g ms" % (ns / 1e6)
    return "%.3g s" % (ns / 1e9)


def md(text):
    return str(text).replace("|", "\\|")


def fmt_ratio(r):
    if r is None:
        return "—"
    if r >= 100:
        return "%.0f×" % r
    if r >= 10:
        return "%.1f×" % r
    return "%.2f×" % r


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def parse_abs_target(target, group):
    """For "mproc<=100ns" and the like: (shown text, op, bound, function of mproc's ns per op that
    gives the figure the bound applies to); None if `target` is not of that form."""
    m = ABS_TARGET_RE.match(target)
    if not m:
        return None
    op, number, unit = m.group(1), float(m.group(2)), m.group(3)
    shown = "mproc %s %g %s" % ({"<=": "≤", ">=": "≥"}.get(op, op), number, unit)
    if unit in TIME_UNITS:
        return shown, op, number * TIME_UNITS[unit], lambda c: c
    if unit.endswith("B/s"):
        per_op = (group or {}).get("bytes_per_op") or 0
        if not per_op:
            return shown + " (no bytes per op)", op, None, None
        return shown, op, number * PREFIX[unit[:-3]], lambda c: per_op * 1e9 / c
    return shown, op, number * PREFIX[unit[:-2]], lambda c: 1e9 / c


def best_manual(members):
    """The fastest manual-chunksize row of a group's rows (MANUAL_ROW_RE), or None."""
    manual = [r for r in members if r["impl"] == "mproc" and MANUAL_ROW_RE.search(r["name"]) and r.get("value")]
    return min(manual, key=lambda r: r["value"]) if manual else None


def check_target(target, mproc_floor, python_mproc, mproc_cost=None, group=None, mproc_manual=None,
                 speedup=None):
    """Returns (text of the target, "yes" / "no" / "n/a")."""
    if not target:
        return "—", ""
    absolute = parse_abs_target(target, group)
    fast = SPEEDUP_TARGET_RE.match(target)
    if fast:
        op, bound, value = fast.group(1), float(fast.group(2)), speedup
        shown = "speedup %s %g" % ({"<=": "≤", ">=": "≥"}.get(op, op), bound)
        if value is not None:
            shown += " (%s)" % fmt_ratio(value)
    elif absolute:
        shown, op, bound, figure = absolute
        if figure is None:
            return shown, "?"
        value = figure(mproc_cost) if mproc_cost else None
    else:
        m = RATIO_TARGET_RE.match(target)
        if not m:
            return target, "?"
        which, op, bound = m.group(1), m.group(2), float(m.group(3))
        value = {"mproc/floor": mproc_floor, "python/mproc": python_mproc, "mproc/manual": mproc_manual}[which]
        shown = "%s %s %g" % (which, {"<=": "≤", ">=": "≥"}.get(op, op), bound)
        if which == "mproc/manual" and value is not None:
            shown += " (%s)" % fmt_ratio(value)
    if value is None:
        return shown, "n/a"
    ok = {"<=": value <= bound, ">=": value >= bound, "<": value < bound, ">": value > bound}[op]
    return shown, "yes" if ok else "**no**"


# ----------------------------------------------------------------------------- table


def by_group(groups, rows):
    """[(group name, its rows)] in table order: the C++ binary's group order, then the others."""
    out = {}
    for r in sorted(rows.values(), key=row_key):
        out.setdefault(r["group"], []).append(r)
    order = [g for g in groups if g in out] + sorted(g for g in out if g not in groups)
    return [(g, out[g]) for g in order]


def build_table(groups, rows):
    """groups: ordered {name: {"op", "target", ...}}; rows: {name: aggregated row}. Returns (lines, verdicts).
    The MPI groups are left to mpi_table."""
    rows = {n: r for n, r in rows.items() if not groups.get(r["group"], {}).get("mpi")}
    lines = [
        "| workload | mproc | python | floor | mproc/floor | python/mproc | target | met? |",
        "|---|--:|--:|--:|--:|--:|---|:-:|",
    ]
    verdicts = []
    for g, members in by_group(groups, rows):
        main = {}
        for r in members:
            if r["primary"] and r["impl"] in IMPLS and r["impl"] not in main:
                main[r["impl"]] = r
        c = {i: main[i]["value"] if i in main else None for i in IMPLS}
        mf, pm = ratio(c["mproc"], c["floor"]), ratio(c["python"], c["mproc"])
        grp = groups.get(g, {})
        best = best_manual(members)
        mm = ratio(c["mproc"], best["value"]) if best else None
        shown, met = check_target(grp.get("target", ""), mf, pm, c["mproc"], grp, mm)
        if met:
            verdicts.append((g, met))
        cells = [fmt_value(main[i]["value"], grp) if i in main else "—" for i in IMPLS]
        lines.append("| **%s** | %s | %s | %s | %s | %s | %s | %s |" % (g, *cells, fmt_ratio(mf), fmt_ratio(pm), shown, met))
        for r in members:
            if any(r is m for m in main.values()):
                continue
            rc = r["value"]
            col = COLUMN.get(r["impl"])
            cells = [fmt_value(rc, grp) if col == i else "" for i in IMPLS]
            rmf = ratio(rc, c["floor"]) if r["impl"] == "mproc" else (ratio(c["mproc"], rc) if r["impl"] == "floor" else None)
            rpm = ratio(rc, c["mproc"]) if col == "python" else (ratio(c["python"], rc) if r["impl"] == "mproc" else None)
            lines.append(
                "| &nbsp;&nbsp;↳ %s: %s | %s | %s | %s | %s | %s | | |"
                % (r["impl"], md(r["label"]), *cells, fmt_ratio(rmf) if rmf else "", fmt_ratio(rpm) if rpm else "")
            )
    return lines, verdicts


# The columns of the MPI table: impl -> column.
MPI_COLUMNS = ("mproc", "python", "local")


def speedups(members):
    """{impl: the serial row's time per task over the pool's} for a group with serial rows: mproc's and
    python's own "<group>/<impl>.serial", the local pool against mproc's (the same tasks in rank 0)."""
    main = {r["impl"]: r for r in members if r["primary"] and r["impl"] in MPI_COLUMNS}
    serial = {r["impl"]: r for r in members if r["name"].endswith("/%s.serial" % r["impl"])}
    out = {}
    for impl, r in main.items():
        base = serial.get("mproc" if impl == "local" else impl)
        if base:
            out[impl] = ratio(base["value"], r["value"])
    return out


def mpi_table(groups, rows, options=None):
    """The MPI groups: mproc::mpi::Pool (mproc), mpi4py.futures (python) and a local mproc::Pool of as
    many workers (local), with python/mproc and mproc/local of time per op and, for a CPU-bound
    group, each one's speedup over its serial row. Returns (lines, verdicts); no lines without rows."""
    mine = {n: r for n, r in rows.items() if groups.get(r["group"], {}).get("mpi")}
    if not mine:
        return [], []
    lines = [
        "MPI (%d ranks on this machine: `mpirun -np %d %s`; mpi4py.futures under `mpiexec -n %d`, whose "
        "rank 0 only dispatches):" % (MPI_RANKS, MPI_RANKS, " ".join(options or MPI_OPTIONS), MPI_RANKS),
        "",
        "| workload | mproc MPI | mpi4py.futures | mproc local Pool | mpi4py/MPI | MPI/local | target | met? |",
        "|---|--:|--:|--:|--:|--:|---|:-:|",
    ]
    verdicts = []
    for g, members in by_group(groups, mine):
        grp = groups.get(g, {})
        main = {}
        for r in members:
            if r["primary"] and r["impl"] in MPI_COLUMNS and r["impl"] not in main:
                main[r["impl"]] = r
        c = {i: main[i]["value"] if i in main else None for i in MPI_COLUMNS}
        pm, ml = ratio(c["python"], c["mproc"]), ratio(c["mproc"], c["local"])
        fast = speedups(members)
        shown, met = check_target(grp.get("target", ""), None, pm, c["mproc"], grp, None, fast.get("mproc"))
        if met:
            verdicts.append((g, met))
        cells = [fmt_value(c[i], grp) if i in main else "—" for i in MPI_COLUMNS]
        lines.append("| **%s** | %s | %s | %s | %s | %s | %s | %s |" % (g, *cells, fmt_ratio(pm), fmt_ratio(ml), shown, met))
        for r in members:
            if any(r is m for m in main.values()):
                continue
            cells = [fmt_value(r["value"], grp) if r["impl"] == i else "" for i in MPI_COLUMNS]
            lines.append("| &nbsp;&nbsp;↳ %s: %s | %s | %s | %s | | | | |" % (r["impl"], md(r["label"]), *cells))
        if fast:
            cells = [fmt_ratio(fast[i]) if i in fast else "" for i in MPI_COLUMNS]
            lines.append("| &nbsp;&nbsp;↳ speedup: serial time over the pool's | %s | %s | %s | | | | |" % tuple(cells))
    return lines, verdicts


def manual_table(groups, rows):
    """For each group with manual-chunksize rows: its main mproc row (the automatic chunksize)
    against the fastest of them, auto/best of time per op (the target "mproc/manual")."""
    lines = []
    for g, members in by_group(groups, rows):
        best = best_manual(members)
        auto = [r for r in members if r["impl"] == "mproc" and r["primary"]]
        if not best or not auto:
            continue
        grp = groups.get(g, {})
        target = grp.get("target", "")
        lines.append("| %s | %s | %s (chunksize %s) | %s | %s |" % (
            g, fmt_value(auto[0]["value"], grp), fmt_value(best["value"], grp),
            MANUAL_ROW_RE.search(best["name"]).group(1), fmt_ratio(ratio(auto[0]["value"], best["value"])),
            target if target.replace(" ", "").startswith("mproc/manual") else "—"))
    if not lines:
        return []
    return ["Automatic chunksize against the best manual one (auto/best of time per op):", "",
            "| group | automatic | best manual | auto/best | target |", "|---|--:|--:|--:|---|"] + lines


def detail_table(groups, rows):
    lines = [
        "| row | how | median | min | max | samples | iters/rep |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for _, members in by_group(groups, rows):
        for r in members:
            lines.append(
                "| `%s` | %s | %s | %s | %s | %d | %s |"
                % (r["name"], md(r["label"]), fmt_value(r["value"]), fmt_value(r["min"]), fmt_value(r["max"]),
                   len(r["samples"]), "/".join(str(i) for i in r["iters"]))
            )
    return lines


def row_key(r):
    """Main rows first, then mproc, floor, python, anchor; the programs' own order after that (sorts
    are stable)."""
    return (not r["primary"], IMPL_RANK.get(r["impl"], 9))


def render(groups, rows, mach, settings, load_before, load_after, usage, errors, mpi_options=None):
    table, verdicts = build_table(groups, rows)
    out = [
        "Machine: %s, %s logical CPUs (%s usable) · Linux %s · %s · %s"
        % (mach["cpu"], mach["cpus"], mach["cpus_usable"], mach["kernel"], mach["compiler"], mach["python"]),
        "",
        "Run: %s · %s · load average (1/5/15 min) %s before, %s after%s"
        % (mach["date"], settings, load_before, load_after,
           " · CPU time stolen by the hypervisor during the run: %.1f%%" % usage[1] if usage else ""),
        "",
    ]
    if len(table) > 2 or not any(groups.get(r["group"], {}).get("mpi") for r in rows.values()):
        out.extend(table)
        out.append("")
    mpi, mpi_verdicts = mpi_table(groups, rows, mpi_options)
    verdicts = verdicts + mpi_verdicts
    if mpi:
        out.extend(mpi)
        out.append("")
    out.append("Each value is the median over every repetition of every round; ratios are ratios of those medians.")
    manual = manual_table(groups, rows)
    if manual:
        out.append("")
        out.extend(manual)
    if errors:
        out.append("")
        out.append("Failed:")
        out.extend("- %s" % e for e in errors)
    out.append("")
    out.append("<details><summary>All rows: spread and iteration counts</summary>")
    out.append("")
    out.extend(detail_table(groups, rows))
    out.append("")
    out.append("</details>")
    return out, verdicts


def write_docs(path, lines):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n\n%s\n%s\n" % (BEGIN, END)
    if BEGIN not in text or END not in text:
        sys.exit("compare.py: %s lacks the markers %s ... %s" % (path, BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)
    note("wrote the table into %s" % os.path.relpath(path, os.getcwd()))


def baseline_table(rows, base_rows):
    """mproc's rows against the same rows of the --baseline binary, measured in the same rotation."""
    out = ["Against the baseline (same rounds; new/old of time per op, < 1 is faster):", "",
           "| row | baseline | this build | new/old |", "|---|---|---|---|"]
    for name in sorted(base_rows):
        new = rows.get(name)
        if new:
            old = base_rows[name]["value"]
            out.append("| %s | %s | %s | %s |" % (name, fmt_time(old), fmt_time(new["value"]),
                                                 fmt_ratio(ratio(new["value"], old))))
    return out


# ----------------------------------------------------------------------------- MPI programs


def mpi4py_python():
    """A python3 that imports mpi4py.futures (this one, else Debian's), or None."""
    seen = []
    for cand in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if not cand or cand in seen or not os.access(cand, os.X_OK):
            continue
        seen.append(cand)
        try:
            ok = subprocess.run([cand, "-c", "import mpi4py.futures"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return cand
    return None


def mpi_programs(binary, mpi_bin=None, options=None):
    """The MPI programs that can run here, listed: `mpi_bench` (beside `binary`, or `mpi_bin`) under
    mpirun, bench/python/anchors_mpi.py under mpiexec with mpi4py.futures; a note for each one left
    out."""
    options = options or MPI_OPTIONS
    progs = []
    mpirun, mpiexec = shutil.which("mpirun"), shutil.which("mpiexec")
    if not mpirun or not mpiexec:
        note("MPI rows left out: no mpirun/mpiexec on PATH (Debian: openmpi-bin)")
        return progs
    path = mpi_bin or os.path.join(os.path.dirname(binary), "mpi_bench")
    if os.path.isfile(path) and os.access(path, os.X_OK):
        launcher = [mpirun, "-np", str(MPI_RANKS)] + options
        progs.append((Program("mpirun " + display_path(path), [path], launcher=launcher), True))
    else:
        note("MPI rows of mproc left out: no %s (built only when CMake finds MPI: Debian "
             "libopenmpi-dev)" % display_path(path))
    python = mpi4py_python()
    if python:
        for f in MPI_SCRIPTS:
            script = os.path.join(HERE, "python", f)
            launcher = [mpiexec, "-n", str(MPI_RANKS)] + options
            progs.append((Program("mpiexec python/" + f, [python, script], launcher=launcher,
                                  served=[python, "-m", "mpi4py.futures", script]), False))
    else:
        note("mpi4py.futures rows left out: no python3 here imports mpi4py (Debian: python3-mpi4py)")
    out = []
    for prog, is_binary in progs:
        try:
            prog._load(is_binary)
        except Failed as e:
            note("%s left out: %s" % (prog.name, e))
            continue
        if prog.workloads:
            out.append(prog)
        else:
            note("%s lists no workload; left out" % prog.name)
    return out


def add_mpi_groups(groups, programs):
    """Adds the groups of the MPI programs to `groups` (first definition wins), each marked "mpi"
    (shown by mpi_table), also one that only a workload names (an anchor without mpi_bench)."""
    for prog in programs:
        if prog.launcher:
            for o in prog.groups + [{"group": w["group"]} for w in prog.workloads]:
                groups.setdefault(o["group"], dict(o))["mpi"] = True
    return groups


# ----------------------------------------------------------------------------- main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True, help="the C++ `bench` binary or its build folder")
    p.add_argument("--only", default="", metavar="REGEX", help="run only the workloads whose name matches")
    p.add_argument("--quick", action="store_true", help="1 round of 1 repetition of 0.05 s: a rough look")
    p.add_argument("--smoke", action="store_true",
                   help="every row once, 1 round of 1 repetition of 1 ms; fails unless every row gives a time")
    p.add_argument("--rounds", type=int, default=None, help="rounds over all groups (default 3)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per row per round (default 3)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per repetition (default 0.2)")
    p.add_argument("--pin", choices=("default", "split", "same", "none"), default="default",
                   help="where two-process rows run: each workload's own (default), 2 CPUs, 1 CPU, or the scheduler's choice")
    p.add_argument("--list", action="store_true", help="list the workloads of every program, run nothing")
    p.add_argument("--json-out", metavar="FILE", help="also write every row and its samples as JSON")
    p.add_argument("--write-docs", nargs="?", const=DOCS, metavar="FILE", help="write the table into docs/benchmarks.md between its markers")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    p.add_argument("--baseline", metavar="BIN", help="a `bench` binary (or its build folder) of another commit: "
                   "its mproc rows run in the same rotation and are compared with this build's")
    p.add_argument("--mpi-bin", metavar="BIN", help="the mpi_bench executable (default: beside --bin's bench)")
    p.add_argument("--no-mpi", action="store_true", help="leave out the MPI rows (mpi_bench, anchors_mpi.py)")
    p.add_argument("--mpi-options", default="", metavar="OPTS",
                   help="more options of mpirun and mpiexec for the MPI rows, e.g. --mpi-options='--bind-to none'")
    a = p.parse_args(argv)
    short = a.smoke or a.quick
    mpi_options = MPI_OPTIONS + shlex.split(a.mpi_options)
    policy = Policy(a.rounds or (1 if short else 3), a.reps or (1 if short else 3),
                    a.min_time or (0.001 if a.smoke else 0.05 if a.quick else 0.2), a.pin)

    binary = resolve_bin(a.bin)
    programs = [Program(display_path(binary), [binary]).load(True)]
    if a.baseline:
        base = resolve_bin(a.baseline)
        programs.append(Program("baseline " + display_path(base), [base], baseline=True).load(True))
    scripts = sorted(f for f in os.listdir(os.path.join(HERE, "python"))
                     if f.startswith("anchors_") and f.endswith(".py") and f not in MPI_SCRIPTS)
    programs += [Program("python/" + f, [sys.executable, os.path.join(HERE, "python", f)]).load(False) for f in scripts]
    if not a.no_mpi:
        programs += mpi_programs(binary, a.mpi_bin, mpi_options)

    # Groups (order, targets) and the compiler come from the C++ binary; the MPI groups from the MPI
    # programs, after them.
    info = programs[0].info
    groups = add_mpi_groups({o["group"]: o for o in programs[0].groups}, programs)
    only = re.compile(a.only)
    selected = [(prog, w) for prog in programs for w in prog.workloads
                if only.search(w["name"]) and not (prog.baseline and w["impl"] != "mproc")]
    if a.list:
        rank = {g: i for i, g in enumerate(groups)}
        for prog, w in sorted(selected, key=lambda pw: (rank.get(pw[1]["group"], len(rank)), pw[1]["group"], row_key(pw[1]))):
            print("%-42s %-7s %-32s %s" % (w["name"], w["impl"], prog.name, w["label"]))
        return 0
    if not selected:
        sys.exit("compare.py: no workload matches %r" % a.only)
    group_order = [g for g in groups if any(w["group"] == g for _, w in selected)]
    group_order += sorted({w["group"] for _, w in selected} - set(group_order))
    group_order.sort(key=lambda g: groups.get(g, {}).get("mpi", False))  # the MPI groups last

    started = time.monotonic()
    load_before, times_before = loadavg(), cpu_times()
    rows, base_rows, errors = {}, {}, []
    for rnd in range(policy.rounds):
        for g in group_order:
            members = sorted([(prog, w) for prog, w in selected if w["group"] == g],
                             key=lambda pw: (pw[0].baseline, row_key(pw[1])))
            note("round %d/%d: %s (%d rows)" % (rnd + 1, policy.rounds, g, len(members)))
            for s in measure_group(members, policy, rnd, groups.get(g, {}).get("isolate", False)):
                prog = s.program if isinstance(s, LegacySlot) else s.server.program
                if s.error:
                    errors.append("%s (%s): %s" % (", ".join(w["name"] for w in s.rows), prog.name, s.error))
                for w in s.rows:
                    r = (base_rows if prog.baseline else rows).setdefault(w["name"], dict(w, samples=[], iters=[]))
                    r["samples"].extend(s.samples[w["name"]])
                    if s.iters[w["name"]]:
                        r["iters"].append(s.iters[w["name"]][-1])
    load_after, usage = loadavg(), busy_and_steal(times_before, cpu_times())
    for table in (rows, base_rows):
        for name in [n for n, r in table.items() if not r["samples"]]:
            del table[name]
        for r in table.values():
            r["value"] = statistics.median(r["samples"])
            r["min"], r["max"] = min(r["samples"]), max(r["samples"])
    errors = sorted(set(errors))

    if a.smoke:
        ran = len(rows) + len(base_rows)
        for e in errors:
            print("FAILED: %s" % e)
        print("smoke: %d of %d rows gave a time (%d programs, %.0f s)%s" % (
            ran, len(selected), len({prog for prog, _ in selected}), time.monotonic() - started, "" if ran == len(selected) else "; FAILED"))
        return 0 if ran == len(selected) and not errors else 1

    mach = machine(info)
    settings = "%d round%s × %d repetition%s × ≥ %g s per row, median%s" % (
        policy.rounds, "s" if policy.rounds != 1 else "", policy.reps, "s" if policy.reps != 1 else "",
        policy.min_time, "" if a.pin == "default" else ", --pin %s" % a.pin)
    lines, verdicts = render(groups, rows, mach, settings, load_before, load_after, usage, errors, mpi_options)
    print()
    print("\n".join(lines))
    if a.baseline:
        print()
        print("\n".join(baseline_table(rows, base_rows)))
        manual = manual_table(groups, base_rows)
        if manual:
            print()
            print("The baseline's " + manual[0][0].lower() + manual[0][1:])
            print("\n".join(manual[1:]))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"machine": mach, "settings": settings, "load": [load_before, load_after], "usage": usage,
                       "groups": groups, "rows": rows, "baseline_rows": base_rows}, f, indent=1)
    if a.write_docs:
        if short or a.only:
            note("--write-docs with --quick, --smoke or --only: the page now shows a partial run")
        write_docs(a.write_docs, lines)
    if a.check and any(v != "yes" for _, v in verdicts):
        return 1
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
