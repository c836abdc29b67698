#!/usr/bin/python3
"""Harness robustness: loadgen, bench/compare.py and bench/run.py against servers that misbehave.

Each tool meets a server that crashes mid-run, one that never gets ready, one that answers
garbage (to everything, or to the load but not to /stats), a wrong flag, and Ctrl-C. Each case
must be reported clearly (exit status and a message naming what happened), leave a consistent
run folder (run.py), and leave no process behind. Processes are checked by PID: every server and
every loadgen the tools start here is a small shim in a private bin folder that writes its PID to
a folder before exec'ing the real program (the PID stays the same across exec), and the test
waits for each recorded PID to be gone.

The misbehaving servers are tests/harness/fake_server.py in its modes; the well-behaved one
is the real build/bin/server_epoll_et.

  /usr/bin/python3 harness_test.py BIN_DIR [LoadgenTest|CompareTest|RunTest ...]
"""

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import compare  # bench/ on PYTHONPATH (CTest sets it): the command lines
import run
from iolab_bench import HarnessError, runfolder, servers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build/bin").resolve()
FAKE_MODES = ("crash", "silent", "garbage", "garbage_ping", "good")
SHORT = ["--duration", "0.5", "--warmup", "0.1", "--connections", "4", "--repeats", "1"]
RUN_SHORT = ["--repeats", "1", "--no-latest", "--set", "duration_s=0.5", "--set", "warmup_s=0.1",
             "--set", "connections=4"]


class Sandbox:
    """A private bin folder of PID-recording shims, and the PIDs they recorded."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="reliability-harness-")
        self.dir = Path(self.tmp.name)
        self.bin = self.dir / "bin"
        self.pids = self.dir / "pids"
        self.bin.mkdir()
        self.pids.mkdir()
        for name in ("loadgen", "server_epoll_et"):
            self.shim(name, f'exec {BIN_DIR / name} "$@"')
        for mode in FAKE_MODES:
            self.shim(f"server_{mode}",
                      f'FAKE_MODE={mode} exec /usr/bin/python3 {HERE / "fake_server.py"} "$@"')

    def shim(self, name, command):
        path = self.bin / name
        path.write_text(f"#!/bin/sh\necho \"$0 $*\" > {self.pids}/$$\n"
                        f"export FAKE_PID_DIR={self.pids}\n{command}\n")
        path.chmod(0o755)

    def recorded(self):
        return sorted(int(p.name) for p in self.pids.iterdir())

    def left_behind(self, timeout_s=5.0):
        """Recorded PIDs still running (not zombies) after up to timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = []
            for pid in self.recorded():
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                state = stat.rsplit(")", 1)[1].split()[0]
                # The same PID reused by an unrelated process does not count.
                if state != "Z" and (str(self.dir).encode() in cmdline or b"loadgen" in cmdline
                                     or b"server_" in cmdline or b"fake_server" in cmdline):
                    alive.append((pid, cmdline.replace(b"\0", b" ").decode(errors="replace")))
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)

    def close(self):
        for pid, _ in self.left_behind(0):
            os.kill(pid, signal.SIGKILL)  # only processes this test's shims started
        self.tmp.cleanup()


class SandboxTest(unittest.TestCase):
    def setUp(self) -> None:
        self.box = Sandbox()
        self.addCleanup(self.box.close)
        self.fakes: list[Any] = []

    def stop_fakes(self):
        """Stops the fake servers this test started itself (not those the tools started)."""
        for proc in self.fakes:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()

    def assertNothingLeft(self):
        self.assertTrue(self.box.recorded(), "no process was recorded: the shims did not run")
        self.assertEqual(self.box.left_behind(), [])

    def start_fake(self, mode, env=None):
        """A fake server started directly (for loadgen): (process, port)."""
        proc = subprocess.Popen([str(self.box.bin / f"server_{mode}"), "--port", "0"],
                                stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, **(env or {})))
        self.fakes.append(proc)
        self.addCleanup(self.stop_fakes)
        line = proc.stdout.readline()
        return proc, int(line.split("127.0.0.1:")[1].split()[0])


