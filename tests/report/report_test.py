#!/usr/bin/python3
"""Unit tests of bench/iolab_bench/report.py (make report), without a browser: what RESULTS is
recognised as, the figures with and without issue 26's interval keys, footnotes, escaping, a
ledger that cannot be evaluated, and that a page fetches nothing."""

import json
import re
import shutil
import tempfile
import unittest
from pathlib import Path
from typing import Any
from unittest import mock

from iolab_bench import claims, report  # bench/ on PYTHONPATH (CTest, the Makefile)

ROOT = Path(__file__).resolve().parents[2]

QUICK = ROOT / "tests" / "harness" / "fixture-run" / "quick"


def row(**kw: Any) -> dict[str, Any]:
    base = {"server": "threads", "params": {}, "point": "fixed_rate", "metric": "server_cpu_us",
            "median": 10.0, "spread": 0.07, "n": 3, "valid": True, "why_invalid": []}
    base.update(kw)
    return base


class Layout(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="report-test-"))

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)

    def test_kinds(self) -> None:
        machines = self.tmp / "class"
        run = machines / "alice-laptop" / "quick"
        shutil.copytree(QUICK, run)
        self.assertEqual(report.layout(run), report.RUN)
        self.assertEqual(report.layout(run.parent), report.MACHINE)
        self.assertEqual(report.layout(machines), report.MACHINES)
        (self.tmp / "empty" / "sub").mkdir(parents=True)
        with self.assertRaises(report.ReportError):
            report.layout(self.tmp / "empty")
        with self.assertRaises(report.ReportError):
            report.layout(self.tmp / "missing")

    def test_newest_of_each_scenario(self) -> None:
        for name, started in (("a", "2026-01-01"), ("b", "2026-02-01")):
            shutil.copytree(QUICK, self.tmp / name)
            m = json.loads((self.tmp / name / "manifest.json").read_text())
            m["started"] = started
            (self.tmp / name / "manifest.json").write_text(json.dumps(m))
        shown, older = report.newest_per_scenario(self.tmp)
        self.assertEqual([r.path.name for r in shown], ["b"])
        self.assertEqual([r.path.name for r in older], ["a"])


class Figures(unittest.TestCase):
    def test_today_keys(self) -> None:
        self.assertEqual(report.interval_text(row()), ("10", "median of 3, spread 7%"))
        self.assertIsNone(report.ratio_text(row()))

    def test_interval_keys(self) -> None:
        r = row(mean=10.5, low=9.5, high=11.25, method="t", ratio=0.8, ratio_low=0.75,
                ratio_high=0.85)
        self.assertEqual(report.interval_text(r), ("10.5", "[9.5, 11.2] 95%"))
        self.assertEqual(report.ratio_text(r), "0.8× baseline [0.75, 0.85]")
        self.assertEqual(report.interval_text(row(mean=3.0, low=None, high=None,
                                                  method="too few rounds")),
                         ("3", "no interval (too few rounds)"))

    def test_footnotes(self) -> None:
        notes = report.Footnotes()
        text, valid = report.cell_html(row(valid=False, why_invalid=["spread 23%", "steal 3%"]),
                                       notes)
        self.assertFalse(valid)
        self.assertIn('href="#fn1">1</a>,<a class="fn" href="#fn2">2</a>', text)
        again, _ = report.cell_html(row(valid=False, reasons=["steal 3%"]), notes)
        self.assertIn('href="#fn2"', again)  # the same reason keeps its number
        self.assertIn('<li id="fn2">steal 3%</li>', notes.html())

    def test_ratio_to_baseline_without_ratio_keys(self) -> None:
        run = report.RunInfo(Path("x"), {"baseline": "nginx"}, [
            row(server="threads", point="saturation", metric="rps", median=50.0),
            row(server="nginx", point="saturation", metric="rps", median=100.0, valid=False,
                why_invalid=["spread 88%"])])
        notes = report.Footnotes()
        text, valid = report.ratio_cell(run, "threads", "nginx", notes)
        self.assertTrue(text.startswith("0.5×"))
        self.assertIn("no interval", text)
        self.assertFalse(valid, "a ratio to an invalid baseline is not valid")
        self.assertIn("nginx: spread 88%", notes.notes)


class Pages(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="report-test-"))
        self.folder = self.tmp / "run"
        shutil.copytree(QUICK, self.folder)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)

    def test_escaped_and_self_contained(self) -> None:
        summary = json.loads((self.folder / "harness" / "summary.json").read_text())
        summary[0]["server"] = "<script>alert(1)</script>"
        (self.folder / "harness" / "summary.json").write_text(json.dumps(summary))
        text = report.write_report(self.folder).read_text()
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", text)
        self.assertNotIn("<script", text)
        self.assertFalse(re.findall(r'(?:src|href)="(?:https?:)?//', text))
        self.assertIn('href="harness/results.jsonl"', text)

    def test_ledger_that_fails(self) -> None:
        with mock.patch.object(claims, "load_ledger", side_effect=KeyError("claims")):
            text = report.write_report(self.folder).read_text()
        self.assertIn("The claims ledger could not be evaluated here", text)
        self.assertIn("KeyError", text)

    def test_ledger_evaluated(self) -> None:
        verdicts, error = report.ledger(self.folder)
        self.assertIsNone(error)
        self.assertGreaterEqual(len(verdicts), 20)
        self.assertTrue(all(v.cid.startswith("C") for v in verdicts))


if __name__ == "__main__":
    unittest.main(verbosity=2)
