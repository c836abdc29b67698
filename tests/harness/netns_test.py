#!/usr/bin/python3
"""The netns mode of bench/run.py (bench/netns/with_netns.sh): a brief real run between two
network namespaces, and nothing left behind afterwards, also when the run is interrupted.

It needs root and iproute2's `ip`; without them it prints why and exits 77, which CTest reports
as skipped (SKIP_RETURN_CODE). What it checks:
  - the run measures across the veth (rows name the server's namespace address, figures come
    from /stats) and the emulated round trip is really applied: one connection with a 2 ms
    think time cannot exceed 500 requests/s, and eight connections carry several times more;
  - the connections-to-peak rows are written for each round trip;
  - the netem probe result is recorded, and agrees with the test's own probe;
  - after a normal end, a SIGTERM and a SIGINT mid-run: no namespace and no veth of the run
    remain (`ip netns list`, `ip link`), and the servers it started inside are gone.

Run by CTest (label tools) as: /usr/bin/python3 netns_test.py BIN_DIR
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = (Path(sys.argv.pop(1)) if len(sys.argv) > 1 else ROOT / "build/bin").resolve()
RUN_PY = ROOT / "bench/run.py"
THINK_MS = 2
BRIEF = ["--set", "servers=[\"epoll_et\"]",
         "--set", f"matrix={{\"think_ms\": [0, {THINK_MS}], \"connections\": [1, 8]}}",
         "--set", "duration_s=0.5", "--set", "warmup_s=0.2", "--repeats", "1", "--no-latest"]


def why_not_here():
    if os.geteuid() != 0:
        return "not root: network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "no 'ip' command (iproute2)"
    # Root inside a container may still lack CAP_SYS_ADMIN / CAP_NET_ADMIN: try one namespace.
    name = f"iolab-probe-{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"'ip netns add' refused here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def leftovers(pid):
    """Namespaces and links of the run whose wrapper had this pid."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found = [w for w in names.split() if w in (f"iolab-srv-{pid}", f"iolab-cli-{pid}")]
    found += [ln.split(":")[1].strip() for ln in links.splitlines()
              if f"iolabs{pid}" in ln or f"iolabc{pid}" in ln]
    return found


def netns_pids(name):
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def start_run(results_dir, *extra):
    # run.py execs the wrapper in place: this pid is the one in the namespace names.
    return subprocess.Popen(["/usr/bin/python3", str(RUN_PY), "--scenario", "netns", "--bin-dir",
                             str(BIN_DIR), "--results-dir", str(results_dir), *BRIEF, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Netns(unittest.TestCase):
    tmp: "tempfile.TemporaryDirectory[str]"

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory(prefix="iolab-containers-netns-")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_brief_run_measures_across_the_veth(self) -> None:
        proc = start_run(Path(self.tmp.name) / "brief")
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(leftovers(proc.pid), [], "namespaces or veth left behind")
        self.assertIn(f"removed iolab-srv-{proc.pid}", err)

        folder = next((Path(self.tmp.name) / "brief" / "runs").iterdir())
        manifest = json.loads((folder / "manifest.json").read_text())
        self.assertEqual(manifest["mode"], "netns")
        self.assertEqual(manifest["netns"]["server"], f"iolab-srv-{proc.pid}")
        own_probe = self.netem_here()
        self.assertEqual(manifest["netns"]["netem"] == "yes", own_probe, manifest["netns"])

        rows = [json.loads(ln)
                for ln in (folder / "harness/results.jsonl").read_text().splitlines()]
        self.assertEqual(len(rows), 4)
        rps = {}
        for r in rows:
            self.assertEqual(sum(r["errors"].values()), 0, r)
            self.assertTrue(r["target"].startswith(
                manifest["netns"]["server_addr"] + ":"), r["target"])
            self.assertTrue(r["sources"]["cpu"].startswith("/stats"))
            self.assertIn("namespace", r["sources"]["listen_overflows"])
            self.assertEqual(r["listen_overflows"], 0)
            self.assertGreater(r["cpu_us_per_req"]["server"]["user"]
                               + r["cpu_us_per_req"]["server"]["sys"], 0)
            rps[(r["params"]["think_ms"], r["params"]["connections"])] = r["rps"]
        # The emulated round trip: one connection waits THINK_MS after every response.
        self.assertLessEqual(rps[(THINK_MS, 1)], 1000 / THINK_MS)
        self.assertGreater(rps[(THINK_MS, 8)], 4 * rps[(THINK_MS, 1)])
        self.assertGreater(rps[(0, 1)], rps[(THINK_MS, 1)])

        peaks = [json.loads(ln) for ln in
                 (folder / "harness/connections_to_peak.jsonl").read_text().splitlines()]
        self.assertEqual(sorted(p["think_ms"] for p in peaks), [0, THINK_MS])
        for p in peaks:
            self.assertEqual([q["connections"] for q in p["points"]], [1, 8])
            self.assertIn(p["connections_to_peak"], (1, 8))
            self.assertEqual(p["peak_rps"], max(q["rps"] for q in p["points"]))
        self.assertIn("connections to reach the peak", out)

    def netem_here(self):
        name = f"iolab-probe-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
            return subprocess.run(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo",
                                   "root", "netem", "delay", "1ms"],
                                  capture_output=True).returncode == 0
        finally:
            subprocess.run(["ip", "netns", "del", name])

    def interrupt(self, sig):
        proc = start_run(Path(self.tmp.name) / f"sig{sig}", "--set", "duration_s=30")
        server_ns = f"iolab-srv-{proc.pid}"
        deadline = time.monotonic() + 20
        servers: list[Any] = []
        while time.monotonic() < deadline and not servers:
            time.sleep(0.2)
            if server_ns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                           text=True).stdout:
                servers = netns_pids(server_ns)
        self.assertTrue(servers, "no server started in the namespace within 20 s")
        time.sleep(0.5)  # into the measured window
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 128 + sig, err)
        self.assertEqual(leftovers(proc.pid), [], "namespaces or veth left behind")
        self.assertEqual([p for p in servers if alive(p)], [], "servers left running")
        self.assertIn("interrupted", err)

    def test_sigterm_mid_run_leaves_nothing(self) -> None:
        self.interrupt(signal.SIGTERM)

    def test_sigint_mid_run_leaves_nothing(self) -> None:
        self.interrupt(signal.SIGINT)


if __name__ == "__main__":
    reason = why_not_here()
    if reason:
        print(f"SKIP: the netns mode cannot run here: {reason}")
        sys.exit(77)
    unittest.main(verbosity=2)