class LoadgenTest(SandboxTest):
    def loadgen(self, *args, timeout=60):
        return subprocess.run([str(self.box.bin / "loadgen"), *args], capture_output=True,
                              text=True, timeout=timeout)

    def test_wrong_flag(self) -> None:
        r = self.loadgen("--url", "http://127.0.0.1:1/ping", "--no-such-flag")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--no-such-flag", r.stderr)
        r = self.loadgen("--url", "http://127.0.0.1:1/ping", "--connections", "many")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--connections", r.stderr)
        self.assertNothingLeft()

    def test_server_never_ready(self) -> None:
        # Nothing listens on the port of a server that never got ready.
        r = self.loadgen(
            "--url", f"http://127.0.0.1:{servers.free_port()}/ping", "--duration", "1s")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect", r.stderr)
        self.assertNothingLeft()

    def test_garbage_answers_are_errors(self) -> None:
        _, port = self.start_fake("garbage")
        r = self.loadgen("--url", f"http://127.0.0.1:{port}/ping", "--duration", "0.5s",
                         "--connections", "2", "--json", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        self.assertEqual(report["requests"], 0)
        self.assertGreater(report["errors"]["parse"], 0)
        self.stop_fakes()
        self.assertNothingLeft()

    def test_server_crashing_mid_run(self) -> None:
        proc, port = self.start_fake("crash", {"FAKE_CRASH_AFTER": "200"})
        start = time.monotonic()
        r = self.loadgen("--url", f"http://127.0.0.1:{port}/ping", "--duration", "2s",
                         "--connections", "4", "--json", "-")
        self.assertLess(time.monotonic() - start, 15, "loadgen hung on a dead server")
        self.assertEqual(proc.wait(5), -signal.SIGKILL)
        self.assertEqual(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        self.assertGreater(report["errors"]["total"], 0)
        self.assertLess(report["requests"], 200)
        self.assertNothingLeft()

    def test_ctrl_c(self) -> None:
        _, port = self.start_fake("good")
        proc = subprocess.Popen([str(self.box.bin / "loadgen"), "--url",
                                 f"http://127.0.0.1:{port}/ping", "--duration", "30s",
                                 "--connections", "2", "--json", "-"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        # Exit 1 (not a completed run), with a whole report of the window so far, marked.
        self.assertEqual(proc.returncode, 1, err)
        report = json.loads(out)
        self.assertTrue(report["interrupted"])
        self.assertGreater(report["requests"], 0)
        self.stop_fakes()
        self.assertNothingLeft()


class CompareTest(SandboxTest):
    def cli(self, *args, sigint_after=None):
        proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "bench/compare.py"), "--bin-dir",
                                 str(self.box.bin), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if sigint_after:
            for line in proc.stdout:
                if line.startswith(sigint_after):
                    break
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out, err

    def test_wrong_flag(self) -> None:
        code, _, err = self.cli("--repeats", "lots")
        self.assertEqual(code, 2)
        self.assertIn("--repeats", err)

    def test_server_never_ready(self) -> None:
        old = servers.READY_TIMEOUT_S
        servers.READY_TIMEOUT_S = 1.0
        try:
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = compare.main(["--bin-dir", str(self.box.bin), "--servers", "silent", *SHORT])
        finally:
            servers.READY_TIMEOUT_S = old
        self.assertEqual(code, 1)
        self.assertIn("silent: never printed its ready line", err.getvalue())
        self.assertNothingLeft()

    def test_garbage_stats(self) -> None:
        code, _, err = self.cli("--servers", "garbage", *SHORT)
        self.assertEqual(code, 1, err)
        self.assertIn("garbage: /stats did not answer with its counters", err)
        self.assertNotIn("Traceback", err)
        self.assertNothingLeft()

    def test_garbage_answers_fail_calibration(self) -> None:
        code, _, err = self.cli("--servers", "garbage_ping", *SHORT)
        self.assertEqual(code, 1, err)
        self.assertIn("calibration on garbage_ping failed: no request succeeded", err)
        self.assertNotIn("Traceback", err)
        self.assertNothingLeft()

    def test_garbage_answers_make_invalid_cells(self) -> None:
        code, out, err = self.cli("--servers", "epoll_et,garbage_ping", *SHORT)
        self.assertEqual(code, 0, err)
        # compare.py lists each reason once per server and kind, with the metrics it marks.
        self.assertRegex(out, r"garbage_ping \w+: [0-9]+ errors \[rps")
        self.assertNothingLeft()

    def test_server_crashing_mid_run(self) -> None:
        code, _, err = self.cli("--servers", "epoll_et,crash", "--kinds", "saturation", *SHORT)
        self.assertEqual(code, 1, err)
        self.assertIn("crash: the server died during the run", err)
        self.assertNotIn("Traceback", err)
        self.assertNothingLeft()

    def test_ctrl_c(self) -> None:
        code, _, err = self.cli("--servers", "epoll_et,good", "--duration", "2", "--warmup", "0",
                                "--repeats", "3", "--connections", "4", sigint_after="[1/")
        self.assertEqual(code, 130, err)
        self.assertIn("interrupted", err)
        self.assertNotIn("Traceback", err)
        self.assertNothingLeft()


class RunTest(SandboxTest):
    def results(self):
        return self.box.dir / "results"

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = run.main(["--scenario", "quick", "--results-dir", str(self.results()),
                                 "--bin-dir", str(self.box.bin), *RUN_SHORT, *args])
            except HarnessError as e:  # what run.py's __main__ reports, exit 1
                print(f"run.py: {e}", file=sys.stderr)
                code = 1
        return code, out.getvalue(), err.getvalue()

    def folder(self):
        """The one run folder, checked for consistency: manifest, rows, row schema."""
        (folder,) = list((self.results() / "runs").iterdir())
        manifest = json.loads((folder / "manifest.json").read_text())
        self.assertEqual(manifest["schema_version"], runfolder.SCHEMA_VERSION)
        rows = [json.loads(ln)
                for ln in (folder / "harness/results.jsonl").read_text().splitlines()]
        for row in rows:
            runfolder.check_row(row)
        self.assertFalse((self.results() / "latest").exists())
        return folder, manifest, rows

    def test_wrong_flag(self) -> None:
        with redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit) as ctx:
            run.main(["--no-such-flag"])
        self.assertEqual(ctx.exception.code, 2)
        self.assertIn("--no-such-flag", err.getvalue())
        with redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit) as ctx:
            run.main(["--set", "duration_s"])
        self.assertEqual(ctx.exception.code, 2)

    def test_server_never_ready(self) -> None:
        old = servers.READY_TIMEOUT_S
        servers.READY_TIMEOUT_S = 1.0
        try:
            code, out, _ = self.run_main("--set", 'servers=["silent","epoll_et"]')
        finally:
            servers.READY_TIMEOUT_S = old
        self.assertEqual(code, 0)
        _, manifest, rows = self.folder()
        self.assertIn("never printed its ready line", manifest["skipped"]["silent"])
        self.assertEqual({r["server"] for r in rows}, {"epoll_et"})
        self.assertNothingLeft()

    def test_garbage_servers_make_invalid_rows(self) -> None:
        code, out, err = self.run_main("--set", 'servers=["epoll_et","garbage_ping","garbage"]')
        self.assertEqual(code, 0, err)
        _, manifest, rows = self.folder()
        ping = [r for r in rows if r["server"] == "garbage_ping"]
        self.assertTrue(ping and all(
            not r["valid"] and "errors" in r["invalid_reason"] for r in ping), ping)
        garbage = [r for r in rows if r["server"] == "garbage"]
        self.assertTrue(garbage and all("/stats did not answer" in r["invalid_reason"]
                                        for r in garbage), garbage)
        self.assertTrue(all(r["valid"] or "rps" in r for r in rows if r["server"] == "epoll_et"))
        self.assertIn("summary.json", os.listdir(self.folder()[0] / "harness"))
        self.assertNothingLeft()

    def test_garbage_baseline_fails_calibration_clearly(self) -> None:
        code, _, err = self.run_main("--set", 'servers=["garbage_ping","epoll_et"]')
        self.assertEqual(code, 1)
        self.assertIn("calibration on garbage_ping failed", err)
        _, manifest, _ = self.folder()
        self.assertNothingLeft()

    def test_server_crashing_mid_run(self) -> None:
        code, _, err = self.run_main("--set", 'servers=["epoll_et","crash"]')
        self.assertEqual(code, 0, err)
        _, _, rows = self.folder()
        crashed = [r for r in rows if r["server"] == "crash"]
        self.assertTrue(any("died during the run" in (
            r["invalid_reason"] or "") for r in crashed), rows)
        self.assertEqual(len([r for r in rows if r["server"] == "epoll_et"]), 3)
        self.assertNothingLeft()

    def test_ctrl_c(self) -> None:
        proc = subprocess.Popen(
            ["/usr/bin/python3", str(ROOT / "bench/run.py"), "--scenario", "quick", "--results-dir",
             str(self.results()), "--bin-dir", str(self.box.bin), "--repeats", "3", "--no-latest",
             "--set", 'servers=["epoll_et","good"]', "--set", "duration_s=2",
             "--set", "warmup_s=0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            if line.startswith("[2/"):
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, rest)
        self.assertIn("interrupted", rest)
        self.assertNotIn("Traceback", rest)
        _, manifest, rows = self.folder()
        self.assertTrue(manifest["interrupted"])
        self.assertGreaterEqual(len(rows), 1)
        self.assertNothingLeft()


if __name__ == "__main__":
    unittest.main(verbosity=2)
