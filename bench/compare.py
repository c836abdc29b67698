#!/usr/bin/python3
"""compare.py: the measuring stick. Puts servers side by side, pinned, under the same load.

Every performance claim about a server in iolab is made with this tool, against nginx, in one
run. For each server it takes two kinds of measurement:

  fixed rate   open loop at one offered rate, the same for every server (a fraction of the
               client's closed-loop maximum against nginx, calibrated at the start and recorded):
               CPU per request (server user/system, client), system calls and context switches
               per request, latency percentiles. Valid when there were no errors, the achieved
               rate is within 2% of the offered one, steal is low and no SYN was dropped.
  saturation   closed loop, pipelined (16 deep) so the server is the bottleneck: requests/s.
               Valid only when the server's CPU was the saturated one. Closed loop without
               pipelining is recorded too and flagged client-bound when it is.

Repeats are interleaved (A B C, A B C, ...) and a metric whose spread (max - min) / median
exceeds 15% is marked invalid. Server counters are read at the moments loadgen marks the start
and end of its window; the cost of reading /stats itself is measured and subtracted. CPU comes
from /proc (user and system over all threads) or, for iolab servers, from their own rusage.

That user/system split is the kernel's billing, and some VMs bill part of every kernel round
trip as user time. So before the fixed-rate runs the tool measures what one bare system call
(getppid, a few user instructions) is billed on the server CPU (build/bin/micro_syscalls), and
prints it. With --perf, which counts every server's system calls (nginx's included), the table
adds "user beyond syscalls": user CPU per request minus that billing times the system calls per
request, an estimate of the server's own user-space work that a per-crossing charge does not
swamp. It errs high, never low: a call that blocks and switches is billed more user time than
getppid (on the reference VM a blocking pipe read on one CPU was billed about a third more).
The raw user column stays the measured figure.

The reference "floor" (servers/reference/floor, build/bin/server_floor) shows the same thing
without estimates: it makes the system calls a keep-alive server must make and does nothing else
in user space. Its user CPU per request is what this machine bills for the calls alone, the floor
no server goes below; when it runs, the table adds "user above floor": each server's user CPU per
request less the floor's from the same repeat.

Usage:
  bench/compare.py --servers epoll_et,threads,nginx [--repeats 5] [--duration 3] [--warmup 1]
                   [--connections 64] [--pipeline 16] [--rate-fraction 0.5 | --rate R]
                   [--path /ping] [--server-cpu N --client-cpu N] [--perf] [--json FILE]

Servers: any iolab model with a binary build/bin/server_<model> (options after a colon, e.g.
'epoll_et:--threads=2'), the references nginx, gin, nethttp (skipped with a note when not
installed), and floor. Loads go to 127.0.0.1 only, every run is bounded, and every process this
tool starts is stopped before it exits, also on Ctrl-C.
"""

import argparse
import http.client
import resource
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = ("nginx", "gin", "nethttp", "floor")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_SPREAD = 0.15
MAX_RATE_SHORTFALL = 0.02
MAX_STEAL = 0.02
# CPU used by everything else on the machine during a window, in CPUs: another build or test on
# a shared 2-CPU machine takes CPU from the server or the client without showing as steal.
MAX_BACKGROUND_CPUS = 0.25
SATURATED_CPU = 0.90
READY_TIMEOUT_S = 10.0


class HarnessError(Exception):
    """A run that cannot go on: reported with its reason, never hidden."""


# ---------------------------------------------------------------------------------------------
# The machine: topology, steal, listen overflows.

def cpu_topology():
    """{cpu: core id key} for online CPUs; SMT siblings share a key."""
    cpus = {}
    for path in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")):
        cpu = int(path.name[3:])
        online = path / "online"
        if online.exists() and online.read_text().strip() == "0":
            continue
        siblings = path / "topology" / "thread_siblings_list"
        cpus[cpu] = siblings.read_text().strip() if siblings.exists() else str(cpu)
    allowed = os.sched_getaffinity(0)
    return {c: k for c, k in cpus.items() if c in allowed}


