#!/usr/bin/python3
"""Tests of bench/run.py: a small scenario end to end, crashes, servers that never get ready,
Ctrl-C, and the row schema. Every run writes into a temporary results folder: the user's
results/latest is never touched.

Run by CTest (label tools) as: /usr/bin/python3 run_test.py BIN_DIR
"""

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import run  # bench/ on PYTHONPATH (CTest sets it): the command line
from iolab_bench import HarnessError, runfolder, runner, scenarios, servers, validity

ROOT = Path(__file__).resolve().parents[2]

BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build/bin").resolve()
FAST = ["--set", "duration_s=0.4", "--set", "warmup_s=0.1", "--set", "connections=8"]


def private_bin(tmp, extra=None):
    """A bin folder of symlinks to the real binaries plus test doubles, so any process left
    behind is recognisable by its path."""
    bin_dir = Path(tmp) / "bin"
    bin_dir.mkdir()
    for name in ("loadgen", "server_epoll_et", "server_threads"):
        (bin_dir / name).symlink_to(BIN_DIR / name)
    for name, script in (extra or {}).items():
        path = bin_dir / name
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def processes_under(path):
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text and int(cmdline.parent.name) != os.getpid():
            found.append((cmdline.parent.name, text))
    return found


def run_main(*args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run.main(list(args))
    return code, out.getvalue(), err.getvalue()


def read_run(results):
    (folder,) = list((Path(results) / "runs").iterdir())
    rows = [json.loads(line)
            for line in (folder / "harness/results.jsonl").read_text().splitlines()]
    manifest = json.loads((folder / "manifest.json").read_text())
    return folder, rows, manifest


class RunTest(unittest.TestCase):
    def test_small_scenario_end_to_end(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir = private_bin(tmp)
            results = Path(tmp) / "results"
            code, out, _ = run_main("--scenario", "quick", "--results-dir", str(results),
                                    "--bin-dir", str(bin_dir), "--repeats", "2",
                                    "--set", 'servers=["epoll_et","threads"]', *FAST)
            self.assertEqual(code, 0)
            folder, rows, manifest = read_run(results)
            self.assertEqual((results / "latest").resolve(), folder.resolve())
            self.assertEqual(manifest["schema_version"], runfolder.SCHEMA_VERSION)
            for key in ("cpu_model", "topology", "kernel", "mitigations", "governor", "compiler",
                        "liburing", "git_revision", "fd_limits", "offered_rate", "server_cpu",
                        "client_cpu", "placement"):
                self.assertIn(key, manifest)
            self.assertNotEqual(manifest.get("cpu_accounting", "?"), "?")  # the script ran
            self.assertFalse(manifest["interrupted"])
            # 2 servers x 3 points x 2 repeats, interleaved by repeat.
            self.assertEqual(len(rows), 12)
            self.assertEqual([r["repeat"] for r in rows], [0] * 6 + [1] * 6)
            for row in rows:
                runfolder.check_row(row)
                self.assertEqual(sum(row["errors"].values()), 0)
                self.assertGreater(row["rps"], 0)
            summary = json.loads((folder / "harness/summary.json").read_text())
            self.assertTrue(any(s["metric"] == "rps" for s in summary))
            self.assertIn("sat req/s", out)
            self.assertEqual(processes_under(bin_dir), [])

    def test_extra_rounds_go_to_the_wide_points_and_the_baseline(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir = private_bin(tmp)
            results = Path(tmp) / "results"
            code, out, _ = run_main("--scenario", "quick", "--results-dir", str(results),
                                    "--bin-dir", str(bin_dir), "--no-latest",
                                    "--set", "repeats=2", "--set", "max_repeats=3",
                                    "--set", "budget_s=600",
                                    "--set", 'servers=["epoll_et","threads"]', *FAST)
            self.assertEqual(code, 0, out)
            _, rows, manifest = read_run(results)
            self.assertEqual(manifest["rounds"]["min"], 2)
            self.assertEqual(manifest["rounds"]["max"], 3)
            self.assertTrue(manifest["rounds"]["stopped"])
            # The third round measured exactly the points whose figures were imprecise after
            # two (0.4 s windows: some always are), plus the baseline's same points.
            first = [r for r in rows if r["repeat"] < 2]
            wide = runner.wide_points(validity.summarize_rows(first, "epoll_et"),
                                      manifest["rounds"]["max"])
            expected = {(s, p) for s, _, p in wide}
            expected |= {("epoll_et", p) for _, _, p in wide}
            third = {(r["server"], r["point"]) for r in rows if r["repeat"] == 2}
            self.assertTrue(wide, "no imprecise figure after two rounds of 0.4 s")
            self.assertEqual(third, expected)
            self.assertIn("rounds per cell (fixed_rate/saturation/closed_loop): epoll_et ", out)
            self.assertEqual(processes_under(bin_dir), [])

    def test_a_second_run_reuses_the_offered_rate_of_the_first(self) -> None:
        # Two runs calibrated separately measured their fixed-rate points at 59,000 and
        # 71,900 requests/s (issue 26): the second run measures at the first one's load.
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir = private_bin(tmp)
            results = Path(tmp) / "results"
            args = ["--scenario", "quick", "--results-dir", str(results), "--bin-dir",
                    str(bin_dir), "--repeats", "1", "--set", 'servers=["epoll_et"]',
                    "--set", 'points=["fixed_rate"]', *FAST]
            manifests = []
            extras: list[list[str]] = [[], [], ["--recalibrate"],
                                       ["--set", "rate_fraction=0.25"]]
            for extra in extras:
                code, out, _ = run_main(*args, *extra)
                self.assertEqual(code, 0, out)
                newest = sorted((results / "runs").iterdir())[-1]
                manifests.append((newest.name, out,
                                  json.loads((newest / "manifest.json").read_text())))
            (first, _, m1), (_, out2, m2), (_, out3, m3), (_, _, m4) = manifests
            self.assertNotIn("reused_from", m1["calibration"])
            self.assertEqual(m2["calibration"]["reused_from"], first)
            self.assertEqual(m2["offered_rate"], m1["offered_rate"])
            self.assertIn(f"as {first} calibrated it on this machine", out2)
            self.assertNotIn("reused_from", m3["calibration"])  # --recalibrate
            self.assertIn("calibrated on epoll_et", out3)
            self.assertNotIn("reused_from", m4["calibration"])  # another fraction
            self.assertEqual(processes_under(bin_dir), [])

    def test_crash_mid_run_is_an_invalid_cell_and_the_run_goes_on(self) -> None:
        crashy = ("#!/bin/sh\n"
                  f"exec timeout -s KILL 1.2 {BIN_DIR}/server_epoll_et \"$@\"\n")
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir = private_bin(tmp, {"server_crashy": crashy})
            results = Path(tmp) / "results"
            code, out, _ = run_main("--scenario", "quick", "--results-dir", str(results),
                                    "--bin-dir", str(bin_dir), "--repeats", "1", "--no-latest",
                                    "--set", 'servers=["crashy","threads"]', *FAST)
            self.assertEqual(code, 0)
            _, rows, _ = read_run(results)
            self.assertFalse((results / "latest").exists())
            crashed = [r for r in rows if r["server"] == "crashy" and not r["valid"]]
            self.assertTrue(
                any("died during the run" in r["invalid_reason"] for r in crashed), rows)
            # A point with no figure in any repeat has no line in the table: it is listed below it.
            failed_points = {r["point"] for r in crashed if "rps" not in r}
            self.assertTrue(failed_points, rows)
            # Every point of the crashed server has a row: measured, or failed with its reason.
            self.assertEqual({r["point"] for r in rows if r["server"] == "crashy"},
                             {"fixed_rate", "saturation", "closed_loop"}, rows)
            for point in failed_points:
                self.assertRegex(out, rf"x crashy {point}: FAILED, no figures: .*died during")
            threads = [r for r in rows if r["server"] == "threads"]
            self.assertEqual(len(threads), 3)
            self.assertTrue(all("rps" in r for r in threads))
            self.assertEqual(processes_under(bin_dir), [])

    def test_server_that_never_gets_ready_is_reported(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir = private_bin(tmp, {"server_silent": "#!/bin/sh\nexec sleep 30\n"})
            results = Path(tmp) / "results"
            old = servers.READY_TIMEOUT_S
            servers.READY_TIMEOUT_S = 1.0
            try:
                code, out, _ = run_main("--scenario", "quick", "--results-dir", str(results),
                                        "--bin-dir", str(bin_dir), "--repeats", "1", "--no-latest",
                                        "--set", 'servers=["silent","epoll_et"]', *FAST)
            finally:
                servers.READY_TIMEOUT_S = old
            self.assertEqual(code, 0)
            _, rows, manifest = read_run(results)
            self.assertIn("never printed its ready line", manifest["skipped"]["silent"])
            self.assertIn("skipped silent", out)
            self.assertEqual({r["server"] for r in rows}, {"epoll_et"})
            self.assertEqual(processes_under(bin_dir), [])

    def test_ctrl_c_leaves_a_consistent_folder_and_no_process(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bin_dir = private_bin(tmp)
            results = Path(tmp) / "results"
            proc = subprocess.Popen(
                ["/usr/bin/python3", str(ROOT / "bench/run.py"), "--scenario", "quick",
                 "--results-dir", str(results), "--bin-dir", str(bin_dir), "--repeats", "3",
                 "--no-latest", "--set", 'servers=["epoll_et","threads"]',
                 "--set", "duration_s=1", "--set", "warmup_s=0.2"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # Interrupt once measuring has started.
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("[2/"):
                    break
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=30)
            self.assertEqual(proc.returncode, 130, "".join(lines) + rest)
            folder, rows, manifest = read_run(results)
            self.assertTrue(manifest["interrupted"])
            self.assertGreaterEqual(len(rows), 2)
            for row in rows:
                runfolder.check_row(row)
            time.sleep(0.2)
            self.assertEqual(processes_under(bin_dir), [])

    def test_row_schema_rejects_incomplete_rows(self) -> None:
        good = {"server": "x", "scenario": "s", "params": {}, "point": "fixed_rate", "repeat": 0,
                "valid": False, "invalid_reason": "died"}
        runfolder.check_row(dict(good))
        with self.assertRaises(ValueError):
            runfolder.check_row({k: v for k, v in good.items() if k != "point"})
        with self.assertRaises(ValueError):
            runfolder.check_row(dict(good, rps=100.0))  # a measured row needs every measured key
        with self.assertRaises(ValueError):
            runfolder.check_row(dict(good, valid=True))  # valid with a reason
        with self.assertRaises(ValueError):
            runfolder.check_row(dict(good, point="sideways"))

    def test_unknown_scenario_and_bad_set(self) -> None:
        with self.assertRaises(HarnessError):
            scenarios.load_scenario("nope")
        with self.assertRaises(SystemExit), redirect_stderr(io.StringIO()):
            run.main(["--set", "no_such_field=1"])

    def test_every_scenario_file_loads(self) -> None:
        for path in sorted(scenarios.SCENARIOS.glob("*.json")):
            sc = scenarios.load_scenario(path.stem)
            self.assertTrue(sc["servers"], path)
            self.assertTrue(scenarios.matrix_cells(sc), path)
            for point in sc["points"]:
                self.assertIn(point, ("fixed_rate", "saturation", "closed_loop", "memory", "cache"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
