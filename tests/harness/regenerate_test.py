#!/usr/bin/python3
"""The committed charts regenerate from the committed rows (every figure in them is measured).

For the fixture run (tests/harness/fixture-run, whose charts/ keeps the tables only) and for
every machine under results/reference/ (charts with their images), each chart's table is rebuilt
from the run folders with iolab_plots and compared with the committed <chart>.csv. A table that
no longer matches means the rows or the plotting code changed without the charts being drawn
again (make charts RESULTS=results/reference/<machine>); the test prints the difference.

The checker itself is shown to fail on broken copies of the fixture: a chart whose CSV is gone,
a CSV with one figure changed, a row changed under a committed chart, an unregistered chart, an
SVG with a date.
"""

import shutil
import tempfile
import unittest
from pathlib import Path

from chart_checks import ROOT, check_charts, ip  # beside this file

FIXTURE = Path(__file__).resolve().parent / "fixture-run"
REFERENCE = ROOT / "results" / "reference"


class CommittedCharts(unittest.TestCase):
    def test_fixture_tables_regenerate(self) -> None:
        charts = FIXTURE / "charts"
        self.assertTrue(sorted(charts.glob("*.csv")), f"{charts} holds no chart tables")
        problems = check_charts(charts, ip.load(FIXTURE), require_images=False)
        self.assertEqual(problems, [], "\n".join(problems))

    def test_reference_charts_regenerate(self) -> None:
        machines = sorted(p for p in REFERENCE.glob(
            "*") if p.is_dir()) if REFERENCE.exists() else []
        if not machines:
            print(f"regenerate: {REFERENCE} holds no machine yet; only the fixture was checked")
        for machine in machines:
            with self.subTest(machine=machine.name):
                charts = machine / "charts"
                self.assertTrue(sorted(charts.glob("*.csv")),
                                f"{machine} has no charts (make reference draws them)")
                problems = check_charts(charts, ip.load(machine), require_images=True)
                self.assertEqual(problems, [], "\n".join(problems))
                print(f"regenerate: {machine.name}: {len(list(charts.glob('*.csv')))} charts "
                      f"match their rows")


class CheckerFailsOnBrokenCopies(unittest.TestCase):
    """Each broken variant of the fixture must be reported."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="notebooks-regen-test-"))
        self.copy = self.tmp / "fixture"
        shutil.copytree(FIXTURE, self.copy)
        self.charts = self.copy / "charts"

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)

    def problems(self, require_images=False):
        return check_charts(self.charts, ip.load(self.copy), require_images)

    def test_intact_copy_passes(self) -> None:
        self.assertEqual(self.problems(), [])

    def test_image_without_its_data_file(self) -> None:
        (self.charts / "01-saturation-rps.csv").unlink()
        (self.charts / "01-saturation-rps.png").write_bytes(b"\x89PNG")
        self.assertTrue(any("01-saturation-rps.png has no 01-saturation-rps.csv" in p
                            for p in self.problems()), self.problems())

    def test_data_file_without_images(self) -> None:
        self.assertTrue(any("has no 01-saturation-rps.png" in p
                            for p in self.problems(require_images=True)))

    def test_edited_figure_in_csv(self) -> None:
        path = self.charts / "04-syscalls-per-request.csv"
        lines = path.read_text().splitlines()
        fields = lines[1].split(",")
        fields[3] = str(float(fields[3]) * 1.01)
        lines[1] = ",".join(fields)
        path.write_text("\n".join(lines) + "\n")
        self.assertTrue(any(p.startswith("04-syscalls-per-request.csv differs")
                        for p in self.problems()))

    def test_row_changed_under_a_chart(self) -> None:
        rows = self.copy / "cache" / "harness" / "results.jsonl"
        rows.write_text(rows.read_text().replace(
            '"instructions_per_req": ', '"instructions_per_req": 1', 1))
        self.assertTrue(any(p.startswith("05-instructions-per-request.csv differs")
                        for p in self.problems()))

    def test_unregistered_chart(self) -> None:
        (self.charts / "99-made-up.csv").write_text("run,x\n")
        self.assertTrue(any("99-made-up.csv is no chart registered" in p for p in self.problems()))

    def test_svg_with_a_date(self) -> None:
        (self.charts / "01-saturation-rps.svg").write_text(
            "<svg><dc:date>2026-01-01</dc:date></svg>")
        self.assertTrue(any("carries a date" in p for p in self.problems()))

    def test_run_folder_gone(self) -> None:
        shutil.rmtree(self.copy / "affinity")
        self.assertTrue(any(p.startswith("06-affinity-rps: its data is gone")
                        for p in self.problems()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
