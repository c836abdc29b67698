#!/usr/bin/python3
"""Tests of notebooks/charts.py (make charts, make reference) on copies of the fixture run.

draw: one line per notebook, a notebook without its data skipped with its reason, no results at
all an error, a notebook that fails or writes no chart reported with exit status 1 (two
deliberately broken notebooks, executed for real). reference: finished runs copied into
results/reference/<machine>/<scenario>/ keeping only the small files charts and checks read;
bad machine names, interrupted or unfinished runs and two runs of one scenario refused.
"""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
import unittest
from pathlib import Path

import charts  # notebooks/ and bench/ on PYTHONPATH (CTest sets it)

ROOT = Path(__file__).resolve().parents[2]
CHARTS_PY = ROOT / "notebooks" / "charts.py"
FIXTURE = Path(__file__).resolve().parent / "fixture-run"


def charts_py(*args, **kw):
    """charts.py as a command (the way make runs it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RESULTS", "CHARTS")}
    return subprocess.run(["/usr/bin/python3", str(CHARTS_PY), *args], capture_output=True,
                          text=True, env=env, timeout=300, **kw)


def charts_main(*args):
    """charts.py's main() in this process: the same code without a new interpreter importing
    pandas and matplotlib for every case."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = charts.main(list(args))
        except SystemExit as e:  # as the interpreter would: a message means exit status 1
            code = e.code if isinstance(e.code, int) else 1
            if not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


class Scratch(unittest.TestCase):
    def setUp(self) -> None:
        os.environ.pop("CHARTS", None)
        os.environ.pop("RESULTS", None)
        self.tmp = Path(tempfile.mkdtemp(prefix="notebooks-runner-test-"))
        shutil.copytree(FIXTURE, self.tmp / "fixture")
        shutil.rmtree(self.tmp / "fixture" / "charts")
        self.quick = self.tmp / "fixture" / "quick"

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp)


class Draw(Scratch):
    def test_one_line_per_notebook_and_skips_with_reasons(self) -> None:
        proc = charts_main("draw", "--results", str(self.quick), "--check")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = [ln for ln in proc.stdout.splitlines() if re.match(r"charts: \d\d-", ln)]
        self.assertEqual(len(lines), 9, proc.stdout)
        skipped = {ln.split(":")[1].strip() for ln in lines if ": skipped: no " in ln}
        self.assertEqual(skipped, {"03-c10k", "05-cache", "06-affinity", "07-pooling",
                                   "08-memory-per-connection"})
        drawn = {ln.split(":")[1].strip() for ln in lines if ": would draw from quick" in ln}
        self.assertEqual(drawn, {"01-io-models", "02-latency",
                         "04-syscalls-and-switches", "09-micro"})
        self.assertIn(f"in {self.quick}", [ln for ln in lines if "03-c10k" in ln][0])

    def test_no_results(self) -> None:
        proc = charts_main("draw", "--results", str(self.tmp / "nothing"))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("no results at", proc.stderr)
        proc = charts_main("draw", "--results", str(self.tmp / "fixture"), "--only", "10-nothing")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("no notebook 10-nothing", proc.stderr)

    def test_failing_notebooks_make_it_fail(self) -> None:
        nbdir = self.tmp / "notebooks"
        nbdir.mkdir()
        for name in ("01-io-models", "02-latency", "03-c10k"):
            shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", nbdir)
        # 01 raises in its second chart; 02 draws nothing; 03 has no data in a quick run.
        doc = json.loads((nbdir / "01-io-models.ipynb").read_text())
        chart_cells = [c for c in doc["cells"] if "ip.save" in "".join(c["source"])]
        chart_cells[1]["source"] = ["raise RuntimeError('broken on purpose')\n"]
        (nbdir / "01-io-models.ipynb").write_text(json.dumps(doc))
        doc = json.loads((nbdir / "02-latency.ipynb").read_text())
        doc["cells"] = [c for c in doc["cells"] if "ip.save" not in "".join(c["source"])]
        (nbdir / "02-latency.ipynb").write_text(json.dumps(doc))
        proc = charts_py("draw", "--results", str(self.quick), "--notebook-dir", str(nbdir))
        print(proc.stdout, proc.stderr)
        self.assertEqual(proc.returncode, 1)
        out = proc.stdout
        self.assertIn("charts: 01-io-models: FAILED (failed, ", out)
        self.assertIn("RuntimeError: broken on purpose", out)
        self.assertIn("charts: 02-latency: FAILED (wrote no chart, ", out)
        self.assertIn("charts: 03-c10k: skipped: ", out)
        self.assertIn("0 notebooks drawn, 1 skipped for lack of data, "
                      "2 failed (01-io-models, 02-latency)", out)

    def test_unknown_notebook_in_the_folder(self) -> None:
        nbdir = self.tmp / "notebooks"
        nbdir.mkdir()
        shutil.copy(ROOT / "notebooks" / "01-io-models.ipynb", nbdir / "10-new-topic.ipynb")
        proc = charts_main("draw", "--results", str(self.quick), "--notebook-dir", str(nbdir))
        self.assertEqual(proc.returncode, 1)
        self.assertIn("10-new-topic not in iolab_plots.NEEDS", proc.stderr)


