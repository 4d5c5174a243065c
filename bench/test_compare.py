#!/usr/bin/env python3
"""Tests of bench/compare.py's measurement policy against fake programs (run by make bench-smoke).

The fake programs answer the --serve protocol (bench/main.cpp) with a clock of their own (one
iteration of row X takes COST[X] seconds), so that calibration, the rotation and the watchdog can
be checked exactly, in a second, without measuring anything.
"""

import os
import sys
import tempfile
import textwrap
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


if __name__ == "__main__":
    unittest.main()
