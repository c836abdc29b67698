#!/usr/bin/python3
"""Tests of bench/compare.py: a real two-server run on loopback, the failure reports, cleanup,
and of the floor responder it can run beside the servers (servers/reference/floor).

Run by CTest (label tools) as: /usr/bin/python3 compare_test.py BIN_DIR
"""

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stdout, redirect_stderr
from pathlib import Path

import compare  # bench/ on PYTHONPATH (CTest sets it): the command line
from iolab_bench import HarnessError, machine, measure, servers, validity

ROOT = Path(__file__).resolve().parents[2]

BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build/bin").resolve()


def own_descendants():
    """Processes whose parent chain leads to this test process."""
    parents = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            parents[int(status.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    me = os.getpid()
    found = []
    for pid in parents:
        p = pid
        while p in parents and p != me and p > 1:
            p = parents[p]
        if p == me and pid != me:
            found.append(pid)
    return found


class SyscallBillingTest(unittest.TestCase):
    def test_user_beyond_syscalls_subtracts_the_billing_per_call(self) -> None:
        cell = {"server_user_us": 2.0, "perf_syscalls_per_request": 3.0,
                "syscalls_per_request": 1.0}
        measure.add_user_beyond_syscalls(cell, {"user_us": 0.5, "sys_us": 0.5})
        self.assertAlmostEqual(cell["server_user_net_us"], 0.5)  # perf's count, not /stats'

    def test_no_correction_without_a_perf_count_or_a_billing(self) -> None:
        cell = {"server_user_us": 2.0, "syscalls_per_request": 3.0}
        measure.add_user_beyond_syscalls(cell, {"user_us": 0.5, "sys_us": 0.5})
        self.assertNotIn("server_user_net_us", cell)
        cell = {"server_user_us": 2.0, "perf_syscalls_per_request": 3.0}
        measure.add_user_beyond_syscalls(cell, "micro_syscalls not built")
        self.assertNotIn("server_user_net_us", cell)

    def test_a_missing_micro_binary_is_named(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            why = machine.syscall_billing(tmp, None)
        self.assertIsInstance(why, str)
        self.assertIn("micro_syscalls not built", why)


class FloorTest(unittest.TestCase):
    """server_floor answers every request head it is sent, however the bytes are cut, and no
    more."""

    def test_split_and_pipelined_heads_each_get_one_response(self) -> None:
        with servers.Server("floor", None, BIN_DIR) as server:
            assert server.port is not None
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                # Three pipelined heads, each "\r\n\r\n" cut between two reads at a different
                # place (the pauses let the server read each piece alone), then a "\r\r\n" that
                # must not end a fourth.
                head = b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"
                stream = head * 3 + b"\r\r\n"
                cuts = [0, len(head) - 3, 2 * len(head) - 2, 3 * len(head) - 1, len(stream)]
                for start, end in zip(cuts, cuts[1:]):
                    s.sendall(stream[start:end])
                    time.sleep(0.05)
                body = b'{"message":"pong"}'
                got = b""
                while got.count(body) < 3:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, f"closed after {got!r}")
                    got += chunk
                self.assertEqual(got.count(b"HTTP/1.1 200 OK\r\n"), 3)
                self.assertTrue(got.endswith(body))
                s.settimeout(0.3)
                with self.assertRaises(socket.timeout):
                    s.recv(1)  # nothing for the unfinished head
            # A closed peer's connection is closed and the server goes on, also when the close
            # comes with the last request (one edge: a short read must not end the reading).
            # (The server is stopped while both are sent, so that one read finds them together.)
            pid = server.pid()
            assert pid is not None
            for close_with_request in (False, True):
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                    if close_with_request:
                        os.kill(pid, signal.SIGSTOP)
                        s.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
                        s.shutdown(socket.SHUT_WR)
                        time.sleep(0.05)
                        os.kill(pid, signal.SIGCONT)
                    else:
                        s.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
                    got = s.recv(65536)
                    self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"), got)
                    if not close_with_request:
                        s.shutdown(socket.SHUT_WR)
                    while got:
                        got = s.recv(65536)  # to the server's close; a timeout fails the test
            self.assertTrue(server.alive())
        self.assertEqual(own_descendants(), [])

    def test_bad_flag_is_named(self) -> None:
        for args, word in ((["--bogus"], "'--bogus'"), (["--port", "70000"], "'70000'")):
            run = subprocess.run([str(BIN_DIR / "server_floor"), *args], capture_output=True,
                                 text=True, timeout=5)
            self.assertEqual(run.returncode, 2)
            self.assertIn(word, run.stderr)

    def test_user_above_floor_pairs_each_repeat_with_the_floor_run_beside_it(self) -> None:
        def cell(server, repeat, user, invalid=()):
            return {"server": server, "kind": "fixed", "repeat": repeat, "server_user_us": user,
                    "invalid": list(invalid)}
        cells = [cell("epoll_et", 0, 2.0), cell("floor", 0, 1.5), cell("epoll_et", 1, 3.0),
                 cell("floor", 1, 2.4, ["steal 5%"]), cell("epoll_et", 2, 2.0)]
        measure.add_user_above_floor(cells)
        self.assertAlmostEqual(cells[0]["server_user_above_floor_us"], 0.5)
        self.assertAlmostEqual(cells[2]["server_user_above_floor_us"], 0.6)
        self.assertNotIn("server_user_above_floor_us", cells[4])  # no floor run in repeat 2
        self.assertNotIn("server_user_above_floor_us", cells[1])  # the floor itself
        rows = {(r["server"], r["metric"]): r for r in validity.summarize_cells(cells)}
        above = rows[("epoll_et", "server_user_above_floor_us")]
        # The floor run's steal leaves repeat 1 out of the difference (said in its notes), not
        # out of epoll_et's own figures.
        self.assertEqual(above["repeats"], [0])
        self.assertAlmostEqual(above["values"][0], 0.5)
        self.assertEqual(above["notes"],
                         ["1 of 2 rounds left out: floor: steal 5% in 1 of 2 runs"])
        self.assertEqual(rows[("epoll_et", "server_user_us")]["n"], 3)
        self.assertFalse([r for r in rows[("epoll_et", "server_user_us")]
                         ["why_invalid"] + rows[("epoll_et", "server_user_us")]["notes"]
                         if "floor" in r])
        # A lasting floor problem (errors) makes the difference invalid.
        cells[3]["invalid"] = ["7 errors"]
        measure.add_user_above_floor(cells)
        rows = {(r["server"], r["metric"]): r for r in validity.summarize_cells(cells)}
        self.assertIn("floor: 7 errors in 1 of 2 runs",
                      rows[("epoll_et", "server_user_above_floor_us")]["why_invalid"])

    def test_floor_in_a_run_gives_the_column_and_the_note(self) -> None:
        out, err = io.StringIO(), io.StringIO()
        with tempfile.TemporaryDirectory() as tmp, redirect_stdout(out), redirect_stderr(err):
            report = Path(tmp) / "cmp.json"
            code = compare.main(["--bin-dir", str(BIN_DIR), "--servers", "epoll_et,floor",
                                 "--kinds", "fixed", "--repeats", "1", "--duration", "0.5",
                                 "--warmup", "0.1",
                                 "--connections", "4", "--rate", "2000", "--json", str(report)])
            doc = json.loads(report.read_text())
        self.assertEqual(code, 0, err.getvalue())
        epoll_et, floor = doc["cells"]
        self.assertEqual(floor["errors"], 0)
        self.assertNotIn("syscalls_per_request", floor)  # no /stats: a reference, not a model
        self.assertAlmostEqual(epoll_et["server_user_above_floor_us"],
                               epoll_et["server_user_us"] - floor["server_user_us"])
        self.assertIn("user above floor", out.getvalue())
        self.assertIn("floor: a responder that makes the system calls and nothing else",
                      out.getvalue())
        self.assertEqual(own_descendants(), [])


class CompareTest(unittest.TestCase):
    def run_compare(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = compare.main(["--bin-dir", str(BIN_DIR), *args])
        return code, out.getvalue(), err.getvalue()

    def test_two_servers_side_by_side(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "cmp.json"
            code, out, err = self.run_compare(
                "--servers", "epoll_et,threads", "--repeats", "2", "--duration", "0.5",
                "--warmup", "0.2", "--connections", "8", "--json", str(report))
            self.assertEqual(code, 0, err)
            doc = json.loads(report.read_text())
        self.assertEqual(doc["servers"], ["epoll_et", "threads"])
        # Interleaved: every repeat visits every server before the next repeat starts.
        order = [(c["repeat"], c["server"]) for c in doc["cells"] if c["kind"] == "fixed"]
        self.assertEqual(order, [(0, "epoll_et"), (0, "threads"), (1, "epoll_et"), (1, "threads")])
        self.assertEqual(doc["calibration"]["server"], "epoll_et")
        for cell in doc["cells"]:
            self.assertGreater(cell["requests"], 0)
            self.assertEqual(cell["errors"], 0)
            self.assertGreater(cell["server_total_us"], 0)
            if cell["kind"] == "saturation":
                # Pipelined: one read and one write carry many requests.
                self.assertLess(cell["syscalls_per_request"], 1.0, cell)
            else:
                # One request needs at least one read and one write.
                self.assertGreaterEqual(cell["syscalls_per_request"], 1.9, cell)
        fixed = [c for c in doc["cells"] if c["kind"] == "fixed"]
        for cell in fixed:
            self.assertAlmostEqual(cell["offered_rate"], doc["offered_rate"])
        self.assertIn("saturation req/s", out)
        # The billing of one bare system call was measured on the server CPU before the runs.
        billing = doc["syscall_billing"]
        self.assertIsInstance(billing, dict, billing)
        self.assertGreater(billing["sys_us"], 0.0)
        self.assertGreaterEqual(billing["user_us"], 0.0)
        self.assertIn("bills a bare system call", out)
        # ... and how the kernel splits user from system time, from its configuration.
        self.assertNotEqual(doc["cpu_accounting"], "?")
        self.assertIn(f"user/system split on this kernel: {doc['cpu_accounting']}", out)
        # Without --perf no server has a system call count from perf: no corrected column.
        self.assertNotIn("user beyond syscalls", out)
        self.assertEqual(own_descendants(), [])

    def test_server_without_ready_line_is_reported(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            fake = Path(tmp) / "server_silent"
            fake.write_text("#!/bin/sh\nexec sleep 30\n")
            fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
            (Path(tmp) / "loadgen").symlink_to(BIN_DIR / "loadgen")
            old = servers.READY_TIMEOUT_S
            servers.READY_TIMEOUT_S = 1.0
            try:
                out, err = io.StringIO(), io.StringIO()
                with redirect_stdout(out), redirect_stderr(err):
                    code = compare.main(["--bin-dir", tmp, "--servers", "silent", "--repeats", "1"])
            finally:
                servers.READY_TIMEOUT_S = old
        self.assertEqual(code, 1)
        self.assertIn("silent: never printed its ready line", err.getvalue())
        self.assertEqual(own_descendants(), [])

    def test_server_dying_mid_run_is_reported(self) -> None:
        with servers.Server("epoll_et", 0, BIN_DIR) as server:
            server.overhead = servers.stats_overhead(server)
            opts = compare.parse_args(["--duration", "2", "--warmup", "0", "--connections", "4"])
            killer = subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -KILL {server.pid()}"])
            with self.assertRaises(HarnessError) as ctx:
                measure.measure(server, BIN_DIR / "loadgen", 0, "closed",
                                measure.Load(opts.duration, opts.warmup, opts.connections))
            killer.wait()
        self.assertIn("died during the run", str(ctx.exception))
        self.assertEqual(own_descendants(), [])

    def test_bad_arguments(self) -> None:
        with self.assertRaises(SystemExit) as ctx, redirect_stderr(io.StringIO()):
            compare.parse_args(["--kinds", "bogus"])
        self.assertEqual(ctx.exception.code, 2)

    def test_a_wide_interval_invalidates(self) -> None:
        # 100, 100, 130: mean 110, the 95% t-interval ±39% of it (throughput: at most ±10%).
        cells = [{"server": "a", "kind": "closed", "rps": v, "invalid": []}
                 for v in (100, 100, 130)]
        row = validity.summarize_cells(cells)[0]
        self.assertFalse(row["valid"])
        self.assertEqual(row["why_invalid"],
                         ["interval ±39% of the value over 3 rounds (at most ±10%)"])
        self.assertAlmostEqual(row["mean"], 110.0)
        cells = [{"server": "a", "kind": "closed", "rps": v, "invalid": []}
                 for v in (100, 101, 102)]
        self.assertTrue(validity.summarize_cells(cells)[0]["valid"])

    def test_background_load_invalidates(self) -> None:
        # 2 s window: the server used 0.5 s and the client 0.5 s of the 1.6 s the machine was busy.
        marks = {"start_busy": 100.0, "end_busy": 101.6}
        self.assertAlmostEqual(machine.background_cpus(marks, 0.5, 0.5, 2.0), 0.3)
        cell = {"kind": "fixed", "errors": 0, "steal": 0.0, "listen_overflows": 0,
                "achieved_rate": 1000, "offered_rate": 1000, "background_cpus": 0.3}
        self.assertEqual(validity.cell_problems(cell, None), ["background load 0.30 CPUs"])
        cell["background_cpus"] = 0.05
        self.assertEqual(validity.cell_problems(cell, None), [])
        # Tick rounding can make the pair look busier than the machine: never negative.
        self.assertEqual(machine.background_cpus(
            {"start_busy": 0.0, "end_busy": 0.9}, 0.5, 0.5, 1.0), 0.0)
        self.assertGreater(machine.read_busy_s(), 0.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
