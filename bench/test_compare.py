#!/usr/bin/env python3
"""Tests of bench/compare.py's measurement policy against fake programs (run by make bench-smoke).

The fake programs answer the --serve protocol (bench/command_line.hpp) with a clock of their own (one
iteration of row X takes COST[X] seconds), so that calibration, the rotation and the watchdog can
be checked exactly, in a second, without measuring anything.
"""

import os
import signal
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

FAKE_SERVE = textwrap.dedent("""
    import json, sys, time
    LOG = sys.argv[1]
    COST = {"g/a": 1e-6, "g/b": 2e-6}
    for line in sys.stdin:
        words = line.split()
        with open(LOG, "a") as log:
            log.write(line)
        name = words[1]
        if words[0] == "make":
            print("a line that is not an answer", flush=True)
            print(json.dumps({"kind": "made", "name": name}), flush=True)
        elif name == "g/hang":
            with open(LOG + ".pid", "w") as f:
                f.write(str(__import__("os").getpid()))
            time.sleep(60)
        elif name == "g/exit":
            sys.exit(3)
        elif name in COST:
            n = int(words[2])
            print(json.dumps({"kind": "time", "name": name, "iters": n, "seconds": n * COST[name]}), flush=True)
        else:
            print(json.dumps({"kind": "error", "name": name, "error": "broken"}), flush=True)
""")

# The command line of `bench` before --serve: it calibrates and measures on its own.
FAKE_LEGACY = textwrap.dedent("""
    import json, sys
    args = sys.argv[1:]
    with open(args[0], "a") as log:
        log.write(" ".join(args[1:]) + "\\n")
    if "--info" in args:
        print(json.dumps({"kind": "info", "compiler": "old"}))
    elif "--list" in args:
        print(json.dumps({"kind": "workload", "name": "g/mproc", "group": "g", "impl": "mproc", "label": "old",
                          "primary": True}))
    else:
        assert args[args.index("--reps") + 1] == "1"
        print(json.dumps({"kind": "result", "name": "g/mproc", "samples": [500.0], "iters": 7}))
""")

# An MPI launcher as mpirun behaves for compare.py: `launcher --timeout S ARGV...` runs ARGV in a
# process group of its own (Open MPI's ranks have theirs) and waits for it. IGNORE_TERM: a launcher
# that does not end its job on SIGTERM (the case the session sweep is for).
FAKE_LAUNCHER = textwrap.dedent("""
    import os, signal, sys
    log, ignore_term = sys.argv[1], sys.argv[2] == "1"
    args = sys.argv[3:]
    with open(log + ".launcher", "w") as f:
        f.write(" ".join(args) + "\\n")
    assert args[0] == "--timeout" and int(args[1]) > 0
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        os.execv(args[2], args[2:])
    os.waitpid(pid, 0)
""")


