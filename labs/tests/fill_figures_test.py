#!/usr/bin/python3
"""Tests of labs/fill_figures.py and bench/iolab_bench/figures.py on fixture runs built here.

A fixture lab tree (two labs, markers, figures.json) and a fixture reference folder (one harness
run, one micro run, an older and an interrupted run) are written to a temporary folder; the
script runs on them in-process. Standard library only.
"""

import contextlib
import io
import json
import tempfile
import unittest
from pathlib import Path

import fill_figures  # labs/ and bench/ on PYTHONPATH (CTest sets it)
from iolab_bench import figures

LABS = Path(__file__).resolve().parent.parent


def summary_row(server, point, metric, median, params=None, why=()):
    return {"server": server, "params": params or {}, "point": point, "metric": metric,
            "median": median, "spread": 0.01, "n": 3, "valid": not why, "why_invalid": list(why)}


def write_run(folder, scenario, started, summary=None, micro=None, finished=True):
    folder.mkdir(parents=True)
    manifest = {"scenario": scenario, "started": started, "cpu_model": "Fixture CPU 3000",
                "cpus_online": "0-1", "hostname": "fixture"}
    if finished:
        manifest["finished"] = started
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if summary is not None:
        (folder / "harness").mkdir()
        (folder / "harness" / "summary.json").write_text(json.dumps(summary))
    for suite, benchmarks in (micro or {}).items():
        (folder / "micro").mkdir(exist_ok=True)
        doc = {"context": {}, "benchmarks": benchmarks}
        (folder / "micro" / f"{suite}.json").write_text(json.dumps(doc))


README_01 = """# Lab 01
select costs <!-- fig:select_cpu -->old<!-- /fig --> per request at 900 idle connections,
a system call <!-- fig:getppid_ns -->(run make lab-01)<!-- /fig -->,
pooled <!-- fig:pooled_rps -->x<!-- /fig -->, io_uring <!-- fig:uring -->y<!-- /fig -->
on <!-- fig:machine -->?<!-- /fig -->.
"""
FIGURES_01 = {
    "select_cpu": {"scenario": "c10k", "server": "select", "point": "fixed_rate",
                   "metric": "server_cpu_us", "params": {"idle_connections": 900},
                   "format": "{:.1f} us"},
    "getppid_ns": {"micro": "syscalls", "benchmark": "BM_Getppid", "field": "real_time",
                   "format": "{:.0f} ns"},
    "pooled_rps": {"scenario": "c10k", "server": "pooled", "point": "saturation", "metric": "rps"},
    "uring": {"scenario": "c10k", "server": "io_uring", "point": "saturation", "metric": "rps"},
}


class FillFiguresTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="labs-fill-")
        root = Path(self.tmp.name)
        self.labs = root / "labs"
        self.lab1 = self.labs / "01-first"
        self.lab1.mkdir(parents=True)
        (self.lab1 / "README.md").write_text(README_01)
        (self.lab1 / "figures.json").write_text(json.dumps(FIGURES_01))
        lab2 = self.labs / "02-second"
        lab2.mkdir()
        (lab2 / "README.md").write_text("No figures here.\n")
        self.reference = root / "reference"

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def make_reference(self):
        machine = self.reference / "fixture-vm"
        summary = [
            summary_row("select", "fixed_rate", "server_cpu_us", 41.26, {"idle_connections": 900}),
            summary_row("select", "fixed_rate", "server_cpu_us", 12.0, {"idle_connections": 0}),
            summary_row("pooled", "saturation", "rps", 123456.0, {}, why=["spread 22%"]),
        ]
        write_run(machine / "c10k", "c10k", "2026-01-02T00:00:00", summary=summary)
        # An older run of the same scenario with another value: the newest must win.
        old = [summary_row("select", "fixed_rate", "server_cpu_us",
                           99.0, {"idle_connections": 900})]
        write_run(machine / "c10k-old", "c10k", "2025-01-01T00:00:00", summary=old)
        micro = {"syscalls": [
            {"name": "BM_Getppid", "run_name": "BM_Getppid", "run_type": "iteration",
             "real_time": 0.25, "cpu_time": 0.2, "time_unit": "us"},
        ]}
        write_run(machine / "micro", "micro", "2026-01-01T00:00:00", micro=micro)

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = fill_figures.main(["--labs-dir", str(self.labs), "--reference",
                                    str(self.reference), *args])
        return rc, out.getvalue() + err.getvalue()

    def test_no_reference_leaves_placeholders_and_says_so(self) -> None:
        rc, out = self.run_main()
        self.assertEqual(rc, 0, out)
        self.assertIn("no reference run", out)
        text = (self.lab1 / "README.md").read_text()
        self.assertEqual(text.count("(run make lab-01)"), 5, text)
        self.assertNotIn("old", text)

    def test_fills_from_reference(self) -> None:
        self.make_reference()
        rc, out = self.run_main()
        self.assertEqual(rc, 0, out)
        text = (self.lab1 / "README.md").read_text()
        self.assertIn("<!-- fig:select_cpu -->41.3 us<!-- /fig -->", text)
        # 0.25 us converted to ns.
        self.assertIn("<!-- fig:getppid_ns -->250 ns<!-- /fig -->", text)
        self.assertIn("<!-- fig:pooled_rps -->1.23e+05 ! [^1]<!-- /fig -->", text)
        self.assertIn("[^1]: not valid on the reference run: `pooled_rps`: spread 22%.", text)
        self.assertIn("<!-- fig:uring -->(not in the reference run fixture-vm)<!-- /fig -->", text)
        self.assertIn("<!-- fig:machine -->Fixture 3000, 2 CPUs, Linux ?<!-- /fig -->", text)
        # A second pass changes nothing, and --check agrees.
        rc, out = self.run_main("--check")
        self.assertEqual(rc, 0, out)

    def test_check_reports_stale_readme(self) -> None:
        self.make_reference()
        before = (self.lab1 / "README.md").read_text()
        rc, out = self.run_main("--check")
        self.assertEqual(rc, 1, out)
        self.assertIn("out of date", out)
        self.assertEqual((self.lab1 / "README.md").read_text(), before)

    def test_marker_without_source_is_an_error(self) -> None:
        (self.labs / "02-second" / "README.md").write_text("x <!-- fig:nowhere -->1<!-- /fig -->\n")
        rc, out = self.run_main()
        self.assertEqual(rc, 1)
        self.assertIn("fig:nowhere has no source", out)

    def test_unused_source_is_an_error(self) -> None:
        doc = dict(FIGURES_01, spare={"micro": "syscalls",
                   "benchmark": "BM_X", "field": "cpu_time"})
        (self.lab1 / "figures.json").write_text(json.dumps(doc))
        rc, out = self.run_main()
        self.assertEqual(rc, 1)
        self.assertIn("spare is not used", out)

    def test_malformed_source_is_an_error(self) -> None:
        doc = dict(FIGURES_01)
        doc["select_cpu"] = {"scenario": "c10k", "server": "select"}
        (self.lab1 / "figures.json").write_text(json.dumps(doc))
        rc, out = self.run_main()
        self.assertEqual(rc, 1)
        self.assertIn("lacks point, metric", out)

    def test_two_machines_need_a_choice(self) -> None:
        self.make_reference()
        write_run(self.reference / "other" / "c10k", "c10k", "2026-01-03T00:00:00", summary=[])
        with self.assertRaises(SystemExit) as ctx:
            self.run_main()
        self.assertIn("several reference machines", str(ctx.exception))
        rc, out = self.run_main("--machine", "fixture-vm")
        self.assertEqual(rc, 0, out)


class FiguresTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="labs-figs-")
        self.root = Path(self.tmp.name)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_missing_params_with_several_cells_is_ambiguous(self) -> None:
        summary = [summary_row("select", "fixed_rate", "p99_us", 10, {"idle_connections": 0}),
                   summary_row("select", "fixed_rate", "p99_us", 20, {"idle_connections": 900})]
        write_run(self.root / "r", "c10k", "2026", summary=summary)
        runs = figures.find_runs(self.root)
        with self.assertRaises(figures.SourceError):
            figures.figure(runs, {"scenario": "c10k", "server": "select", "point": "fixed_rate",
                                  "metric": "p99_us"})

    def test_finished_run_preferred_over_newer_interrupted(self) -> None:
        row = lambda v: [summary_row("epoll_et", "saturation", "rps", v)]  # noqa: E731
        write_run(self.root / "a", "quick", "2026-01-01", summary=row(1.0))
        write_run(self.root / "b", "quick", "2026-02-01", summary=row(2.0), finished=False)
        fig = figures.figure(figures.find_runs(self.root),
                             {"scenario": "quick", "server": "epoll_et", "point": "saturation",
                              "metric": "rps"})
        self.assertEqual(fig.value, 1.0)
        self.assertTrue(fig.valid)

    def test_micro_median_aggregate_and_counter(self) -> None:
        benchmarks = [
            {"name": "BM_Pipe/same_core", "run_name": "BM_Pipe/same_core", "run_type": "iteration",
             "real_time": 5, "time_unit": "us", "ctx_switches": 2.0},
            {"name": "BM_Pipe/same_core_median", "run_name": "BM_Pipe/same_core",
             "run_type": "aggregate", "aggregate_name": "median", "real_time": 4,
             "time_unit": "us", "ctx_switches": 1.8},
        ]
        write_run(self.root / "m", "micro", "2026", micro={"switch": benchmarks})
        runs = figures.find_runs(self.root)
        fig = figures.figure(runs, {"micro": "switch", "benchmark": "BM_Pipe/same_core",
                                    "field": "real_time"})
        self.assertEqual(fig.value, 4000.0)
        fig = figures.figure(runs, {"micro": "switch", "benchmark": "BM_Pipe/same_core",
                                    "field": "ctx_switches"})
        self.assertEqual(fig.value, 1.8)
        self.assertIsNone(figures.figure(
            runs, {"micro": "ipc", "benchmark": "BM_X", "field": "real_time"}))
        with self.assertRaises(figures.SourceError):
            figures.figure(
                runs, {"micro": "switch", "benchmark": "BM_Pipe/same_core", "field": "nope"})

    def test_find_runs_descends_into_folders_of_runs(self) -> None:
        write_run(self.root / "m1" / "x" / "run1", "quick", "2026-01-01", summary=[])
        write_run(self.root / "m1" / "run2", "c10k", "2026-01-02", summary=[])
        runs = figures.find_runs(self.root)
        self.assertEqual([r.dir.name for r in runs], ["run2", "run1"])
        self.assertEqual(figures.find_runs(self.root / "m1" / "run2")[0].scenario, "c10k")


if __name__ == "__main__":
    unittest.main(verbosity=2)