def choose_cpus(server_cpu=None, client_cpu=None):
    """Server and client on different physical cores when there are two; the choice is recorded."""
    topo = cpu_topology()
    cpus = sorted(topo)
    if server_cpu is not None and client_cpu is not None:
        return server_cpu, client_cpu, "given on the command line"
    if len(cpus) < 2:
        return cpus[0], cpus[0], "one CPU: server and client share it (figures are client-bound)"
    server = cpus[-1]
    others = [c for c in cpus if topo[c] != topo[server]]
    if others:
        return server, others[0], "different physical cores"
    return server, cpus[0], "SMT siblings only: server and client share a core"


def read_steal():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), fields[7]


def read_busy_s():
    """CPU seconds spent in user, nice and system mode by all CPUs since boot (/proc/stat).

    Interrupt and softirq time is left out: on loopback the load's own packet processing lands
    there, so it would count the measured pair as someone else."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2]) / os.sysconf("SC_CLK_TCK")


def background_cpus(marks, server_cpu_s, client_cpu_s, wall_s):
    """CPUs' worth of time used by other processes between the window marks (0 when idle)."""
    busy = marks["end_busy"] - marks["start_busy"]
    return max(0.0, busy - server_cpu_s - client_cpu_s) / max(wall_s, 1e-9)


def listen_overflows():
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