class Reference(Scratch):
    def reference(self, *args):
        return charts_main("reference", *args, "--results-root", str(self.tmp / "results"),
                           "--no-charts")

    def test_copies_small_files_into_the_layout(self) -> None:
        hist = self.quick / "harness" / "hist"
        hist.mkdir()
        (hist / "threads-fixed.csv").write_text("# small histogram\n")
        (hist / "huge.csv").write_bytes(b"0" * (3 * 1024 * 1024))
        (self.quick / "charts").mkdir()
        (self.quick / "charts" / "01-saturation-rps.png").write_bytes(b"\x89PNG")
        (self.quick / "server.log").write_text("log\n")
        runs = [str(self.tmp / "fixture" / s) for s in ("quick", "c10k")]
        proc = self.reference("box-2cpu", *runs)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        dest = self.tmp / "results" / "reference" / "box-2cpu"
        kept = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        self.assertIn("quick/harness/hist/threads-fixed.csv", kept)
        self.assertIn("quick/micro/syscalls.json", kept)
        self.assertIn("c10k/harness/results.jsonl", kept)
        for gone in ("quick/harness/hist/huge.csv", "quick/charts/01-saturation-rps.png",
                     "quick/server.log"):
            self.assertNotIn(gone, kept)
        self.assertIn("left out: charts/01-saturation-rps.png, "
                      "harness/hist/huge.csv (3072 KB, over 2048 KB), server.log", proc.stdout)
        again = self.reference("box-2cpu", runs[0])
        self.assertEqual(again.returncode, 0)
        self.assertIn("replacing", again.stdout)

    def test_refuses(self) -> None:
        proc = self.reference("Box 2", str(self.quick))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("must be a slug", proc.stderr)
        self.assertEqual(self.reference("box").returncode, 2)
        twice = self.tmp / "quick-again"
        shutil.copytree(self.quick, twice)
        proc = self.reference("box", str(self.quick), str(twice))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("more than one run of quick", proc.stderr)
        manifest = json.loads((twice / "manifest.json").read_text())
        (twice / "manifest.json").write_text(json.dumps(dict(manifest, interrupted=True)))
        proc = self.reference("box", str(twice))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("interrupted", proc.stderr)
        del manifest["finished"]
        (twice / "manifest.json").write_text(json.dumps(manifest))
        proc = self.reference("box", str(twice))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("no 'finished'", proc.stderr)
        proc = self.reference("box", str(self.tmp))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("is not a run folder", proc.stderr)
        self.assertFalse((self.tmp / "results" / "reference" / "box").exists())


if __name__ == "__main__":
    unittest.main(verbosity=2)
