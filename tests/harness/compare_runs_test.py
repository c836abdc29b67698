#!/usr/bin/python3
"""Tests of bench/compare_runs.py (`make compare A= B=`) on two small run folders made here.

The run folders hold only what compare_runs.py reads (manifest.json, harness/summary.json,
micro/*.json) in the shape bench/run.py writes; Google Benchmark's compare.py is replaced by a
stand-in script that records its arguments, so the test needs no SciPy.
"""

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path
from typing import Any

import compare_runs  # bench/ on PYTHONPATH (CTest sets it)


def summary_row(server, point, metric, median, valid=True, why=()):
    return {"server": server, "params": {}, "point": point, "metric": metric, "median": median,
            "spread": 0.01, "n": 3, "valid": valid, "why_invalid": list(why)}


def interval_row(server, metric, mean, low, high, valid=True):
    """A summary entry as run.py writes it since issue 26: mean and 95% interval."""
    return {"server": server, "params": {}, "point": "fixed_rate", "metric": metric,
            "mean": mean, "low": low, "high": high, "method": "t", "median": mean,
            "spread": 0.01, "n": 3, "valid": valid, "reasons": [], "why_invalid": []}


def make_run(root, name, rows, cpu="Test CPU", micro=None):
    run = Path(root) / name
    (run / "harness").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"cpu_model": cpu, "cpus_online": "0-1",
                                                   "kernel": "6.1", "git_revision": name,
                                                   "scenario": "quick"}))
    (run / "harness" / "summary.json").write_text(json.dumps(rows))
    if micro is not None:
        (run / "micro").mkdir()
        (run / "micro" / "syscalls.json").write_text(json.dumps(micro))
    return run