# ---------------------------------------------------------------------------------------------
# Servers.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A started server: pid, port, and how to read its counters. Use as a context manager."""

    def __init__(self, spec, cpu, bin_dir):
        self.spec = spec
        self.name, _, extra = spec.partition(":")
        self.extra = extra.split() if extra else []
        self.cpu = cpu
        self.bin_dir = Path(bin_dir)
        self.proc = None
        self.drain = None
        self.port = None
        self.tmp = None
        self.iolab = self.name not in REFERENCES

    def command(self):
        if self.iolab:
            binary = self.bin_dir / f"server_{self.name}"
            if not binary.exists():
                raise HarnessError(f"{self.spec}: {binary} not built (make build)")
            pin = ["--pin", str(self.cpu)] if self.cpu is not None else []
            return [str(binary), "--port", "0", *pin, *self.extra]
        taskset = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        if self.name == "nginx":
            nginx = "/usr/sbin/nginx"
            if not os.path.exists(nginx):
                raise HarnessError("nginx: not installed (apt-get install nginx-light)")
            self.tmp = tempfile.TemporaryDirectory(prefix="iolab-nginx-")
            prefix = Path(self.tmp.name)
            (prefix / "tmp").mkdir()
            self.port = free_port()
            template = (ROOT / "servers/reference/nginx/nginx.conf.in").read_text()
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            conf = template.replace("@PORT@", str(self.port)).replace("@NOFILE@", str(hard))
            (prefix / "nginx.conf").write_text(conf)
            return taskset + [nginx, "-p", f"{prefix}/", "-e", str(prefix / "error.log"),
                              "-c", str(prefix / "nginx.conf")]
        if self.name == "floor":
            binary = self.bin_dir / "server_floor"
            if not binary.exists():
                raise HarnessError(f"floor: {binary} not built (make build)")
            return taskset + [str(binary), "--port", "0"]
        build = subprocess.run([str(ROOT / "servers/reference/build.sh"), str(self.bin_dir.parent)],
                               capture_output=True, text=True)
        if build.returncode != 0:
            raise HarnessError(f"{self.name}: {build.stderr.strip() or 'build failed'}")
        return taskset + [str(self.bin_dir / f"server_{self.name}"), "-port", "0", *self.extra]

    def __enter__(self):
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        if self.name == "nginx":
            self._wait_for_port()
        else:
            self._wait_for_ready_line()
        return self

    def _wait_for_ready_line(self):
        line = []
        self.drain = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                      daemon=True)
        self.drain.start()
        self.drain.join(READY_TIMEOUT_S)
        text = line[0] if line else ""
        match = re.search(r"listening on [0-9.]+:(\d+) ", text)
        if not match:
            self.stop()
            err = self.proc.stderr.read().strip() if self.proc.stderr else ""
            self.close_pipes()
            code = self.proc.returncode
            if code == 77:
                raise HarnessError(f"{self.spec}: not supported here (exit 77): {err}")
            raise HarnessError(f"{self.spec}: never printed its ready line within "
                               f"{READY_TIMEOUT_S:.0f} s (exit {code}) {err}")
        self.port = int(match.group(1))
        # Drain stdout so a chatty server never blocks on a full pipe.
        self.drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self.drain.start()

    def _wait_for_port(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().strip()
                self.stop()  # removes the prefix directory
                self.close_pipes()
                raise HarnessError(f"{self.spec}: exited at start: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        self.close_pipes()
        raise HarnessError(f"{self.spec}: not accepting on port {self.port} after "
                           f"{READY_TIMEOUT_S:.0f} s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.tmp:
            self.tmp.cleanup()
            self.tmp = None

    def __exit__(self, *exc):
        self.stop()
        self.close_pipes()

    def close_pipes(self):
        """Closes this end of the stopped server's stdout and stderr. Not while the drain thread
        still reads stdout (closing a file under a blocked read would wait for it): the server
        is dead, so the thread sees end of file at once, unless something it started holds the
        pipe, and then the pipe is left to the garbage collector."""
        if self.proc is None or self.proc.poll() is None:
            return
        if self.drain is not None:
            self.drain.join(1.0)
            if self.drain.is_alive():
                return
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def pid(self):
        # taskset execs the server, so the child's pid is the server's.
        return self.proc.pid

    def snapshot(self):
        """Counters at one moment: CPU seconds, context switches, and /stats for iolab servers."""
        snap = {"t": time.monotonic()}
        pid = self.pid()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        snap["user_s"] = int(fields[11]) / CLK_TCK
        snap["sys_s"] = int(fields[12]) / CLK_TCK
        switches = 0
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                for line in status.read_text().splitlines():
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
            except OSError:
                pass  # a thread that ended meanwhile
        snap["ctx"] = switches
        snap["rss_kb"] = rss_kb(pid)
        if self.iolab:
            # A server that answers /stats with something else is reported, not a traceback.
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
                    stats = json.loads(r.read())
                snap["stats"] = stats
                # rusage counts threads that have exited too (thread-per-connection).
                snap["user_s"] = stats["cpu_user_us"] / 1e6
                snap["sys_s"] = stats["cpu_sys_us"] / 1e6
                snap["ctx"] = stats["voluntary_context_switches"] + stats["involuntary_context_switches"]
            except urllib.error.HTTPError as e:
                # A server at its connection limit (select's FD_SETSIZE wall, --max-conns)
                # refuses the harness's own /stats connection like any other: 503.
                why = " (a server at its connection limit refuses new connections so)" if e.code == 503 else ""
                raise HarnessError(f"{self.spec}: /stats did not answer with its counters: "
                                   f"HTTP {e.code} {e.reason}{why}") from None
            except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException) as e:
                raise HarnessError(f"{self.spec}: /stats did not answer with its counters: "
                                   f"{type(e).__name__}: {ascii(str(e))[:120]}") from None
        return snap


def rss_kb(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def stats_overhead(server):
    """Syscalls, allocations and context switches one /stats snapshot costs, to subtract."""
    if not server.iolab:
        return {"syscalls": 0, "ctx": 0, "allocations": 0}
    a = server.snapshot()
    b = server.snapshot()
    return {"syscalls": sum(b["stats"]["syscalls"].values()) - sum(a["stats"]["syscalls"].values()),
            "ctx": b["ctx"] - a["ctx"],
            "allocations": b["stats"]["allocations"] - a["stats"]["allocations"]}


# ---------------------------------------------------------------------------------------------
# One measured run.

def run_loadgen(loadgen, url, client_cpu, args, on_mark, timeout_s):
    pin = ["--pin", str(client_cpu)] if client_cpu is not None else []
    cmd = [str(loadgen), "--url", url, *pin, "--json", "-", *args]
    stderr_lines = []
    # As a context manager Popen closes the pipes and waits for loadgen, also on an exception.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            for line in proc.stderr:
                stderr_lines.append(line)
                match = re.match(r"loadgen: window (start|end) ", line)
                if match:
                    on_mark(match.group(1))
            out, _ = proc.communicate(timeout=timeout_s)
        except BaseException:
            # Only a loadgen still running: once communicate() has reaped it, killpg would fail
            # with ESRCH and that error would replace the Ctrl-C being handled here.
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    if proc.returncode != 0:
        raise HarnessError(f"loadgen failed (exit {proc.returncode}): {''.join(stderr_lines).strip()}")
    return json.loads(out)


def perf_syscalls_start(pid):
    """perf counting syscall-entry tracepoints of pid, or None where perf is not permitted."""
    try:
        return subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def perf_syscalls_stop(proc):
    if proc is None:
        return None
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and "raw_syscalls:sys_enter" in line and parts[0].strip().isdigit():
            return int(parts[0])
    return None


def syscall_billing(bin_dir, cpu):
    """What the kernel bills one bare system call on `cpu`: {"user_us", "sys_us"}, or a string
    saying why it could not be measured. micro_syscalls' BM_Getppid loops on getppid for about a
    second and reports the thread's user and system time per call (getrusage)."""
    micro = Path(bin_dir) / "micro_syscalls"
    if not micro.exists():
        return f"{micro} not built"
    try:
        out = subprocess.run([str(micro), "--benchmark_filter=^BM_Getppid$", "--benchmark_min_time=1",
                              "--benchmark_format=json"], capture_output=True, text=True, timeout=60,
                             preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None)
        runs = [b for b in json.loads(out.stdout)["benchmarks"] if b.get("run_type") != "aggregate"]
        return {"user_us": runs[-1]["user_ns"] / 1000.0, "sys_us": runs[-1]["sys_ns"] / 1000.0}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as e:
        return f"micro_syscalls gave no billing ({e.__class__.__name__}: {e})"


def cpu_accounting():
    """How this kernel splits CPU time into user and system, in one line: tick-sampled (a VM may
    bill part of each system call as user) or exact. scripts/cpu_accounting.sh reads it from the
    kernel configuration; "?" if the script could not run."""
    try:
        return subprocess.run([str(ROOT / "scripts/cpu_accounting.sh")], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def add_user_beyond_syscalls(cell, billing):
    """Adds server_user_net_us: user CPU per request less the user time billed to the system calls
    themselves. Only from perf's count, the one every server has (nginx has no /stats), so every
    server in the column is corrected the same way."""
    calls = cell.get("perf_syscalls_per_request")
    if isinstance(billing, dict) and calls is not None:
        cell["server_user_net_us"] = cell["server_user_us"] - billing["user_us"] * calls
    return cell


def add_user_above_floor(cells):
    """Adds server_user_above_floor_us to each fixed-rate cell: its user CPU per request less the
    floor's in the same repeat (the floor ran between the same other runs, so the pair shares the
    machine's mood). A floor run's problems make the difference invalid too (floor_invalid).
    Nothing when the floor did not run."""
    floor = {c["repeat"]: c for c in cells if c["server"] == "floor" and c["kind"] == "fixed"}
    for cell in cells:
        if cell["kind"] == "fixed" and cell["server"] != "floor" and cell["repeat"] in floor:
            base = floor[cell["repeat"]]
            cell["server_user_above_floor_us"] = cell["server_user_us"] - base["server_user_us"]
            cell["floor_invalid"] = [f"floor: {p}" for p in base["invalid"]]
    return cells


def measure(server, loadgen, client_cpu, kind, opts, offered_rate=None, use_perf=False,
            extra_args=(), path=None):
    """One run of one kind ('fixed', 'saturation', 'closed') against a started server.

    extra_args go to loadgen as they are (a scenario's cell parameters); path overrides
    opts.path."""
    url = f"http://127.0.0.1:{server.port}{path or opts.path}"
    args = ["--connections", str(opts.connections), "--duration", f"{opts.duration}s",
            "--warmup", f"{opts.warmup}s", *extra_args]
    if kind == "fixed":
        args += ["--rate", f"{offered_rate:.0f}"]
    elif kind == "saturation":
        args += ["--pipeline", str(opts.pipeline)]
    marks = {}
    perf = {}

    def on_mark(which):
        marks[which] = server.snapshot()
        marks[which + "_steal"] = read_steal()
        marks[which + "_busy"] = read_busy_s()
        marks[which + "_overflows"] = listen_overflows()
        if use_perf and which == "start":
            perf["proc"] = perf_syscalls_start(server.pid())
        if use_perf and which == "end":
            perf["count"] = perf_syscalls_stop(perf.get("proc"))

    try:
        report = run_loadgen(loadgen, url, client_cpu, args, on_mark,
                             timeout_s=opts.duration + opts.warmup + 60)
    except (HarnessError, OSError):
        if server.alive():
            raise
        report = None
    if report is None or not server.alive():
        raise HarnessError(f"{server.spec}: the server died during the run "
                           f"(exit {server.proc.returncode})")
    if "start" not in marks or "end" not in marks:
        raise HarnessError("loadgen printed no window marks")
    a, b = marks["start"], marks["end"]
    requests = max(report["requests"], 1)
    wall = b["t"] - a["t"]
    total, steal = (y - x for x, y in zip(marks["start_steal"], marks["end_steal"]))
    cell = {
        "server": server.spec, "kind": kind, "requests": report["requests"], "rps": report["rps"],
        "errors": report["errors"]["total"],
        "offered_rate": offered_rate if kind == "fixed" else None,
        "achieved_rate": report.get("achieved_rate"),
        "server_user_us": (b["user_s"] - a["user_s"]) * 1e6 / requests,
        "server_sys_us": (b["sys_s"] - a["sys_s"]) * 1e6 / requests,
        "server_cpu_util": ((b["user_s"] - a["user_s"]) + (b["sys_s"] - a["sys_s"])) / max(wall, 1e-9),
        "client_user_us": report["client_cpu_s"]["user"] * 1e6 / requests,
        "client_sys_us": report["client_cpu_s"]["sys"] * 1e6 / requests,
        "ctx_per_request": (b["ctx"] - a["ctx"] - server.overhead["ctx"]) / requests,
        "p50_us": report["latency_us"]["p50"], "p99_us": report["latency_us"]["p99"],
        "latency_us": {k: report["latency_us"][k] for k in ("p50", "p90", "p99", "p999", "max")},
        "errors_by_kind": {k: v for k, v in report["errors"].items() if k != "total"},
        "client_cpu_util": (report["client_cpu_s"]["user"] + report["client_cpu_s"]["sys"])
                           / max(report["duration_s"], 1e-9),
        "wall_s": wall,
        "steal": steal / total if total else 0.0,
        "listen_overflows": marks["end_overflows"] - marks["start_overflows"],
    }
    cell["server_total_us"] = cell["server_user_us"] + cell["server_sys_us"]
    cell["background_cpus"] = background_cpus(
        marks, (b["user_s"] - a["user_s"]) + (b["sys_s"] - a["sys_s"]),
        report["client_cpu_s"]["user"] + report["client_cpu_s"]["sys"], wall)
    cell["rss_kb"] = b["rss_kb"]
    if server.iolab:
        calls = sum(b["stats"]["syscalls"].values()) - sum(a["stats"]["syscalls"].values())
        cell["syscalls_per_request"] = (calls - server.overhead["syscalls"]) / requests
        allocs = b["stats"]["allocations"] - a["stats"]["allocations"]
        cell["allocs_per_request"] = (allocs - server.overhead["allocations"]) / requests
    if perf.get("count") is not None:
        cell["perf_syscalls_per_request"] = perf["count"] / requests
    cell["invalid"] = cell_problems(cell, server)
    return cell


def cell_problems(cell, server):
    problems = []
    if cell["errors"]:
        problems.append(f"{cell['errors']} errors")
    if cell["steal"] > MAX_STEAL:
        problems.append(f"steal {cell['steal']:.0%}")
    if (cell.get("background_cpus") or 0.0) > MAX_BACKGROUND_CPUS:
        problems.append(f"background load {cell['background_cpus']:.2f} CPUs")
    if cell["listen_overflows"]:
        problems.append(f"{cell['listen_overflows']} listen overflows")
    if cell["kind"] == "fixed" and cell["achieved_rate"] is not None:
        if cell["achieved_rate"] < cell["offered_rate"] * (1 - MAX_RATE_SHORTFALL):
            problems.append(f"achieved {cell['achieved_rate']:.0f}/s of {cell['offered_rate']:.0f}/s")
    if cell["kind"] in ("saturation", "closed") and cell["server_cpu_util"] < SATURATED_CPU:
        problems.append(f"client-bound (server CPU {cell['server_cpu_util']:.0%})")
    elif cell["kind"] == "closed" and cell["client_cpu_util"] >= SATURATED_CPU:
        # One request in flight per connection: the client's own CPU caps the rate as much as
        # the server's does, so this is no measure of the server alone.
        problems.append(f"client-bound (client CPU {cell['client_cpu_util']:.0%}, "
                        f"server CPU {cell['server_cpu_util']:.0%})")
    return problems


# ---------------------------------------------------------------------------------------------
# Aggregation and the table.

METRICS = {
    "saturation": ["rps", "server_total_us"],
    "closed": ["rps"],
    "fixed": ["server_user_us", "server_user_net_us", "server_user_above_floor_us", "server_sys_us",
              "server_total_us", "client_user_us",
              "client_sys_us", "syscalls_per_request", "perf_syscalls_per_request",
              "ctx_per_request", "p50_us", "p99_us"],
}


def merge_reasons(reasons, runs):
    """'steal 14%', 'steal 35%' -> 'steal 14-35% in 2 of 3 runs'."""
    kinds = {}
    for reason in reasons:
        for part in reason.split("; "):
            key = re.sub(r"[0-9]+(\.[0-9]+)?", "#", part)
            numbers = [float(x) for x in re.findall(r"[0-9]+(?:\.[0-9]+)?", part)]
            kinds.setdefault(key, []).append(numbers)
    out = []
    for key, samples in kinds.items():
        text = key
        for i in range(key.count("#")):
            values = [n[i] for n in samples if len(n) > i]
            lo, hi = min(values), max(values)
            shown = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
            text = text.replace("#", shown, 1)
        if runs > 1:
            text += f" in {len(samples)} of {runs} runs"
        out.append(text)
    return sorted(out)


def summarize(cells):
    """Median, spread and validity per (server, kind, metric)."""
    out = {}
    for cell in cells:
        out.setdefault((cell["server"], cell["kind"]), []).append(cell)
    summary = []
    for (server, kind), group in out.items():
        for metric in METRICS[kind]:
            values = [c[metric] for c in group if c.get(metric) is not None]
            if not values:
                continue
            median = statistics.median(values)
            spread = (max(values) - min(values)) / median if median else 0.0
            problems = [p for c in group for p in c["invalid"]]
            if metric == "server_user_above_floor_us":
                problems += [p for c in group for p in c.get("floor_invalid", [])]
            reasons = merge_reasons(problems, len(group))
            if len(values) >= 2 and spread > MAX_SPREAD and metric not in ("p99_us",):
                reasons.append(f"spread {spread:.0%}")
            if kind == "closed" and any(r.startswith("client-bound") for r in reasons):
                reasons = [r for r in reasons if not r.startswith("client-bound")] + ["client-bound"]
            summary.append({"server": server, "kind": kind, "metric": metric, "median": median,
                            "spread": spread, "n": len(values), "values": values,
                            "valid": not reasons, "why_invalid": reasons})
    return summary


def fixed(value, digits):
    """value with `digits` decimals; 0.00, not -0.00, for a count less its measured overhead that
    lands a hair below zero."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def print_table(summary, baseline):
    def get(server, kind, metric):
        for row in summary:
            if row["server"] == server and row["kind"] == kind and row["metric"] == metric:
                return row
        return None

    def fmt(row, digits=1, ratio_to=None):
        if row is None:
            return "-"
        text = fixed(row["median"], digits)
        if ratio_to is not None and ratio_to["median"]:
            text += f" ({row['median'] / ratio_to['median']:.2f}x)"
        text += f" ±{row['spread'] * 50:.0f}%"
        return text + ("" if row["valid"] else " !")

    servers = list(dict.fromkeys(r["server"] for r in summary))
    cols = [("saturation req/s", "saturation", "rps", 0, True),
            ("closed req/s", "closed", "rps", 0, True),
            ("user us/req", "fixed", "server_user_us", 2, True),
            ("user beyond syscalls", "fixed", "server_user_net_us", 2, True),
            ("user above floor", "fixed", "server_user_above_floor_us", 2, True),
            ("sys us/req", "fixed", "server_sys_us", 2, False),
            ("total us/req", "fixed", "server_total_us", 2, True),
            ("client us/req", "fixed", "client_user_us", 2, False),
            ("syscalls/req", "fixed", "syscalls_per_request", 2, False),
            ("perf syscalls/req", "fixed", "perf_syscalls_per_request", 2, False),
            ("ctx sw/req", "fixed", "ctx_per_request", 3, False),
            ("p50 us", "fixed", "p50_us", 0, False),
            ("p99 us", "fixed", "p99_us", 0, False)]
    # A column no server has a figure for (user beyond syscalls without --perf) is left out.
    cols = [c for c in cols if any(r["kind"] == c[1] and r["metric"] == c[2] for r in summary)]
    rows = [["server"] + [c[0] for c in cols]]
    for s in servers:
        row = [s]
        for _, kind, metric, digits, ratio in cols:
            base = get(baseline, kind, metric) if ratio and baseline and s != baseline else None
            row.append(fmt(get(s, kind, metric), digits, base))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"(median ±half-spread; ratios against {baseline}; '!' = invalid: see below)")
    client_cpu = [r for r in summary if r["metric"] == "client_user_us"]
    for row in summary:
        if not row["valid"]:
            print(f"  ! {row['server']} {row['kind']} {row['metric']}: {'; '.join(row['why_invalid'])}")
    return client_cpu


def print_floor_note(summary, baseline):
    """One sentence on what the floor's figure means for the user column, when the floor ran."""
    def row_of(server, metric):
        return next((r for r in summary if r["server"] == server and r["kind"] == "fixed"
                     and r["metric"] == metric), None)
    floor_row = row_of("floor", "server_user_us")
    base_row = row_of(baseline, "server_user_us")
    if floor_row is None or baseline == "floor":
        return
    if base_row is not None and base_row["median"] > 0:
        valid = floor_row["valid"] and base_row["valid"]
        ratio = (f", {floor_row['median'] / base_row['median']:.2f}x {baseline}'s"
                 f"{'' if valid else ' (! not valid: see above)'}: no server's user CPU ratio to "
                 f"{baseline} can measure below that on this machine")
    else:  # a run too short for the kernel to have billed the baseline any user time
        ratio = "" if floor_row["valid"] else " (! not valid: see above)"
    print(f"floor: a responder that makes the system calls and nothing else was billed "
          f"{fixed(floor_row['median'], 2)} us user per request here{ratio}; "
          f"'user above floor' compares the user-space work")


# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="epoll_et,threads,nginx",
                   help="comma-separated: iolab models (model:ARGS) and nginx, gin, nethttp, floor")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--rate", type=float, help="offered rate for the fixed-rate runs")
    p.add_argument("--rate-fraction", type=float, default=0.5,
                   help="offered rate as a fraction of the client's closed-loop maximum")
    p.add_argument("--path", default="/ping")
    p.add_argument("--server-cpu", type=int)
    p.add_argument("--client-cpu", type=int)
    p.add_argument("--kinds", default="saturation,closed,fixed")
    p.add_argument("--perf", action="store_true", help="cross-check syscalls with perf tracepoints")
    p.add_argument("--bin-dir", default=str(ROOT / "build/bin"))
    p.add_argument("--json", help="write cells and summary here")
    opts = p.parse_args(argv)
    if not 1 <= opts.repeats <= 50:
        p.error("--repeats must be in 1..50")
    if not 0.1 <= opts.duration <= 120 or not 0 <= opts.warmup <= 60:
        p.error("--duration must be in 0.1..120 s and --warmup in 0..60 s")
    if (opts.server_cpu is None) != (opts.client_cpu is None):
        p.error("--server-cpu and --client-cpu go together")
    opts.kinds = [k for k in opts.kinds.split(",") if k]
    for k in opts.kinds:
        if k not in METRICS:
            p.error(f"--kinds: unknown kind '{k}' (saturation, closed, fixed)")
    return opts


def main(argv=None):
    opts = parse_args(argv if argv is not None else sys.argv[1:])
    loadgen = Path(opts.bin_dir) / "loadgen"
    if not loadgen.exists():
        print(f"compare.py: {loadgen} not built (make build)", file=sys.stderr)
        return 1
    server_cpu, client_cpu, placement = choose_cpus(opts.server_cpu, opts.client_cpu)
    specs = [s for s in opts.servers.split(",") if s]
    print(f"compare: servers {', '.join(specs)}; server CPU {server_cpu}, client CPU {client_cpu} "
          f"({placement}); {opts.repeats} repeats x {opts.warmup:g}+{opts.duration:g} s")

    # Which servers can run here: a reference that is not installed is skipped, visibly.
    runnable, skipped = [], {}
    for spec in specs:
        try:
            with Server(spec, server_cpu, opts.bin_dir):
                runnable.append(spec)
        except HarnessError as e:
            skipped[spec] = str(e)
            print(f"compare: skipping {spec}: {e}", file=sys.stderr)
    if not runnable:
        print("compare.py: no server could start", file=sys.stderr)
        return 1
    baseline = "nginx" if "nginx" in runnable else runnable[0]

    offered = opts.rate
    calibration = None
    if "fixed" in opts.kinds and offered is None:
        with Server(baseline, server_cpu, opts.bin_dir) as s:
            s.overhead = stats_overhead(s)
            cal = measure(s, loadgen, client_cpu, "closed", opts)
        if not cal["rps"] > 0:
            raise HarnessError(f"calibration on {baseline} failed: no request succeeded "
                               f"({cal['errors']} errors: {cal['errors_by_kind']})")
        offered = cal["rps"] * opts.rate_fraction
        calibration = {"server": baseline, "closed_rps": cal["rps"], "fraction": opts.rate_fraction}
        print(f"compare: calibrated on {baseline}: closed loop {cal['rps']:.0f} req/s, "
              f"offered rate {offered:.0f} req/s")

    billing = accounting = None
    if "fixed" in opts.kinds:
        billing = syscall_billing(opts.bin_dir, server_cpu)
        if isinstance(billing, dict):
            print(f"compare: CPU {server_cpu} bills a bare system call (getppid) {billing['user_us']:.3f} us "
                  f"user + {billing['sys_us']:.3f} us system"
                  + (" (--perf subtracts the user part per system call)" if opts.perf else ""))
        else:
            print(f"compare: system call billing not measured: {billing}", file=sys.stderr)
        accounting = cpu_accounting()
        print(f"compare: user/system split on this kernel: {accounting}")

    cells = []
    total_runs = opts.repeats * len(runnable) * len(opts.kinds)
    done = 0
    for repeat in range(opts.repeats):
        for spec in runnable:
            with Server(spec, server_cpu, opts.bin_dir) as s:
                s.overhead = stats_overhead(s)
                for kind in opts.kinds:
                    done += 1
                    cell = measure(s, loadgen, client_cpu, kind, opts, offered, opts.perf)
                    if kind == "fixed":
                        add_user_beyond_syscalls(cell, billing)
                    cell["repeat"] = repeat
                    cells.append(cell)
                    print(f"[{done}/{total_runs}] {spec} {kind}: {cell['rps']:.0f} req/s, "
                          f"server {cell['server_total_us']:.2f} us/req"
                          + (f"  ({'; '.join(cell['invalid'])})" if cell["invalid"] else ""),
                          flush=True)
    summary = summarize(add_user_above_floor(cells))
    print()
    print_table(summary, baseline)
    print_floor_note(summary, baseline)
    for spec, why in skipped.items():
        print(f"  skipped {spec}: {why}")
    if opts.json:
        doc = {"schema_version": 1, "servers": runnable, "skipped": skipped,
               "server_cpu": server_cpu, "client_cpu": client_cpu, "placement": placement,
               "offered_rate": offered, "calibration": calibration, "syscall_billing": billing,
               "cpu_accounting": accounting, "options": vars(opts),
               "cells": cells, "summary": summary}
        Path(opts.json).write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"compare.py: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("compare.py: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
