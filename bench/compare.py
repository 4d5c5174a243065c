#!/usr/bin/env python3
"""Runs mproc's benchmarks and their anchors side by side and prints one table with ratios.

    python3 bench/compare.py --bin build/bench/bench [--only REGEX] [--quick] [--write-docs]
                             [--baseline OLD_BIN]

It runs the C++ binary (`bench`: mproc's rows and the raw-syscall floors) and every Python anchor
script (bench/python/anchors_*.py) in the same invocation, in rounds that alternate their order,
pools the per-repetition samples of each row and reports the median. Rows are grouped by operation
("lock.uncontended": mproc vs CPython's multiprocessing vs the floor); ratios are ratios of time per
op, so they hold where absolute times drift. See docs/benchmarks.md.

With --baseline, a `bench` binary built from another commit runs in the same rounds, interleaved
with the others, and a second table compares each mproc row with the same row of the baseline
(new/old time per op): a change measured against its parent under the same load.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN = "<!-- bench:results:begin (written by bench/compare.py --write-docs) -->"
END = "<!-- bench:results:end -->"
IMPLS = ("mproc", "python", "floor")
# Where a row of each impl is shown: "anchor" rows (another library, e.g. Boost) go in the python
# column, which holds the anchors, and are compared with mproc as Python's rows are.
COLUMN = {"mproc": "mproc", "python": "python", "floor": "floor", "anchor": "python"}
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


# ----------------------------------------------------------------------------- sources


class Source:
    """One program that speaks the harness's command line: the C++ binary or an anchor script."""

    def __init__(self, name, argv):
        self.name = name
        self.argv = argv

    def json_lines(self, args, timeout):
        """Runs argv + args; returns (the JSON objects it printed, None or what went wrong)."""
        try:
            p = subprocess.run(
                self.argv + args,
                stdout=subprocess.PIPE,
                stderr=None,  # progress lines go straight to the terminal
                text=True,
                timeout=timeout,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            return [], "timed out after %ds" % timeout
        out = []
        for line in p.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out, None if p.returncode == 0 else "exit status %d" % p.returncode


def resolve_bins(paths):
    """--bin takes the executable or the build folder that holds it (build/bench/bench is both the
    folder CMake builds bench/ in and where `make bench` points). A folder without `bench` falls back
    to `bench_floors` (the floors alone), with a note."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            for exe in ("bench", "bench_floors"):
                cand = os.path.join(path, exe)
                if os.path.isfile(cand) and os.access(cand, os.X_OK):
                    if exe == "bench_floors":
                        note("%s has no `bench` binary; using bench_floors (no mproc rows)" % path)
                    out.append(cand)
                    break
            else:
                sys.exit("compare.py: no bench or bench_floors executable in %s (build it first)" % path)
        elif os.path.isfile(path) and os.access(path, os.X_OK):
            out.append(path)
        else:
            sys.exit("compare.py: %s is not an executable or a build folder (build it first)" % path)
    return out


def note(msg):
    sys.stderr.write("compare.py: %s\n" % msg)
    sys.stderr.flush()


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


def cost(value, unit):
    """Time per op in ns, whatever the unit: ratios are always ratios of cost."""
    if value is None:
        return None
    if unit == "ops/s":
        return 1e9 / value if value > 0 else None
    return value


def fmt_rate(per_s, unit):
    """"14.6 M msg/s", "46 GB/s"."""
    sep = "" if unit == "B/s" else " "
    for div, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_s >= div:
            return "%.3g %s%s%s" % (per_s / div, prefix, sep, unit)
    return "%.3g %s" % (per_s, unit)


def fmt_value(value, unit, group=None):
    """A row's figure; in a throughput group (group["rate"]), the rate it makes follows."""
    if value is None:
        return "—"
    text = fmt_time(value, unit)
    c = cost(value, unit)
    rate = (group or {}).get("rate", "")
    if rate and c:
        if rate == "bytes" and (group or {}).get("bytes_per_op"):
            text += " · " + fmt_rate(group["bytes_per_op"] * 1e9 / c, "B/s")
        else:
            text += " · " + fmt_rate(1e9 / c, "msg/s")
    return text


def fmt_time(value, unit):
    if unit == "ops/s":
        for div, suffix in ((1e9, " G/s"), (1e6, " M/s"), (1e3, " k/s")):
            if value >= div:
                return "%.3g%s" % (value / div, suffix)
        return "%.3g /s" % value
    ns = value
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
    """For "mproc<=100ns" and the like: (shown text, op, bound, function of mproc's cost in ns that
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
    """The fastest manual-chunksize row of a group's rows (MANUAL_ROW_RE) and its cost, or None."""
    manual = [(cost(r["value"], r["unit"]), r) for r in members
              if r["impl"] == "mproc" and MANUAL_ROW_RE.search(r["name"]) and r.get("value") is not None]
    manual = [(c, r) for c, r in manual if c]
    if not manual:
        return None
    c, r = min(manual, key=lambda x: x[0])
    return r, c


def check_target(target, mproc_floor, python_mproc, mproc_cost=None, group=None, mproc_manual=None):
    """Returns (text of the target, "yes" / "no" / "n/a")."""
    if not target:
        return "—", ""
    absolute = parse_abs_target(target, group)
    if absolute:
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


def build_table(groups, rows):
    """groups: ordered {name: {"op", "target"}}; rows: {name: aggregated row}. Returns (lines, verdicts)."""
    by_group = {}
    for r in rows.values():
        by_group.setdefault(r["group"], []).append(r)
    order = [g for g in groups if g in by_group] + sorted(g for g in by_group if g not in groups)
    lines = [
        "| workload | mproc | python | floor | mproc/floor | python/mproc | target | met? |",
        "|---|--:|--:|--:|--:|--:|---|:-:|",
    ]
    verdicts = []
    for g in order:
        members = by_group[g]
        main = {}
        for r in members:
            if r["primary"] and r["impl"] in IMPLS and r["impl"] not in main:
                main[r["impl"]] = r
        c = {i: cost(main[i]["value"], main[i]["unit"]) if i in main else None for i in IMPLS}
        mf, pm = ratio(c["mproc"], c["floor"]), ratio(c["python"], c["mproc"])
        grp = groups.get(g, {})
        best = best_manual(members)
        mm = ratio(c["mproc"], best[1]) if best else None
        shown, met = check_target(grp.get("target", ""), mf, pm, c["mproc"], grp, mm)
        if met:
            verdicts.append((g, met))
        cells = [fmt_value(main[i]["value"], main[i]["unit"], grp) if i in main else "—" for i in IMPLS]
        lines.append("| **%s** | %s | %s | %s | %s | %s | %s | %s |" % (g, *cells, fmt_ratio(mf), fmt_ratio(pm), shown, met))
        for r in members:
            if any(r is m for m in main.values()):
                continue
            rc = cost(r["value"], r["unit"])
            col = COLUMN.get(r["impl"])
            cells = [fmt_value(r["value"], r["unit"], grp) if col == i else "" for i in IMPLS]
            rmf = ratio(rc, c["floor"]) if r["impl"] == "mproc" else (ratio(c["mproc"], rc) if r["impl"] == "floor" else None)
            rpm = ratio(rc, c["mproc"]) if col == "python" else (ratio(c["python"], rc) if r["impl"] == "mproc" else None)
            lines.append(
                "| &nbsp;&nbsp;↳ %s: %s | %s | %s | %s | %s | %s | | |"
                % (r["impl"], md(r["label"]), *cells, fmt_ratio(rmf) if rmf else "", fmt_ratio(rpm) if rpm else "")
            )
    return lines, verdicts


def manual_table(groups, rows):
    """For each group with manual-chunksize rows: its main mproc row (the automatic chunksize)
    against the fastest of them, auto/best of time per op (the target "mproc/manual")."""
    by_group = {}
    for r in rows.values():
        by_group.setdefault(r["group"], []).append(r)
    order = [g for g in groups if g in by_group] + sorted(g for g in by_group if g not in groups)
    lines = []
    for g in order:
        best = best_manual(by_group[g])
        auto = [r for r in by_group[g] if r["impl"] == "mproc" and r["primary"]]
        if not best or not auto:
            continue
        grp = groups.get(g, {})
        a = auto[0]
        mm = ratio(cost(a["value"], a["unit"]), best[1])
        target = grp.get("target", "")
        lines.append("| %s | %s | %s (chunksize %s) | %s | %s |" % (
            g, fmt_value(a["value"], a["unit"], grp), fmt_value(best[0]["value"], best[0]["unit"], grp),
            MANUAL_ROW_RE.search(best[0]["name"]).group(1), fmt_ratio(mm),
            target if target.replace(" ", "").startswith("mproc/manual") else "—"))
    if not lines:
        return []
    return ["Automatic chunksize against the best manual one (auto/best of time per op):", "",
            "| group | automatic | best manual | auto/best | target |", "|---|--:|--:|--:|---|"] + lines


def detail_table(groups, rows):
    order = {g: i for i, g in enumerate(groups)}
    lines = [
        "| row | how | median | min | max | samples | iters/rep |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    key = lambda r: (order.get(r["group"], len(order)), r["group"], not r["primary"], IMPLS.index(r["impl"]) if r["impl"] in IMPLS else 9, r["name"])
    for r in sorted(rows.values(), key=key):
        u = r["unit"]
        lines.append(
            "| `%s` | %s | %s | %s | %s | %d | %s |"
            % (r["name"], md(r["label"]), fmt_value(r["value"], u), fmt_value(r["min"], u), fmt_value(r["max"], u), len(r["samples"]), "/".join(str(i) for i in r["iters"]))
        )
    return lines


def render(groups, rows, mach, settings, load_before, load_after, usage, errors):
    table, verdicts = build_table(groups, rows)
    out = []
    out.append(
        "Machine: %s, %s logical CPUs (%s usable) · Linux %s · %s · %s"
        % (mach["cpu"], mach["cpus"], mach["cpus_usable"], mach["kernel"], mach["compiler"], mach["python"])
    )
    out.append("")
    out.append(
        "Run: %s · %s · load average (1/5/15 min) %s before, %s after%s"
        % (mach["date"], settings, load_before, load_after,
           " · CPU time stolen by the hypervisor during the run: %.1f%%" % usage[1] if usage else "")
    )
    out.append("")
    out.extend(table)
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
    """mproc's rows against the same rows of the --baseline binary, measured in the same rounds."""
    out = ["Against the baseline (same rounds; new/old of time per op, < 1 is faster):", "",
           "| row | baseline | this build | new/old |", "|---|---|---|---|"]
    for name in sorted(base_rows):
        new = rows.get(name)
        if not new:
            continue
        old = base_rows[name]
        old_v = statistics.median(old["samples"])
        u = new.get("unit", "ns")
        out.append("| %s | %s | %s | %s |" % (name, fmt_time(old_v, u), fmt_time(new["value"], u),
                                             fmt_ratio(ratio(cost(new["value"], u), cost(old_v, u)))))
    return out


# ----------------------------------------------------------------------------- main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", action="append", default=[], help="the C++ `bench` binary or its build folder (repeatable)")
    p.add_argument("--python-dir", default=os.path.join(HERE, "python"), help="where the anchors_*.py scripts are")
    p.add_argument("--only", default="", metavar="REGEX", help="run only the workloads whose name matches")
    p.add_argument("--quick", action="store_true", help="1 round of 1 repetition of 0.05 s: a smoke run")
    p.add_argument("--rounds", type=int, default=None, help="rounds over all programs (default 3)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per workload per round (default 3)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per repetition (default 0.2)")
    p.add_argument("--pin", choices=("default", "split", "same", "none"), default="default",
                   help="where two-process rows run: each workload's own (default), 2 CPUs, 1 CPU, or the scheduler's choice")
    p.add_argument("--list", action="store_true", help="list the groups and workloads, run nothing")
    p.add_argument("--json-out", metavar="FILE", help="also write every row and its samples as JSON")
    p.add_argument("--write-docs", nargs="?", const=DOCS, metavar="FILE", help="write the table into docs/benchmarks.md between its markers")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    p.add_argument("--baseline", metavar="BIN", help="a `bench` binary (or its build folder) of another commit: "
                   "its mproc rows run in the same rounds and are compared with this build's")
    a = p.parse_args(argv)
    rounds = a.rounds or (1 if a.quick else 3)
    reps = a.reps or (1 if a.quick else 3)
    min_time = a.min_time or (0.05 if a.quick else 0.2)

    bins = resolve_bins(a.bin)
    scripts = sorted(
        os.path.join(a.python_dir, f) for f in os.listdir(a.python_dir) if f.startswith("anchors_") and f.endswith(".py")
    )
    sources = [Source(os.path.relpath(b, ROOT), [b]) for b in bins]
    if a.baseline:
        base = Source("baseline " + os.path.relpath(resolve_bins([a.baseline])[0], ROOT), resolve_bins([a.baseline]))
        base.baseline = True
        sources.append(base)
    sources += [Source(os.path.relpath(s, ROOT), [sys.executable, s]) for s in scripts]
    if not sources:
        sys.exit("compare.py: nothing to run (no --bin, no anchors)")

    # Groups (order, targets) and the compiler come from the C++ binaries.
    groups, info = {}, {}
    for b in bins:
        listing, err = Source(b, [b]).json_lines(["--list", "--json"], 60)
        for o in listing:
            if o.get("kind") == "group" and o["group"] not in groups:
                groups[o["group"]] = {"op": o.get("op", ""), "target": o.get("target", ""),
                                      "isolate": bool(o.get("isolate", False)),
                                      "rate": o.get("rate", ""), "bytes_per_op": o.get("bytes_per_op", 0)}
        got, _ = Source(b, [b]).json_lines(["--info"], 60)
        if got and not info:
            info = got[0]
    only = ["--only", a.only] if a.only else []

    # Each program lists what it would run; one with nothing selected is left out.
    # Rows of an isolated group run in an invocation of their own (`--only ^row$`); the others
    # run together, so that a program interleaves them.
    listed = []
    for s in sources:
        listing, err = s.json_lines(["--list", "--json"] + only, 60)
        names = [o for o in listing if o.get("kind") == "workload"]
        if err and not names:
            note("%s --list failed (%s); left out" % (s.name, err))
        if not names:
            continue
        isolated = [o for o in names if groups.get(o.get("group"), {}).get("isolate")]
        shared = [o for o in names if o not in isolated]
        if shared:
            listed.append((s, shared, None))
        for o in isolated:
            listed.append((s, [o], "^%s$" % re.escape(o["name"])))
    if a.list:
        for s, names, _ in listed:
            for o in names:
                print("%-42s %-7s %-32s %s" % (o["name"], o["impl"], s.name, o["label"]))
        return 0
    if not listed:
        sys.exit("compare.py: no workload matches %r" % a.only)
    runs = [(s, ["--only", sel] if sel else only) for s, _, sel in listed]

    load_before, times_before = loadavg(), cpu_times()
    rows, base_rows, errors = {}, {}, []
    args = ["--json", "--reps", str(reps), "--min-time", repr(min_time), "--pin", a.pin]
    for rnd in range(rounds):
        order = runs if rnd % 2 == 0 else list(reversed(runs))
        for s, sel in order:
            note("round %d/%d: %s %s" % (rnd + 1, rounds, s.name, " ".join(sel)))
            out, err = s.json_lines(args + sel, timeout=900)
            for o in out:
                if o.get("kind") == "error":
                    errors.append("%s (%s): %s" % (o.get("name"), s.name, o.get("error")))
                if o.get("kind") != "result":
                    continue
                if getattr(s, "baseline", False):
                    if o.get("impl") != "mproc":
                        continue
                    r = base_rows.setdefault(o["name"], dict(o, samples=[], iters=[]))
                    r["samples"].extend(o["samples"])
                    continue
                r = rows.setdefault(o["name"], dict(o, samples=[], iters=[]))
                r["samples"].extend(o["samples"])
                r["iters"].append(o["iters"])
            if err:
                errors.append("%s: %s" % (s.name, err))
    load_after, usage = loadavg(), busy_and_steal(times_before, cpu_times())
    for r in rows.values():
        r["value"] = statistics.median(r["samples"])
        r["min"], r["max"] = min(r["samples"]), max(r["samples"])
        r["stat"] = "median"

    mach = machine(info)
    settings = "%d round%s × %d repetition%s × ≥ %g s per row, median%s" % (
        rounds, "s" if rounds != 1 else "", reps, "s" if reps != 1 else "", min_time,
        "" if a.pin == "default" else ", --pin %s" % a.pin)
    lines, verdicts = render(groups, rows, mach, settings, load_before, load_after, usage, sorted(set(errors)))
    print()
    print("\n".join(lines))
    if a.baseline:
        print()
        print("\n".join(baseline_table(rows, base_rows)))
        for r in base_rows.values():
            r["value"] = statistics.median(r["samples"])
        manual = manual_table(groups, base_rows)
        if manual:
            print()
            print("The baseline's " + manual[0][0].lower() + manual[0][1:])
            print("\n".join(manual[1:]))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"machine": mach, "settings": settings, "load": [load_before, load_after], "usage": usage,
                       "groups": groups, "rows": rows}, f, indent=1)
    if a.write_docs:
        if a.quick or a.only:
            note("--write-docs with --quick or --only: the page now shows a partial run")
        write_docs(a.write_docs, lines)
    if a.check and any(v != "yes" for _, v in verdicts):
        return 1
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
