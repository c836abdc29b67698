#!/usr/bin/python3
"""bench/run.py --target on loopback: a server the test starts by hand, measured as a remote
target, gives the same per-request figures as the normal run that starts the server itself.

The target is bound to 127.0.0.2 only, so a runner that quietly measured 127.0.0.1 instead of
the address it was given would find nothing there. The model is server_threads, whose system
calls per request do not depend on timing (one read and one writev per request at a fixed rate
well below its limit), so that figure must agree closely; CPU per request is a timing and is
only held to a generous bound. Both runs use the same fixed offered rate and the same CPUs.

Run by CTest (label tools) as: /usr/bin/python3 target_test.py BIN_DIR
"""

import json
import re
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

from iolab_bench import machine, runfolder, sweeps  # bench/ on PYTHONPATH (CTest sets it)

ROOT = Path(__file__).resolve().parents[2]

BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build/bin").resolve()
RUN_PY = ROOT / "bench/run.py"
RATE = 2000
SETTINGS = ["--set", "points=[\"fixed_rate\"]", "--set", f"offered_rate={RATE}",
            "--set", "duration_s=1", "--set", "warmup_s=0.3", "--set", "connections=16",
            "--repeats", "3", "--no-latest"]
SYSCALLS_TOLERANCE = 0.05      # relative: the count per request is a mechanism, not a timing
CPU_RATIO_BOUND = 2.5          # a timing on a shared 2-CPU machine: only gross errors fail


