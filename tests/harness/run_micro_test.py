#!/usr/bin/python3
"""Tests of bench/micro/run_micro.py (what `make micro` runs) with fake suites: the run folder,
its manifest, results/latest, a failing suite, and writing into another run's folder."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_MICRO = ROOT / "bench" / "micro" / "run_micro.py"

FAKE = """#!/bin/sh
# A stand-in for a Google Benchmark binary: writes its JSON where --benchmark_out= says.
for a in "$@"; do
  case $a in --benchmark_out=*) out=${a#--benchmark_out=} ;; esac
done
echo "$@" > "$out.args"
printf '{"context": {"cpu_a": "0"}, "benchmarks": [{"name": "BM_Fake", "label": "C01"}]}' > "$out"
"""


class RunMicroTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="iolab-run-micro-test-"))
        self.bin = self.tmp / "bin"
        self.bin.mkdir()
        for name, text in (("micro_fake", FAKE), ("micro_broken", "#!/bin/sh\nexit 3\n")):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        (self.bin / "not_micro").write_text("#!/bin/sh\nexit 1\n")
        self.results = self.tmp / "results"

    def tearDown(self) -> None:
        subprocess.run(["rm", "-rf", str(self.tmp)])

    def run_micro(self, *args):
        return subprocess.run([sys.executable, str(RUN_MICRO), "--bin-dir", str(self.bin),
                               "--results-dir", str(self.results), *args],
                              capture_output=True, text=True, timeout=60)

    def test_own_run_folder_manifest_and_latest(self) -> None:
        r = self.run_micro("--suites", "fake")
        self.assertEqual(r.returncode, 0, r.stderr)
        (run,) = (self.results / "runs").iterdir()
        self.assertTrue(run.name.endswith("-micro"))
        manifest = json.loads((run / "manifest.json").read_text())
        self.assertEqual(manifest["schema_version"], 1)
        self.assertEqual(manifest["scenario"], "micro")
        for key in ("cpu_model", "kernel", "topology", "git_revision"):
            self.assertIn(key, manifest)
        self.assertEqual(manifest["micro"]["mode"], "quick")
        self.assertEqual(manifest["micro"]["suites"]["fake"]["exit_status"], 0)
        self.assertEqual(json.loads((run / "micro" / "fake.json").read_text())["benchmarks"][0]
                         ["name"], "BM_Fake")
        self.assertEqual((self.results / "latest").resolve(), run.resolve())

    def test_label_names_the_run_folder(self) -> None:
        r = self.run_micro("--suites", "fake", "--label", "lab-06", "--no-latest")
        self.assertEqual(r.returncode, 0, r.stderr)
        (run,) = (self.results / "runs").iterdir()
        self.assertTrue(run.name.endswith("-lab-06"), run.name)
        r = self.run_micro("--suites", "fake", "--label", "../x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--label '../x'", r.stderr)

    def test_full_mode_and_no_latest(self) -> None:
        r = self.run_micro("--suites", "fake", "--full", "--no-latest")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse((self.results / "latest").exists())
        (run,) = (self.results / "runs").iterdir()
        args = (run / "micro" / "fake.json.args").read_text()
        self.assertIn("--benchmark_repetitions=3", args)
        self.assertIn("--benchmark_min_time=0.5", args)

    def test_failing_suite_is_recorded_and_others_run(self) -> None:
        r = self.run_micro("--no-latest")
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAILED: broken", r.stdout)
        (run,) = (self.results / "runs").iterdir()
        manifest = json.loads((run / "manifest.json").read_text())
        self.assertEqual(manifest["micro"]["suites"]["broken"]["exit_status"], 3)
        self.assertTrue((run / "micro" / "fake.json").exists())
        self.assertNotIn("not_micro", json.dumps(manifest["micro"]["suites"]))

    def test_into_another_run_folder(self) -> None:
        run = self.results / "runs" / "20260101-000000-quick"
        run.mkdir(parents=True)
        (run / "manifest.json").write_text('{"scenario": "quick"}')
        r = self.run_micro("--suites", "fake", "--run-dir", str(run))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads((run / "manifest.json").read_text()), {"scenario": "quick"})
        self.assertTrue((run / "micro" / "fake.json").exists())
        self.assertIn("steal_pct", json.loads((run / "micro" / "summary.json").read_text()))
        self.assertFalse((self.results / "latest").exists())

    def test_unknown_suite(self) -> None:
        r = self.run_micro("--suites", "nope")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no suite nope", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
