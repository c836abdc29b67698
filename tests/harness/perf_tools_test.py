#!/usr/bin/python3
"""Tests of bench/perf: the flame-graph renderer and the parsers on fixtures, then each script
run for real and on its degraded paths (perf refused, tools missing) with fake tools.

Usage: perf_tools_test.py BIN_DIR      (BIN_DIR holds server_epoll_et for the startup test)
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import flamegraph  # bench/perf on PYTHONPATH (CTest sets it; "perf" alone is linux-perf's module)
import perf_parse

ROOT = Path(__file__).resolve().parents[2]
PERF_DIR = ROOT / "bench" / "perf"

BIN_DIR = Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build" / "bin"
SVG = "{http://www.w3.org/2000/svg}"
BUSY = ["/usr/bin/python3", "-c",
        "import time\nt = time.time() + 0.4\nwhile time.time() < t: sum(range(1000))"]

PERF_SCRIPT = """\
server_epoll_et  4242/4243  1234.500: 5025125 cpu-clock:
\tffffffff8158c3e1 do_syscall_64+0x5c ([kernel.kallsyms])
\t          13311b iolab::Connection::on_read(unsigned long)+0x2b (/bin/server_epoll_et)
\t           fad38 [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          227bd0 main+0x20 (/bin/server_epoll_et)

tokio worker 17  1234.600: 5025125 cpu-clock:
\t          227bd0 run+0x20 (/bin/app)

server_epoll_et  4242/4243  1234.700: 5025125 cpu-clock:
\tffffffff8158c3e1 do_syscall_64+0x11 ([kernel.kallsyms])
\t          13311b iolab::Connection::on_read(unsigned long)+0x9 (/bin/server_epoll_et)
\t           fad38 [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          227bd0 main+0x20 (/bin/server_epoll_et)
"""

PERF_TRACE = """
 Summary of events:

 server (100), 10 events, 50.0%

   syscall            calls  errors  total       min       avg       max       stddev
                                     (msec)    (msec)    (msec)    (msec)        (%)
   --------------- --------  ------ -------- --------- --------- ---------     ------
   read                   4      1     0.126     0.028     0.032     0.037      6.42%
   epoll_wait             2      0     0.100     0.050     0.050     0.050      0.00%

 server (101), 3 events, 50.0%

   syscall            calls  errors  total       min       avg       max       stddev
                                     (msec)    (msec)    (msec)    (msec)        (%)
   --------------- --------  ------ -------- --------- --------- ---------     ------
   read                   3      0     0.090     0.028     0.030     0.037      6.42%
"""

STRACE_C = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000060          15         4           read
 40.00    0.000040          10         4         2 openat
------ ----------- ----------- --------- --------- ----------------
100.00    0.000100          12         8         2 total
"""

PERF_STAT = """\
# started on Mon Nov 23 17:28:54 2026

1.64,msec,task-clock,1640000,100.00,0.500,CPUs utilized
5,,context-switches,1640000,100.00,3.049,K/sec
<not supported>,,cycles,0,100.00,,
<not counted>,,instructions,0,0.00,,
"""


def run(cmd, env=None, timeout=60, **kw):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                          **kw)


class FlameGraphTest(unittest.TestCase):
    def test_fold_names_frames_root_first(self) -> None:
        stacks = flamegraph.fold(PERF_SCRIPT.splitlines(keepends=True))
        self.assertEqual(stacks, {
            "server_epoll_et;main;[libc.so.6];iolab::Connection::on_read(unsigned long);"
            "do_syscall_64": 2,
            "tokio worker;run": 1,
        })

    def test_render_widths_follow_samples(self) -> None:
        svg = flamegraph.render({"a;b;c": 3, "a;b;d": 1, "a;e": 4}, title="t")
        root = ET.fromstring(svg)
        widths = {}
        for g in root.iter(f"{SVG}g"):
            name = g.find(f"{SVG}title").text.split(" (")[0]
            widths[name] = float(str(g.find(f"{SVG}rect").get("width")))
        self.assertEqual(set(widths), {"all", "a", "b", "c", "d", "e"})
        self.assertAlmostEqual(widths["a"], widths["all"], places=1)
        self.assertAlmostEqual(widths["b"], widths["a"] / 2, places=1)
        self.assertAlmostEqual(widths["c"], 3 * widths["d"], places=1)
        self.assertIn("8 samples", svg)

    def test_render_escapes_and_is_deterministic(self) -> None:
        stacks = {"main;operator<<(std::ostream&, X const&)": 2, "main;f": 1}
        svg = flamegraph.render(stacks, title="a <b> & c")
        ET.fromstring(svg)  # well-formed
        self.assertIn("operator&lt;&lt;", svg)
        self.assertEqual(svg, flamegraph.render(dict(reversed(list(stacks.items()))),
                                                title="a <b> & c"))

    def test_read_folded(self) -> None:
        self.assertEqual(flamegraph.read_folded(["a;b 2\n", "a;b 3\n", "\n", "a c;d 1\n"]),
                         {"a;b": 5, "a c;d": 1})
        with self.assertRaises(ValueError):
            flamegraph.read_folded(["no count here\n"])


class ParseTest(unittest.TestCase):
    def test_perf_trace_sums_threads(self) -> None:
        self.assertEqual(perf_parse.perf_trace_summary(PERF_TRACE), {"read": 7, "epoll_wait": 2})

    def test_strace_with_and_without_errors(self) -> None:
        self.assertEqual(perf_parse.strace_summary(STRACE_C), {"read": 4, "openat": 4})

    def test_perf_stat_statuses(self) -> None:
        rows = {r["event"]: r for r in perf_parse.perf_stat_csv(PERF_STAT)}
        self.assertEqual(rows["task-clock"]["value"], 1.64)
        self.assertEqual(rows["cycles"]["status"], "not supported")
        self.assertEqual(rows["instructions"]["status"], "not counted")


class ScriptsTest(unittest.TestCase):
    tmp: Path
    refused: Path
    perf_works: bool

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="iolab-perf-test-"))
        cls.refused = cls.tmp / "perf-refused"
        cls.refused.write_text("#!/bin/sh\necho 'Error: Access to performance monitoring and "
                               "observability operations is limited.' >&2\nexit 255\n")
        cls.refused.chmod(cls.refused.stat().st_mode | stat.S_IXUSR)
        cls.perf_works = run(["perf", "stat", "-e", "task-clock", "--", "true"]).returncode == 0 \
            if shutil.which("perf") else False

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def busy_child(self):
        p = subprocess.Popen(["/usr/bin/python3", "-c",
                              "import os, time\nwhile True:\n  os.getppid(); sum(range(2000)); "
                              "time.sleep(0.002)"])
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        time.sleep(0.2)
        return p.pid

    # syscount.sh
    def test_syscount_command(self) -> None:
        r = run([PERF_DIR / "syscount.sh", "--json", "--", "cat", "/dev/null"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertIn(out["source"], ("perf-trace", "strace"))
        self.assertGreater(out["syscalls"].get("read", 0) + out["syscalls"].get("openat", 0), 0)
        if out["source"] == "strace":
            self.assertTrue(out["note"])

    def test_syscount_pid(self) -> None:
        pid = self.busy_child()
        r = run([PERF_DIR / "syscount.sh", "-d", "0.7", "--json", "-p", str(pid)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(json.loads(r.stdout)["syscalls"].get("getppid", 0), 10)

    @unittest.skipUnless(shutil.which("strace"), "strace not installed")
    def test_syscount_perf_refused_falls_back_to_strace(self) -> None:
        r = run([PERF_DIR / "syscount.sh", "--json", "--", "cat", "/dev/null"],
                env={"PERF": str(self.refused)})
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["source"], "strace")
        self.assertIn("perf_event_paranoid", out["note"])
        self.assertIn("falling back to strace", r.stderr)

    def test_syscount_without_tools(self) -> None:
        r = run([PERF_DIR / "syscount.sh", "--", "true"],
                env={"PERF": "/nonexistent/perf", "STRACE": "/nonexistent/strace"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("apt-get install", r.stderr)

    def test_usage(self) -> None:
        for script in ("syscount.sh", "perfstat.sh", "flamegraph.sh"):
            r = run([PERF_DIR / script])
            self.assertEqual(r.returncode, 2, script)
            self.assertIn(f"bench/perf/{script}", r.stderr)

    # perfstat.sh
    def test_perfstat_command(self) -> None:
        r = run([PERF_DIR / "perfstat.sh", "--json", "--", "true"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        events = {e["event"]: e for e in out["events"]}
        self.assertIn("task-clock", events)
        if out["not_supported"]:  # a VM: the software events still count, with a pointer
            self.assertEqual(events["task-clock"]["status"], "counted")
            self.assertIn("cachegrind.sh", out["note"])

    def test_perfstat_refused_command_uses_rusage(self) -> None:
        r = run([PERF_DIR / "perfstat.sh", "--json", "--", "sh", "-c",
                 "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; exit 3"],
                env={"PERF": str(self.refused)})
        self.assertEqual(r.returncode, 3, r.stderr)  # the command's status is passed on
        out = json.loads(r.stdout)
        self.assertEqual(out["source"], "rusage")
        self.assertGreater(out["events"][0]["value"], 0)
        self.assertIn("perf_event_paranoid", out["note"])

    def test_perfstat_refused_pid_uses_proc(self) -> None:
        pid = self.busy_child()
        r = run([PERF_DIR / "perfstat.sh", "--json", "-d", "0.5", "-p", str(pid)],
                env={"PERF": str(self.refused)})
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["source"], "proc")
        events = {e["event"]: e["value"] for e in out["events"]}
        self.assertGreater(events["context-switches"], 10)

    # flamegraph.sh
    def test_flamegraph_command(self) -> None:
        if not self.perf_works:
            self.skipTest("perf cannot count here (the refused path is tested below)")
        svg = self.tmp / "busy.svg"
        r = run([PERF_DIR / "flamegraph.sh", "-F", "499", "-o", svg, "--"] + BUSY)
        self.assertEqual(r.returncode, 0, r.stderr)
        ET.parse(svg)
        folded = flamegraph.read_folded(svg.with_suffix(".folded").read_text().splitlines())
        self.assertGreater(sum(folded.values()), 20)
        self.assertTrue(all(s.startswith("python3") for s in folded))

    def test_flamegraph_perf_refused(self) -> None:
        r = run([PERF_DIR / "flamegraph.sh", "-o", self.tmp / "x.svg", "--", "true"],
                env={"PERF": str(self.refused)})
        self.assertEqual(r.returncode, 1)
        self.assertIn("perf_event_paranoid", r.stderr)
        self.assertFalse((self.tmp / "x.svg").exists())

    def test_flamegraph_from_folded(self) -> None:
        folded = self.tmp / "given.folded"
        folded.write_text("main;a 3\nmain;b 1\n")
        r = run([PERF_DIR / "flamegraph.sh", "--folded", folded])
        self.assertEqual(r.returncode, 0, r.stderr)
        ET.parse(self.tmp / "given.svg")

    # cachegrind.sh: a thin alias of instructions_per_request.sh (tested with the runner)
    def test_cachegrind_forwards_to_instructions_per_request(self) -> None:
        r = run([PERF_DIR / "cachegrind.sh"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("usage: instructions_per_request.sh", r.stderr)
        r = run([PERF_DIR / "cachegrind.sh", "pooled", "10"], env={"BIN_DIR": "/nonexistent"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("build first", r.stderr)

    # startup.sh: the hyperfine part, on binaries given (building two variants takes a minute)
    def test_startup_with_given_binaries(self) -> None:
        server = BIN_DIR / "server_epoll_et"
        if not server.exists() or not shutil.which("hyperfine"):
            self.skipTest("needs build/bin/server_epoll_et and hyperfine")
        r = run([PERF_DIR / "startup.sh", "--runs", "2"],
                env={"STARTUP_DYNAMIC": str(server), "STARTUP_STATIC": str(server)}, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["claim"], "C07")
        self.assertEqual(set(out["mean_ms"]),
                         {"help-dynamic", "help-static", "ready-dynamic", "ready-static",
                          "wrapper"})
        self.assertTrue(all(v > 0 for v in out["mean_ms"].values()))

    def test_startup_without_hyperfine(self) -> None:
        r = run([PERF_DIR / "startup.sh"], env={"HYPERFINE": "/nonexistent/hyperfine"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("apt-get install hyperfine", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