def gone(pid):
    """True when `pid` has exited (or is a zombie waiting for its reaper)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class ComparePolicyTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.log = os.path.join(self.dir.name, "log")

    def tearDown(self):
        self.dir.cleanup()

    def program(self, source, legacy=False):
        path = os.path.join(self.dir.name, "legacy.py" if legacy else "serve.py")
        with open(path, "w") as f:
            f.write(source)
        prog = compare.Program("fake", [sys.executable, path, self.log])
        prog.legacy = legacy
        return prog

    def commands(self):
        with open(self.log) as f:
            return [line.split() for line in f]

    def test_calibrates_to_min_time_and_rotates_the_rows_of_a_group(self):
        prog = self.program(FAKE_SERVE)
        policy = compare.Policy(rounds=1, reps=3, min_time=0.01, pin="default")
        rows = [(prog, {"name": "g/a"}), (prog, {"name": "g/b"})]
        slots = compare.measure_group(rows, policy, 0, isolate=False)
        self.assertEqual([s.error for s in slots], [None, None])
        # 1 iteration, then x100, x30 until a trial lasts min_time / 5, then min_time + 5%.
        self.assertIn(slots[0].n, (10500, 10501))
        self.assertEqual([round(x, 6) for x in slots[0].samples["g/a"]], [1000.0] * 3)
        self.assertEqual([round(x, 6) for x in slots[1].samples["g/b"]], [2000.0] * 3)
        timed = [c[1] for c in self.commands() if c[0] == "run" and int(c[2]) in (slots[0].n, slots[1].n)]
        self.assertEqual(timed, ["g/a", "g/b"] * 3)

    def test_odd_rounds_rotate_the_other_way(self):
        prog = self.program(FAKE_SERVE)
        policy = compare.Policy(rounds=2, reps=1, min_time=0.01, pin="default")
        slots = compare.measure_group([(prog, {"name": "g/a"}), (prog, {"name": "g/b"})], policy, 1, False)
        self.assertEqual([s.rows[0]["name"] for s in slots], ["g/b", "g/a"])
        self.assertEqual([c[1] for c in self.commands() if c[0] == "make"], ["g/b", "g/a"])

    def test_a_failing_row_fails_alone(self):
        prog = self.program(FAKE_SERVE)
        policy = compare.Policy(rounds=1, reps=1, min_time=0.01, pin="default")
        slots = compare.measure_group([(prog, {"name": "g/broken"}), (prog, {"name": "g/a"})], policy, 0, False)
        self.assertEqual(slots[0].error, "broken")
        self.assertIsNone(slots[1].error)

    def test_a_row_without_an_answer_is_killed_by_the_watchdog(self):
        prog = self.program(FAKE_SERVE)
        policy = compare.Policy(rounds=1, reps=1, min_time=0.01, pin="default")
        policy.timeout = lambda: 1
        rows = [(prog, {"name": "g/hang"}), (prog, {"name": "g/exit"}), (prog, {"name": "g/a"})]
        slots = compare.measure_group(rows, policy, 0, isolate=True)
        self.assertIn("watchdog: no answer to 'run g/hang 1'", slots[0].error)
        self.assertIn("exited (status 3)", slots[1].error)
        self.assertIsNone(slots[2].error)

    def test_a_baseline_from_before_serve_runs_one_repetition_per_call(self):
        prog = self.program(FAKE_LEGACY, legacy=True)
        prog.load(True)
        self.assertTrue(prog.legacy)
        policy = compare.Policy(rounds=1, reps=3, min_time=0.01, pin="same")
        slots = compare.measure_group([(prog, w) for w in prog.workloads], policy, 0, False)
        self.assertIsNone(slots[0].error)
        self.assertEqual(slots[0].samples["g/mproc"], [500.0] * 3)
        runs = [c for c in self.commands() if "--reps" in c]
        self.assertEqual(len(runs), 3)
        self.assertEqual(runs[0][runs[0].index("--only") + 1], "^(g/mproc)$")
        self.assertEqual(runs[0][runs[0].index("--pin") + 1], "same")


    def mpi_program(self, ignore_term=False):
        serve = os.path.join(self.dir.name, "serve.py")
        with open(serve, "w") as f:
            f.write(FAKE_SERVE)
        launcher = os.path.join(self.dir.name, "launcher.py")
        with open(launcher, "w") as f:
            f.write(FAKE_LAUNCHER)
        return compare.Program("fake mpi", [sys.executable, serve, self.log],
                               launcher=[sys.executable, launcher, self.log, "1" if ignore_term else "0"])

    def test_an_mpi_program_serves_through_its_launcher_with_a_backstop(self):
        prog = self.mpi_program()
        policy = compare.Policy(rounds=1, reps=2, min_time=0.01, pin="default")
        slots = compare.measure_group([(prog, {"name": "g/a"}), (prog, {"name": "g/b"})], policy, 0, False)
        self.assertEqual([s.error for s in slots], [None, None])
        self.assertEqual([round(x, 6) for x in slots[1].samples["g/b"]], [2000.0] * 2)
        with open(self.log + ".launcher") as f:
            argv = f.read().split()
        self.assertEqual(argv[:2], ["--timeout", str(int(policy.backstop(2)))])
        self.assertEqual(argv[-3:], ["--serve", "--pin", "default"])
        self.assertGreater(policy.backstop(2), policy.timeout() * 2)

    def test_a_hung_mpi_job_is_ended_with_its_ranks(self):
        prog = self.mpi_program(ignore_term=True)
        policy = compare.Policy(rounds=1, reps=1, min_time=0.01, pin="default")
        policy.timeout = lambda: 1
        old, compare.Server.TERM_GRACE = compare.Server.TERM_GRACE, 0.5
        try:
            t0 = time.monotonic()
            slots = compare.measure_group([(prog, {"name": "g/hang"}), (prog, {"name": "g/a"})], policy, 0, True)
        finally:
            compare.Server.TERM_GRACE = old
        self.assertLess(time.monotonic() - t0, 30)
        self.assertIn("watchdog: no answer to 'run g/hang 1'", slots[0].error)
        self.assertIsNone(slots[1].error)
        with open(self.log + ".pid") as f:
            rank = int(f.read())
        deadline = time.monotonic() + 5
        while not gone(rank) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not gone(rank):
            os.kill(rank, signal.SIGKILL)
            self.fail("the rank (pid %d, a process group of its own) outlived its killed launcher" % rank)


class CompareTablesTest(unittest.TestCase):
    """The MPI table: its columns, ratios, speedups and targets, from aggregated rows."""

    @staticmethod
    def row(name, impl, value, primary=True):
        return {"name": name, "group": name.split("/")[0], "impl": impl, "label": name, "primary": primary,
                "value": value, "min": value, "max": value, "samples": [value], "iters": [1]}

    def tables(self):
        groups = {"g.other": {"target": ""},
                  "mpi.noop": {"target": "python/mproc>=10", "mpi": True},
                  "mpi.cpu": {"target": "speedup>=1.8", "mpi": True}}
        rows = [self.row("g.other/mproc", "mproc", 5.0),
                self.row("mpi.noop/mproc", "mproc", 20e3), self.row("mpi.noop/python", "python", 400e3),
                self.row("mpi.noop/local", "local", 4e3),
                self.row("mpi.cpu/mproc", "mproc", 5.2e6), self.row("mpi.cpu/mproc.serial", "mproc", 10e6, False),
                self.row("mpi.cpu/local", "local", 5e6), self.row("mpi.cpu/python", "python", 12e6),
                self.row("mpi.cpu/python.serial", "python", 10e6, False)]
        return groups, {r["name"]: r for r in rows}

    def test_the_mpi_groups_have_a_table_of_their_own(self):
        groups, rows = self.tables()
        main, _ = compare.build_table(groups, rows)
        self.assertEqual([ln.split("|")[1].strip() for ln in main[2:]], ["**g.other**"])
        lines, verdicts = compare.mpi_table(groups, rows)
        noop = next(ln for ln in lines if "**mpi.noop**" in ln).split("|")
        # mproc MPI, mpi4py.futures, local; mpi4py/MPI, MPI/local; target, met.
        self.assertEqual([c.strip() for c in noop[2:9]],
                         ["20 µs", "400 µs", "4 µs", "20.0×", "5.00×", "python/mproc ≥ 10", "yes"])
        speed = next(ln for ln in lines if "speedup:" in ln).split("|")
        self.assertEqual([c.strip() for c in speed[2:5]], ["1.92×", "0.83×", "2.00×"])
        self.assertEqual(dict(verdicts), {"mpi.noop": "yes", "mpi.cpu": "yes"})
        self.assertIn("`mpirun -np 2 %s`" % " ".join(compare.MPI_OPTIONS), lines[0])
        self.assertIn("--bind-to none`", compare.mpi_table(groups, rows, ["--bind-to", "none"])[0][0])

    def test_a_speedup_target_fails_below_its_bound_and_is_na_without_a_serial_row(self):
        groups, rows = self.tables()
        rows["mpi.cpu/mproc"]["value"] = 8e6  # 1.25x
        _, verdicts = compare.mpi_table(groups, rows)
        self.assertEqual(dict(verdicts)["mpi.cpu"], "**no**")
        del rows["mpi.cpu/mproc.serial"]
        _, verdicts = compare.mpi_table(groups, rows)
        self.assertEqual(dict(verdicts)["mpi.cpu"], "n/a")

    def test_no_mpi_rows_no_mpi_table(self):
        groups, rows = self.tables()
        self.assertEqual(compare.mpi_table(groups, {"g.other/mproc": rows["g.other/mproc"]}), ([], []))

    def test_mpi_groups_come_from_the_mpi_programs_even_when_only_an_anchor_names_them(self):
        bench = compare.Program("bench", ["bench"])
        bench.groups = [{"group": "g.other", "target": ""}]
        mpi = compare.Program("mpi_bench", ["mpi_bench"], launcher=["mpirun"])
        mpi.groups = [{"group": "mpi.noop", "target": "python/mproc>=10"}]
        mpi.workloads = [{"name": "mpi.noop/mproc", "group": "mpi.noop"}]
        anchor = compare.Program("anchor", ["anchor"], launcher=["mpiexec"])
        anchor.workloads = [{"name": "mpi.map/python", "group": "mpi.map"}]
        groups = compare.add_mpi_groups({o["group"]: o for o in bench.groups}, [bench, mpi, anchor])
        self.assertEqual(list(groups), ["g.other", "mpi.noop", "mpi.map"])
        self.assertNotIn("mpi", groups["g.other"])
        self.assertEqual(groups["mpi.noop"], {"group": "mpi.noop", "target": "python/mproc>=10", "mpi": True})
        self.assertTrue(groups["mpi.map"]["mpi"])


if __name__ == "__main__":
    unittest.main()
