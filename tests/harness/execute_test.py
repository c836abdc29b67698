#!/usr/bin/python3
"""Executes the notebooks headless against a copy of the fixture run, as `make charts` does.

  execute_test.py [NOTEBOOK...]     (default: all of notebooks/NN-*.ipynb)

It runs notebooks/charts.py draw (Debian's Jupyter, the project kernel, RESULTS and CHARTS in
the environment) on a scratch copy of tests/harness/fixture-run, which has data for every
notebook, and checks: one line per notebook saying what it drew, that every chart registered
for the notebook was written as PNG, SVG and CSV, that each CSV is the table rebuilt from the
rows and equals the committed one in fixture-run/charts, and that the source notebooks were
left as they were (no outputs written back), and that each executed notebook was kept as an
HTML page with its charts and no script to fetch (notebooks/NN-name.html, make report links it).
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from chart_checks import ROOT, check_charts, ip  # beside this file

FIXTURE = Path(__file__).resolve().parent / "fixture-run"
NOTEBOOKS = sys.argv[1:] or sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
del sys.argv[1:]


class ExecuteNotebook(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="notebooks-exec-"))
        self.results = self.tmp / "run"
        shutil.copytree(FIXTURE, self.results)
        shutil.rmtree(self.results / "charts")

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)

    def test_execute(self) -> None:
        sources = {nb: ROOT / "notebooks" / f"{nb}.ipynb" for nb in NOTEBOOKS}
        before = {nb: hashlib.sha256(p.read_bytes()).hexdigest() for nb, p in sources.items()}
        env = {k: v for k, v in os.environ.items() if k not in ("RESULTS", "CHARTS")}
        proc = subprocess.run(["/usr/bin/python3", str(ROOT / "notebooks" / "charts.py"), "draw",
                               "--results", str(self.results), "--only", ",".join(NOTEBOOKS),
                               "--jobs", "2"],
                              capture_output=True, text=True, env=env, timeout=900)
        print(proc.stdout, proc.stderr, sep="\n")
        self.assertEqual(proc.returncode, 0)
        self.assertFalse(re.search(r"Traceback|Error", proc.stdout))
        charts = self.results / "charts"
        results = ip.load(self.results)
        for nb in NOTEBOOKS:
            with self.subTest(notebook=nb):
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"charts: {nb}: ")]
                self.assertEqual(len(line), 1, proc.stdout)
                self.assertRegex(line[0], rf"^charts: {nb}: \d+ charts in \d+ s: ")
                expected = {name for name, (owner, _) in ip.TABLES.items() if owner == nb}
                if nb == "09-micro":  # one chart per suite the run has
                    expected = {f"09-micro-{t}" for t in ip.micro_topics(results)}
                self.assertEqual({p.stem for p in charts.glob(f"{nb[:2]}-*.png")}, expected)
                for stem in expected:
                    for ext in (".png", ".svg"):
                        self.assertGreater(
                            (charts / f"{stem}{ext}").stat().st_size, 200, f"{stem}{ext}")
                    # A table: its header and a row at least (a figure of one round has no
                    # interval, so four such rows fit in under 200 bytes).
                    self.assertGreaterEqual(
                        len((charts / f"{stem}.csv").read_text().splitlines()), 2, stem)
                    self.assertEqual((charts / f"{stem}.csv").read_text(),
                                     (FIXTURE / "charts" / f"{stem}.csv").read_text(),
                                     f"{stem}.csv differs from the committed fixture table")
                self.assertEqual(hashlib.sha256(sources[nb].read_bytes()).hexdigest(), before[nb],
                                 "executing must not write into the source notebook")
                # The executed notebook as a page beside make report's (no script to fetch).
                page = (self.results / "notebooks" / f"{nb}.html").read_text()
                self.assertIn("<img", page)
                self.assertNotRegex(page, r"<script[^>]*\bsrc=")
        self.assertEqual(check_charts(charts, results), [])
        self.assertFalse(list(charts.glob("*.ipynb")), "executed notebooks are not kept")


if __name__ == "__main__":
    unittest.main(verbosity=2)