def start_server(bind, cpu):
    proc = subprocess.Popen([str(BIN_DIR / "server_threads"), "--bind", bind, "--port", "0",
                             "--pin", str(cpu)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    match = re.search(r"listening on ([0-9.]+):(\d+) ", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"server_threads did not start: {line!r}")
    drain = threading.Thread(target=proc.stdout.read, daemon=True)
    drain.start()
    return proc, int(match.group(2)), drain


def run_py(*args):
    result = subprocess.run(["/usr/bin/python3", str(RUN_PY), "--bin-dir", str(BIN_DIR), *args],
                            capture_output=True, text=True, timeout=120)
    return result


def run_folder(results_dir):
    folders = sorted((Path(results_dir) / "runs").iterdir())
    assert len(folders) == 1, folders
    rows = [json.loads(ln)
            for ln in (folders[0] / "harness/results.jsonl").read_text().splitlines()]
    manifest = json.loads((folders[0] / "manifest.json").read_text())
    return folders[0], rows, manifest


def median(rows, get):
    values = sorted(get(r) for r in rows)
    return values[len(values) // 2]


class Target(unittest.TestCase):
    server_cpu: int
    client_cpu: int
    tmp: "tempfile.TemporaryDirectory[str]"
    target: str
    target_run: "subprocess.CompletedProcess[str]"
    local_run: "subprocess.CompletedProcess[str]"
    server_exit: int | None

    @classmethod
    def setUpClass(cls) -> None:
        cls.server_cpu, cls.client_cpu, _ = machine.choose_cpus()
        cls.tmp = tempfile.TemporaryDirectory(prefix="iolab-containers-target-")
        tmp = Path(cls.tmp.name)
        proc, port, drain = start_server("127.0.0.2", cls.server_cpu)
        try:
            cls.target = f"127.0.0.2:{port}"
            cls.target_run = run_py("--target", cls.target, "--label", "by-hand", "--client-cpu",
                                    str(cls.client_cpu), "--results-dir", str(tmp / "target"),
                                    *SETTINGS)
        finally:
            proc.terminate()
            proc.wait(10)
            drain.join(5)
            proc.stdout.close()
        cls.server_exit = proc.returncode
        cls.local_run = run_py("--set", "servers=[\"threads\"]",
                               "--server-cpu", str(cls.server_cpu),
                               "--client-cpu", str(cls.client_cpu), "--results-dir",
                               str(tmp / "local"), *SETTINGS)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def folders(self):
        self.assertEqual(self.target_run.returncode, 0, self.target_run.stderr)
        self.assertEqual(self.local_run.returncode, 0, self.local_run.stderr)
        return (run_folder(Path(self.tmp.name) / "target"),
                run_folder(Path(self.tmp.name) / "local"))

    def test_the_server_was_left_alone(self) -> None:
        # The runner never stopped the target: it ended on the test's SIGTERM, cleanly.
        self.assertEqual(self.server_exit, 0)

    def test_rows_say_where_figures_came_from(self) -> None:
        (folder, rows, manifest), (_, local_rows, _) = self.folders()
        self.assertTrue(folder.name.endswith("-by-hand"), folder)
        self.assertEqual(manifest["mode"], "target")
        self.assertEqual(manifest["target"]["address"], self.target)
        self.assertEqual(manifest["target"]["model"], "threads")
        self.assertIsNone(manifest["server_cpu"])
        self.assertEqual(len(rows), 3)
        for r in rows:
            self.assertEqual(r["server"], "threads")
            self.assertEqual(r["target"], self.target)
            self.assertTrue(r["sources"]["cpu"].startswith("/stats"), r["sources"])
            self.assertTrue(r["sources"]["rss"].startswith("/stats"), r["sources"])
            self.assertEqual(r["sources"]["syscalls"], "/stats counters")
            self.assertIsNone(r["sources"]["listen_overflows"])
            self.assertIsNone(r["listen_overflows"])
            self.assertGreater(r["rss_kb"], 0)
        for r in local_rows:
            self.assertIsNone(r["target"])
            self.assertEqual(r["sources"]["rss"], "/proc/PID/statm")

    def test_same_per_request_figures_as_a_normal_run(self) -> None:
        (_, rows, _), (_, local, _) = self.folders()
        for group in (rows, local):
            for r in group:
                # Steal, other processes' CPU and a rate a few percent short are the shared
                # machine's noise, not the runner's (other tests run beside this one): allowed
                # here, as they do not move counts per request. Errors are not.
                reasons = [x for x in (r["invalid_reason"] or "").split("; ")
                           if x and not x.startswith(("steal", "background load", "achieved"))]
                self.assertEqual(reasons, [])
                self.assertAlmostEqual(r["rps"], RATE, delta=RATE * 0.1)
        syscalls = median(rows, lambda r: r["syscalls_per_req"])
        local_syscalls = median(local, lambda r: r["syscalls_per_req"])
        print(f"syscalls/request: target {syscalls:.3f}, normal run {local_syscalls:.3f}")
        self.assertAlmostEqual(syscalls, local_syscalls, delta=local_syscalls * SYSCALLS_TOLERANCE)
        allocs = median(rows, lambda r: r["allocs_per_req"])
        local_allocs = median(local, lambda r: r["allocs_per_req"])
        self.assertAlmostEqual(allocs, local_allocs, delta=local_allocs * SYSCALLS_TOLERANCE + 0.05)

        def cpu(r):
            s = r["cpu_us_per_req"]["server"]
            return s["user"] + s["sys"]
        target_cpu, local_cpu = median(rows, cpu), median(local, cpu)
        print(f"server CPU us/request: target {target_cpu:.2f}, normal run {local_cpu:.2f}")
        self.assertGreater(target_cpu, 0)
        self.assertLess(max(target_cpu, local_cpu) / min(target_cpu, local_cpu), CPU_RATIO_BOUND)

    def test_unreachable_target_is_reported(self) -> None:
        result = run_py("--target", "127.0.0.2:1", "--results-dir",
                        str(Path(self.tmp.name) / "none"), *SETTINGS)
        self.assertEqual(result.returncode, 1)
        self.assertIn("did not answer", result.stderr)

    def test_malformed_target_is_rejected(self) -> None:
        result = run_py("--target", "127.0.0.2", "--results-dir", str(Path(self.tmp.name) / "none"))
        self.assertEqual(result.returncode, 1)
        self.assertIn("expected HOST:PORT", result.stderr)


class ConnectionsToPeak(unittest.TestCase):
    """sweeps.connections_to_peak on made-up sweeps (the netns scenario's chart rows)."""

    @staticmethod
    def rows(server, think, sweep, errors_at=None, reason="client-bound (server CPU 30%)"):
        out = []
        for conns, rps in sweep:
            row = runfolder.base_row({"name": "netns"}, server,
                                     {"think_ms": think, "connections": conns},
                                     "closed_loop", 0, reason)
            row.update(rps=rps, server_cpu_util=0.95 if rps == max(r for _, r in sweep) else 0.3,
                       latency_us={"p50": 100.0},
                       errors={"timeout": 1 if conns == errors_at else 0})
            out.append(row)
        return out

    def test_fewest_connections_reaching_ninety_percent(self) -> None:
        peaks = sweeps.connections_to_peak(
            self.rows("epoll_et", 5, [(1, 190), (4, 760), (16, 3000), (64, 9600), (256, 10000)]))
        self.assertEqual(len(peaks), 1)
        p = peaks[0]
        self.assertEqual((p["connections_to_peak"], p["peak_connections"],
                         p["peak_rps"]), (64, 256, 10000))
        self.assertEqual(p["peak_bound"], "server")
        self.assertAlmostEqual(p["cycle_ms_fewest_connections"], 1000 / 190)
        self.assertTrue(p["valid"], p["invalid_reason"])

    def test_a_peak_beyond_the_sweep_or_errors_are_not_valid(self) -> None:
        rising = sweeps.connections_to_peak(
            self.rows("threads", 20, [(1, 50), (4, 200), (16, 800)]))[0]
        self.assertFalse(rising["valid"])
        self.assertIn("still rising", rising["invalid_reason"])
        errors = sweeps.connections_to_peak(
            self.rows("threads", 0, [(1, 5000), (4, 9000), (16, 9100)], errors_at=4))[0]
        self.assertEqual(errors["connections_to_peak"], 4)
        self.assertIn("1 errors at 4 connections", errors["invalid_reason"])
        noisy = sweeps.connections_to_peak(
            self.rows("coro", 1, [(1, 900), (4, 3500), (16, 3600)],
                      reason="steal 4%; client-bound (server CPU 9%)"))[0]
        self.assertEqual(noisy["invalid_reason"], "steal 4% in 3 of 3 runs")


if __name__ == "__main__":
    unittest.main(verbosity=2)