def run_main(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = compare_runs.main(list(args))
    return status, out.getvalue(), err.getvalue()


class CompareRunsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="compare-runs-test-")
        self.root = Path(self.tmp.name)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_ratio_of_medians_per_cell(self) -> None:
        a = make_run(self.root, "a", [summary_row("epoll_et", "saturation", "rps", 50000),
                                      summary_row("epoll_et", "fixed_rate", "server_cpu_us", 10.0)])
        b = make_run(self.root, "b", [summary_row("epoll_et", "saturation", "rps", 100000),
                                      summary_row("epoll_et", "fixed_rate", "server_cpu_us", 5.0)])
        status, out, _ = run_main(str(a), str(b), "--no-micro")
        self.assertEqual(status, 0, out)
        rps = next(ln for ln in out.splitlines() if " rps " in ln)
        cpu = next(ln for ln in out.splitlines() if "server_cpu_us" in ln)
        self.assertIn("2.00x", rps)
        self.assertIn("0.50x", cpu)

    def test_invalid_metric_keeps_its_mark_and_reason(self) -> None:
        a = make_run(self.root, "a", [summary_row("nginx", "saturation", "rps", 40000)])
        b = make_run(self.root, "b", [summary_row("nginx", "saturation", "rps", 42000, valid=False,
                                                  why=["spread 40%"])])
        status, out, _ = run_main(str(a), str(b), "--no-micro")
        self.assertEqual(status, 0)
        line = next(ln for ln in out.splitlines() if ln.startswith("nginx"))
        self.assertIn("1.05x !", line)
        self.assertIn("! B nginx saturation rps: spread 40%", out)

    def test_agreement_within_intervals(self) -> None:
        # Overlapping intervals agree; disjoint ones do not; an old summary (a median, no
        # interval) cannot say.
        a = make_run(self.root, "a", [interval_row("epoll_et", "rps", 100, 95, 105),
                                      interval_row("epoll_et", "server_cpu_us", 10.0, 9.8, 10.2),
                                      summary_row("epoll_et", "fixed_rate", "p50_us", 50)])
        b = make_run(self.root, "b", [interval_row("epoll_et", "rps", 108, 104, 112),
                                      interval_row("epoll_et", "server_cpu_us", 11.0, 10.7, 11.3),
                                      summary_row("epoll_et", "fixed_rate", "p50_us", 60)])
        status, out, _ = run_main(str(a), str(b), "--no-micro")
        self.assertEqual(status, 0, out)
        lines = out.splitlines()
        rps = next(ln for ln in lines if " rps " in ln)
        cpu = next(ln for ln in lines if "server_cpu_us" in ln)
        p50 = next(ln for ln in lines if "p50_us" in ln)
        self.assertTrue(rps.endswith("yes"), rps)
        self.assertIn("100 ±5%", rps)
        self.assertTrue(cpu.endswith("NO"), cpu)
        self.assertTrue(p50.endswith("?"), p50)
        self.assertIn("all cells: 1 of 2 agree within their 95% intervals; 2 of 3 within 10%",
                      out)

    def test_valid_rows_per_run_and_small_counts_agree_on_absolute_precision(self) -> None:
        ctx = lambda v: dict(interval_row("epoll_et", "ctx_switches_per_req", v, v, v))  # noqa
        a = [interval_row("epoll_et", "rps", 100.0, 99.0, 101.0),
             interval_row("threads", "rps", 100.0, 70.0, 130.0, valid=False), ctx(2.0e-05)]
        b = [interval_row("epoll_et", "rps", 104.0, 103.0, 105.0),
             interval_row("threads", "rps", 100.0, 99.0, 101.0), ctx(9.5e-05)]
        make_run(self.root, "a", a)
        make_run(self.root, "b", b)
        status, out, _ = run_main(str(self.root / "a"), str(self.root / "b"), "--no-micro")
        self.assertEqual(status, 0, out)
        self.assertIn("valid metric rows in A: fixed_rate 2 of 3, fixed-rate and saturation "
                      "together 2 of 3 (67%)", out)
        self.assertIn("valid metric rows in B: fixed_rate 3 of 3", out)
        # 0.00002 and 0.000095 context switches per request are both none: they agree, though
        # not within 10% of each other.
        self.assertIn("cells valid in both runs: 0 of 2 agree within their 95% intervals; "
                      "2 of 2 within 10%", out)

    def test_different_machines_are_called_out(self) -> None:
        a = make_run(self.root, "a", [summary_row("x", "saturation", "rps", 1)], cpu="CPU one")
        b = make_run(self.root, "b", [summary_row("x", "saturation", "rps", 1)], cpu="CPU two")
        _, out, _ = run_main(str(a), str(b), "--no-micro")
        self.assertIn("the runs differ in CPU", out)

    def test_no_shared_cell_is_an_error(self) -> None:
        a = make_run(self.root, "a", [summary_row("x", "saturation", "rps", 1)])
        b = make_run(self.root, "b", [summary_row("y", "saturation", "rps", 1)])
        status, out, _ = run_main(str(a), str(b), "--no-micro")
        self.assertEqual(status, 1)
        self.assertIn("share no", out)
        self.assertIn("in one run only: x saturation, y saturation", out)

    def test_missing_run_names_it(self) -> None:
        a = make_run(self.root, "a", [])
        status, _, err = run_main(str(a), str(self.root / "nowhere"))
        self.assertEqual(status, 2)
        self.assertIn("no run folder", err)
        self.assertIn("nowhere", err)

    def test_micro_files_go_to_google_benchmark_compare(self) -> None:
        micro: dict[str, Any] = {"context": {}, "benchmarks": []}
        a = make_run(self.root, "a", [summary_row("x", "saturation", "rps", 1)], micro=micro)
        b = make_run(self.root, "b", [summary_row("x", "saturation", "rps", 1)], micro=micro)
        log = self.root / "stand-in.log"
        stand_in = self.root / "compare.py"
        stand_in.write_text(f"import sys\nopen({str(log)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                            "print('stand-in table')\n")
        saved = compare_runs.GBENCH_COMPARE
        compare_runs.GBENCH_COMPARE = stand_in
        try:
            status, out, _ = run_main(str(a), str(b))
        finally:
            compare_runs.GBENCH_COMPARE = saved
        self.assertEqual(status, 0, out)
        self.assertIn("stand-in table", out)
        self.assertEqual(log.read_text(), f"--no-color benchmarks {a}/micro/syscalls.json "
                                          f"{b}/micro/syscalls.json")

    def test_missing_google_benchmark_tool_is_said(self) -> None:
        micro: dict[str, Any] = {"context": {}, "benchmarks": []}
        a = make_run(self.root, "a", [summary_row("x", "saturation", "rps", 1)], micro=micro)
        b = make_run(self.root, "b", [summary_row("x", "saturation", "rps", 1)], micro=micro)
        saved = compare_runs.GBENCH_COMPARE
        compare_runs.GBENCH_COMPARE = self.root / "absent.py"
        try:
            status, out, _ = run_main(str(a), str(b))
        finally:
            compare_runs.GBENCH_COMPARE = saved
        self.assertEqual(status, 1)
        self.assertIn("libbenchmark-tools", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
