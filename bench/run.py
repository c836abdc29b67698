#!/usr/bin/python3
"""run.py: runs a scenario and writes one run folder (described in results/README.md).

A scenario (bench/scenarios/NAME.json) names servers, the points to measure and a matrix of
parameters; run.py measures every cell with compare.py's rules (fixed-rate open loop for costs
and latency, pipelined saturation for throughput, closed loop flagged client-bound when it is,
interleaved repeats, validity per metric, windows aligned on loadgen's marks, steal and
listen-overflow gates) plus, where asked, memory per idle connection as a slope split into user
and kernel memory, and instructions per request under callgrind. It writes:

  results/runs/<timestamp>-<scenario>/
    manifest.json           machine, build, pinning, offered rate, schema_version
    harness/results.jsonl   one row per cell, repeat and point, flushed as it is measured
    harness/summary.json    medians and validity per server, cell and metric
  results/latest -> that folder (unless --no-latest; tests never repoint it)

Every process it starts is stopped before it exits, also on Ctrl-C, which leaves a consistent
folder (rows so far, manifest marked interrupted). A server that crashes mid-run or never gets
ready becomes invalid rows with the reason, and the run goes on.

Beyond one machine: --target HOST:PORT measures a server this runner did not
start (`make serve MODEL=x BIND=0.0.0.0` on another machine, or the compose `server` service):
its CPU time, context switches, RSS and system calls come from the server's own /stats
(rusage, statm and its counted syscalls) instead of /proc, and every row says where each figure
came from ("sources"). A scenario with "mode": "netns" (bench/scenarios/netns.json) re-runs this
script inside bench/netns/with_netns.sh: two network namespaces joined by a veth pair, the
server in one, loadgen and this runner in the other, measured the same way as a target.

Usage: bench/run.py [--scenario quick] [--results-dir results] [--quick-repeats N] [--dry-run]
       bench/run.py --target HOST:PORT [--label NAME] [--scenario quick] [--client-cpu N]
       bench/run.py --scenario netns          (root and iproute2's `ip`)
       bench/run.py --list
"""

import argparse
import copy
import datetime
import ipaddress
import itertools
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
from compare import HarnessError, Server  # noqa: E402

ROOT = compare.ROOT
SCHEMA_VERSION = 1
SCENARIOS = ROOT / "bench" / "scenarios"
MEMINFO_KEYS = ("Slab", "KernelStack", "PageTables")

# ---------------------------------------------------------------------------------------------
# Scenarios


def load_scenario(name):
    path = SCENARIOS / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.json")))
        raise HarnessError(f"unknown scenario '{name}' (known: {known})")
    sc = json.loads(path.read_text())
    sc.setdefault("name", name)
    sc.setdefault("points", ["fixed_rate", "saturation", "closed_loop"])
    sc.setdefault("repeats", 3)
    sc.setdefault("warmup_s", 1)
    sc.setdefault("duration_s", 3)
    sc.setdefault("connections", 64)
    sc.setdefault("pipeline", 16)
    sc.setdefault("path", "/ping")
    sc.setdefault("rate_fraction", 0.5)
    sc.setdefault("matrix", {})
    sc.setdefault("loadgen_args", [])
    sc.setdefault("server_args", [])
    sc.setdefault("arg_map", {})
    sc.setdefault("offered_rate", None)  # a fixed offered rate instead of calibrating one
    # "netns": server and client in two network namespaces (any scenario: --set mode='"netns"')
    sc.setdefault("mode", "local")
    return sc


def cells(sc):
    """Every combination of the matrix: [(params, server_args, loadgen_args, path)]."""
    names = list(sc["matrix"])
    combos = itertools.product(*(sc["matrix"][n] for n in names)) if names else [()]
    out = []
    for values in combos:
        params = dict(zip(names, values))
        fmt = lambda text: text.format(**params)  # noqa: E731
        server_args = [fmt(a) for a in sc["server_args"]]
        loadgen_args = [fmt(a) for a in sc["loadgen_args"]]
        for name, value in params.items():
            mapped = sc["arg_map"].get(name, {}).get(str(value))
            if mapped:
                loadgen_args += mapped.get("loadgen", [])
                server_args += mapped.get("server", [])
        out.append((params, server_args, loadgen_args, fmt(sc["path"])))
    return out


# ---------------------------------------------------------------------------------------------
# The machine


def read_first(path, default="?"):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def command_output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def manifest(sc, server_cpu, client_cpu, placement):
    cpuinfo = read_first("/proc/cpuinfo", "")
    model = next((l.split(":", 1)[1].strip() for l in cpuinfo.splitlines()
                  if l.startswith("model name")), platform.processor())
    vulns = {p.name: read_first(p) for p in sorted(Path("/sys/devices/system/cpu/vulnerabilities").glob("*"))}
    total, steal = compare.read_steal()
    time.sleep(0.5)
    total2, steal2 = compare.read_steal()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": sc["name"],
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_model": model,
        "cpus_online": read_first("/sys/devices/system/cpu/online"),
        "topology": {str(c): k for c, k in compare.cpu_topology().items()},
        "server_cpu": server_cpu, "client_cpu": client_cpu, "placement": placement,
        "kernel": platform.release(),
        "mitigations": vulns,
        # Tick-sampled or exact: the user/system columns mean different things on different kernels.
        "cpu_accounting": compare.cpu_accounting(),
        "governor": read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "none"),
        "steal_at_start_pct": 100.0 * (steal2 - steal) / max(total2 - total, 1),
        "compiler": (command_output(["c++", "--version"]) or "?").splitlines()[0],
        "liburing": command_output(["dpkg-query", "-W", "-f=${Version}", "liburing-dev"]),
        "nginx": command_output(["/usr/sbin/nginx", "-v"]) or (subprocess.run(
            ["/usr/sbin/nginx", "-v"], capture_output=True, text=True).stderr.strip()
            if os.path.exists("/usr/sbin/nginx") else None),
        "git_revision": command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(command_output(["git", "-C", str(ROOT), "status", "--porcelain",
                                          "--untracked-files=no"])),
        "fd_limits": {"soft": soft, "hard": hard},
        "somaxconn": read_first("/proc/sys/net/core/somaxconn"),
        "python": sys.version.split()[0],
        "settings": {k: sc[k] for k in ("repeats", "warmup_s", "duration_s", "connections",
                                         "pipeline", "path", "rate_fraction")},
    }


# ---------------------------------------------------------------------------------------------
# Measurements that compare.py does not make: memory per idle connection, instructions.


def meminfo_kb():
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        if key in MEMINFO_KEYS:
            out[key] = int(value.split()[0])
    return out


def tcp_mem_kb():
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            pages = int(fields[fields.index("mem") + 1])
            return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    return 0


def memory_point(server, loadgen, client_cpu, idle_counts, path):
    """User and kernel memory per idle keep-alive connection: the slope between two counts."""
    samples = []
    for idle in idle_counts:
        snap = {}

        def on_mark(which):
            if which == "start":
                time.sleep(0.3)  # let the server settle on its new connections
                snap.update(rss_kb=compare.rss_kb(server.pid()), mem=meminfo_kb(), tcp=tcp_mem_kb())
                if server.iolab:
                    snap["pool_kb"] = server.snapshot()["stats"]["model_counters"][
                        "pool_reserved_bytes"] / 1024

        base = meminfo_kb()
        report = compare.run_loadgen(
            loadgen, f"http://127.0.0.1:{server.port}{path}", client_cpu,
            ["--connections", "1", "--rate", "10", "--duration", "1s", "--idle-connections",
             str(idle), "--connect-rate", "5000"], on_mark, timeout_s=120)
        if report["idle_connections"]["ready"] != idle:
            raise HarnessError(f"only {report['idle_connections']['ready']} of {idle} idle "
                               f"connections opened")
        snap["idle"] = idle
        snap["base"] = base
        samples.append(snap)
    a, b = samples[0], samples[-1]
    n = b["idle"] - a["idle"]
    kernel = {k: (b["mem"][k] - a["mem"][k]) / n for k in MEMINFO_KEYS}
    return {
        "idle_from": a["idle"], "idle_to": b["idle"],
        "user_kb": (b["rss_kb"] - a["rss_kb"]) / n,
        "pool_reserved_kb": ((b.get("pool_kb") or 0) - (a.get("pool_kb") or 0)) / n,
        # Loopback: both ends' sockets live in this kernel, so socket memory and slab include the
        # client's side of every connection (the client's threads are fixed; its sockets are not).
        "kernel_stack_kb": kernel["KernelStack"],
        "page_tables_kb": kernel["PageTables"],
        "slab_kb_both_ends": kernel["Slab"],
        "tcp_mem_kb_both_ends": (b["tcp"] - a["tcp"]) / n,
    }


def cache_point(spec, requests, path):
    model = spec.partition(":")[0]
    script = ROOT / "bench/perf/instructions_per_request.sh"
    result = subprocess.run([str(script), model, str(requests), path], capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        raise HarnessError(result.stderr.strip() or "callgrind run failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Servers seen over the network: a --target this runner did not start, and the netns mode.
#
# Neither one's /proc is the runner's to read (the target is on another machine; the netns
# server is, but the runner stands in for a client on another host), so both are measured
# through the server's own /stats: rusage for CPU time and context switches, statm for RSS, and
# the counters its syscall wrappers keep. Those are the same numbers compare.py already prefers
# for iolab servers, which is what makes a target's per-request figures comparable with a normal
# run's. What the client cannot see (the server's listen queue on another machine) is left empty
# and said so, never filled with the client's own counters.

NETNS_WRAPPER = ROOT / "bench" / "netns" / "with_netns.sh"
STATS_TIMEOUT_S = 5.0

LOCAL_SOURCES = {
    "cpu": "/stats rusage (RUSAGE_SELF: every thread, also exited ones)",
    "ctx_switches": "/stats rusage", "syscalls": "/stats counters", "allocs": "/stats counters",
    "rss": "/proc/PID/statm", "listen_overflows": "/proc/net/netstat", "steal": "/proc/stat",
    "client": "loadgen's report",
}
REFERENCE_SOURCES = dict(LOCAL_SOURCES, cpu="/proc/PID/stat (utime, stime)",
                         ctx_switches="/proc/PID/task/*/status", syscalls=None, allocs=None)
REMOTE_SOURCES = dict(LOCAL_SOURCES, rss="/stats rss_kb (the server's /proc/self/statm)",
                      listen_overflows=None, steal="/proc/stat of the client's machine")


def parse_target(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HarnessError(f"--target '{text}': expected HOST:PORT, e.g. 192.0.2.7:8080")
    return host, int(port)


def is_loopback(host):
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError) as e:
        raise HarnessError(f"cannot resolve '{host}': {e}")


def fetch_stats(host, port):
    with urllib.request.urlopen(f"http://{host}:{port}/stats", timeout=STATS_TIMEOUT_S) as r:
        return json.loads(r.read())


def stats_snapshot(server):
    """compare.Server.snapshot's keys, all from /stats (nothing from this machine's /proc)."""
    snap = {"t": time.monotonic()}
    stats = fetch_stats(server.host, server.port)
    snap["stats"] = stats
    snap["user_s"] = stats["cpu_user_us"] / 1e6
    snap["sys_s"] = stats["cpu_sys_us"] / 1e6
    snap["ctx"] = stats["voluntary_context_switches"] + stats["involuntary_context_switches"]
    snap["rss_kb"] = stats["rss_kb"]
    return snap


class RemoteServer:
    """--target HOST:PORT: a server someone else started. Entering checks that its /stats
    answers like an iolab server's; the runner never starts, stops or signals it."""

    iolab = True

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.spec = None
        self.stats_at_start = None
        self.overhead = {"syscalls": 0, "ctx": 0, "allocations": 0}
        self.sources = dict(REMOTE_SOURCES)
        self.where = f"{host}:{port}"

    def __enter__(self):
        try:
            stats = fetch_stats(self.host, self.port)
        except (OSError, urllib.error.URLError) as e:
            raise HarnessError(f"target {self.where}: /stats did not answer ({e}); is the server "
                               f"running and bound to an address this machine reaches?")
        except json.JSONDecodeError:
            raise HarnessError(f"target {self.where}: /stats is not JSON; --target measures iolab "
                               f"servers (make serve MODEL=x BIND=0.0.0.0), whose /stats carries "
                               f"their CPU time and system calls")
        missing = [k for k in ("model", "cpu_user_us", "cpu_sys_us", "syscalls", "rss_kb")
                   if k not in stats]
        if missing:
            raise HarnessError(f"target {self.where}: /stats lacks {', '.join(missing)}")
        self.spec = stats["model"]
        self.stats_at_start = stats
        return self

    def __exit__(self, *exc):
        pass

    snapshot = stats_snapshot

    def alive(self):
        try:
            fetch_stats(self.host, self.port)
            return True
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            return False

    def pid(self):
        return None  # a pid on another machine means nothing here

    def listen_overflows(self):
        return None  # the server's kernel counts them, out of this client's sight

    def exit_note(self):
        return "the target stopped answering /stats"


class NetnsServer(Server):
    """An iolab server this runner starts in the server namespace of with_netns.sh, bound to the
    veth address; measured over the veth like a target, from the client namespace."""

    def __init__(self, spec, cpu, bin_dir, netns, addr):
        super().__init__(spec, cpu, bin_dir)
        self.netns, self.host = netns, addr
        self.sources = dict(REMOTE_SOURCES, listen_overflows="/proc/PID/net/netstat (the server's "
                            "namespace)", steal="/proc/stat (one machine for both namespaces)")
        self.where = None

    def command(self):
        if not self.iolab:
            raise HarnessError(f"{self.name}: the netns mode runs iolab models only (the reference "
                               f"configurations listen on 127.0.0.1)")
        # `ip netns exec` enters the namespace and execs the server, so the pid stays the server's.
        return ["ip", "netns", "exec", self.netns, *super().command(), "--bind", self.host]

    def __enter__(self):
        super().__enter__()
        self.where = f"{self.host}:{self.port} (netns {self.netns})"
        return self

    snapshot = stats_snapshot

    def listen_overflows(self):
        # /proc/PID/net/ shows the network namespace of PID, not the reader's.
        try:
            lines = Path(f"/proc/{self.pid()}/net/netstat").read_text().splitlines()
        except OSError:
            return None
        for names, values in zip(lines[::2], lines[1::2]):
            if names.startswith("TcpExt:"):
                return int(dict(zip(names.split()[1:], values.split()[1:])).get("ListenOverflows", 0))
        return None

    def exit_note(self):
        return f"exit {self.proc.returncode}"


def measure_remote(server, loadgen, client_cpu, kind, opts, offered_rate=None, use_perf=False,
                   extra_args=(), path=None):
    """compare.measure for a server reached at server.host: the same loads, marks and validity
    rules, with the server's figures from /stats and each figure's source in the cell."""
    url = f"http://{server.host}:{server.port}{path or opts.path}"
    args = ["--connections", str(opts.connections), "--duration", f"{opts.duration}s",
            "--warmup", f"{opts.warmup}s", *extra_args]
    if not is_loopback(server.host):
        args.append("--allow-remote")  # loadgen refuses other addresses unless told
    if kind == "fixed":
        args += ["--rate", f"{offered_rate:.0f}"]
    elif kind == "saturation":
        args += ["--pipeline", str(opts.pipeline)]
    marks, perf = {}, {}

    def on_mark(which):
        marks[which] = server.snapshot()
        marks[which + "_steal"] = compare.read_steal()
        marks[which + "_busy"] = compare.read_busy_s()
        marks[which + "_overflows"] = server.listen_overflows()
        if use_perf and server.pid() and which == "start":
            perf["proc"] = compare.perf_syscalls_start(server.pid())
        if use_perf and which == "end":
            perf["count"] = compare.perf_syscalls_stop(perf.get("proc"))

    try:
        report = compare.run_loadgen(loadgen, url, client_cpu, args, on_mark,
                                     timeout_s=opts.duration + opts.warmup + 60)
    except (HarnessError, OSError, urllib.error.URLError):
        if server.alive():
            raise
        report = None
    if report is None or not server.alive():
        raise HarnessError(f"{server.spec}: the server died during the run ({server.exit_note()})")
    if "start" not in marks or "end" not in marks:
        raise HarnessError("loadgen printed no window marks")
    a, b = marks["start"], marks["end"]
    requests = max(report["requests"], 1)
    total, steal = (y - x for x, y in zip(marks["start_steal"], marks["end_steal"]))
    user_s, sys_s = b["user_s"] - a["user_s"], b["sys_s"] - a["sys_s"]
    overflows = (None if marks["start_overflows"] is None or marks["end_overflows"] is None
                 else marks["end_overflows"] - marks["start_overflows"])
    calls = sum(b["stats"]["syscalls"].values()) - sum(a["stats"]["syscalls"].values())
    allocs = b["stats"]["allocations"] - a["stats"]["allocations"]
    client_s = report["client_cpu_s"]["user"] + report["client_cpu_s"]["sys"]
    cell = {
        "server": server.spec, "kind": kind, "requests": report["requests"], "rps": report["rps"],
        "errors": report["errors"]["total"],
        "offered_rate": offered_rate if kind == "fixed" else None,
        "achieved_rate": report.get("achieved_rate"),
        "server_user_us": user_s * 1e6 / requests, "server_sys_us": sys_s * 1e6 / requests,
        "server_cpu_util": (user_s + sys_s) / max(b["t"] - a["t"], 1e-9),
        "client_user_us": report["client_cpu_s"]["user"] * 1e6 / requests,
        "client_sys_us": report["client_cpu_s"]["sys"] * 1e6 / requests,
        "ctx_per_request": (b["ctx"] - a["ctx"] - server.overhead["ctx"]) / requests,
        "p50_us": report["latency_us"]["p50"], "p99_us": report["latency_us"]["p99"],
        "latency_us": {k: report["latency_us"][k] for k in ("p50", "p90", "p99", "p999", "max")},
        "errors_by_kind": {k: v for k, v in report["errors"].items() if k != "total"},
        "client_cpu_util": client_s / max(report["duration_s"], 1e-9),
        "wall_s": b["t"] - a["t"], "steal": steal / total if total else 0.0,
        "listen_overflows": overflows, "rss_kb": b["rss_kb"],
        "syscalls_per_request": (calls - server.overhead["syscalls"]) / requests,
        "allocs_per_request": (allocs - server.overhead["allocations"]) / requests,
        "sources": server.sources, "target": server.where,
    }
    cell["server_total_us"] = cell["server_user_us"] + cell["server_sys_us"]
    # Other processes' CPU on this machine: only meaningful when the server runs here too.
    cell["background_cpus"] = (compare.background_cpus(marks, user_s + sys_s, client_s, b["t"] - a["t"])
                               if server.pid() else None)
    if perf.get("count") is not None:
        cell["perf_syscalls_per_request"] = perf["count"] / requests
    cell["invalid"] = compare.cell_problems(dict(cell, listen_overflows=overflows or 0), server)
    return cell


def measure_any(server, *args, **kwargs):
    if isinstance(server, (RemoteServer, NetnsServer)):
        return measure_remote(server, *args, **kwargs)
    return compare.measure(server, *args, **kwargs)


def netns_env():
    """The namespaces with_netns.sh made for this run, or None outside one."""
    names = ("IOLAB_NETNS_SERVER", "IOLAB_NETNS_CLIENT", "IOLAB_NETNS_SERVER_ADDR",
             "IOLAB_NETNS_CLIENT_ADDR", "IOLAB_NETNS_NETEM")
    if not all(os.environ.get(n) for n in names):
        return None
    return {n[len("IOLAB_NETNS_"):].lower(): os.environ[n] for n in names}


# ---------------------------------------------------------------------------------------------
# Connections needed to reach the peak, per model and round trip (a closed-loop sweep).

PEAK_FRACTION = 0.9


def connections_to_peak(rows):
    """For each server and each setting of the other parameters, the fewest connections whose
    median throughput reaches PEAK_FRACTION of the sweep's best. With a round trip of T per
    request, one connection carries at most 1/T requests/s, so the count needed grows with T
    until the server's own cost caps the rate: the chart of this against T is the lesson."""
    groups = {}
    for r in rows:
        if r["point"] != "closed_loop" or "connections" not in r["params"]:
            continue
        rest = {k: v for k, v in r["params"].items() if k != "connections"}
        key = (r["server"], json.dumps(rest, sort_keys=True))
        groups.setdefault(key, {}).setdefault(int(r["params"]["connections"]), []).append(r)
    out = []
    # By server, then by the other parameters' values (numbers as numbers: 5 before 20).
    for (server, rest_text), by_conns in sorted(
            groups.items(), key=lambda kv: (kv[0][0], sorted(json.loads(kv[0][1]).items()))):
        rest = json.loads(rest_text)
        reasons, points, noise, runs = [], [], [], 0
        for conns, group in sorted(by_conns.items()):
            measured = [r for r in group if r.get("rps") is not None]
            runs += len(measured)
            # A sweep is client-bound below its peak by design; what else made a run invalid
            # (steal, other processes' CPU, listen overflows) invalidates the curve.
            noise += ["; ".join(part for part in (r["invalid_reason"] or "").split("; ")
                                if part and not part.startswith("client-bound")
                                and not part.endswith(" errors")) for r in measured]
            if len(measured) < len(group):
                reasons.append(f"{len(group) - len(measured)} failed runs at {conns} connections")
            errors = sum(sum((r.get("errors") or {}).values()) for r in measured)
            if errors:
                reasons.append(f"{errors} errors at {conns} connections")
            if measured:
                points.append({"connections": conns,
                               "rps": statistics.median(r["rps"] for r in measured),
                               "server_cpu_util": statistics.median(r["server_cpu_util"] for r in measured),
                               "p50_us": statistics.median(r["latency_us"]["p50"] for r in measured)})
        row = {"server": server, "params": rest, "think_ms": rest.get("think_ms"),
               "threshold": PEAK_FRACTION, "points": points}
        if len(points) < 2:
            row.update(valid=False, invalid_reason="fewer than two connection counts measured",
                       peak_rps=None, connections_to_peak=None)
            out.append(row)
            continue
        reasons += compare.merge_reasons([n for n in noise if n], runs)
        best = max(points, key=lambda p: p["rps"])
        reach = next(p for p in points if p["rps"] >= PEAK_FRACTION * best["rps"])
        if reach is points[-1] and points[-1]["rps"] > 1.1 * points[-2]["rps"]:
            reasons.append(f"still rising at {reach['connections']} connections: the peak is "
                           f"beyond the sweep")
        row.update(peak_rps=best["rps"], peak_connections=best["connections"],
                   connections_to_peak=reach["connections"],
                   peak_bound="server" if best["server_cpu_util"] >= compare.SATURATED_CPU else "client",
                   peak_server_cpu_util=best["server_cpu_util"],
                   # What one connection really waited per request at the fewest connections
                   # (think time + response time + timer wake-up): the round trip it saw.
                   cycle_ms_fewest_connections=points[0]["connections"] * 1000 / points[0]["rps"]
                   if points[0]["rps"] else None,
                   latency_p50_us_fewest_connections=points[0]["p50_us"],
                   valid=not reasons, invalid_reason="; ".join(reasons) or None)
        out.append(row)
    return out


def print_peaks(peaks):
    print("\nconnections to reach the peak (closed loop, >= "
          f"{PEAK_FRACTION:.0%} of the best of the sweep):")
    for p in peaks:
        params = ",".join(f"{k}={v}" for k, v in p["params"].items()) or "-"
        if p["peak_rps"] is None:
            print(f"  {p['server']:10} {params:14} ! {p['invalid_reason']}")
            continue
        print(f"  {p['server']:10} {params:14} {p['connections_to_peak']:>5} connections "
              f"(peak {p['peak_rps']:.0f} req/s at {p['peak_connections']}, {p['peak_bound']}-bound)"
              + ("" if p["valid"] else f" ! {p['invalid_reason']}"))


# ---------------------------------------------------------------------------------------------
# Rows


POINT_KIND = {"fixed_rate": "fixed", "saturation": "saturation", "closed_loop": "closed"}


def row_from_cell(sc, spec, params, point, repeat, cell):
    def us(key):
        return cell.get(key)

    invalid = cell["invalid"]
    return {
        "server": spec, "scenario": sc["name"], "params": params, "point": point,
        "repeat": repeat, "offered_rate": cell.get("offered_rate"), "rps": cell["rps"],
        "requests": cell["requests"],
        "latency_us": cell["latency_us"],
        "cpu_us_per_req": {"server": {"user": us("server_user_us"), "sys": us("server_sys_us")},
                           "client": {"user": us("client_user_us"), "sys": us("client_sys_us")}},
        "syscalls_per_req": cell.get("syscalls_per_request"),
        "perf_syscalls_per_req": cell.get("perf_syscalls_per_request"),
        "ctx_switches_per_req": cell["ctx_per_request"],
        "rss_kb": cell.get("rss_kb"),
        "mem_per_conn": None,
        "allocs_per_req": cell.get("allocs_per_request"),
        "errors": cell["errors_by_kind"],
        "client_cpu_util": cell["client_cpu_util"], "server_cpu_util": cell["server_cpu_util"],
        "steal_pct": 100.0 * cell["steal"], "listen_overflows": cell["listen_overflows"],
        "background_cpus": cell.get("background_cpus"),
        "valid": not invalid, "invalid_reason": "; ".join(invalid) or None,
        # Where each server figure came from, and where the server was (None: started here).
        "sources": cell.get("sources") or (REFERENCE_SOURCES if spec.partition(":")[0] in
                                           compare.REFERENCES else LOCAL_SOURCES),
        "target": cell.get("target"),
    }


def base_row(sc, spec, params, point, repeat, reason=None):
    """A row without load figures: a failure (reason given) or a memory/cache point."""
    return {"server": spec, "scenario": sc["name"], "params": params, "point": point,
            "repeat": repeat, "valid": reason is None, "invalid_reason": reason}


ROW_KEYS = ("server", "scenario", "params", "point", "repeat", "valid", "invalid_reason")
MEASURED_KEYS = ("offered_rate", "rps", "latency_us", "cpu_us_per_req", "syscalls_per_req",
                 "ctx_switches_per_req", "rss_kb", "mem_per_conn", "allocs_per_req", "errors",
                 "client_cpu_util", "server_cpu_util", "steal_pct")


def check_row(row):
    """The row schema (results/README.md); raises ValueError on a bad row."""
    for key in ROW_KEYS:
        if key not in row:
            raise ValueError(f"row lacks '{key}': {row}")
    if row["point"] not in ("fixed_rate", "saturation", "closed_loop", "memory", "cache"):
        raise ValueError(f"unknown point {row['point']}")
    if row["point"] in POINT_KIND and "rps" in row:
        for key in MEASURED_KEYS:
            if key not in row:
                raise ValueError(f"measured row lacks '{key}'")
        for key in ("p50", "p90", "p99", "p999", "max"):
            if key not in row["latency_us"]:
                raise ValueError(f"latency_us lacks {key}")
    if row["point"] == "memory" and row["valid"]:
        for key in ("user_kb", "kernel_stack_kb", "slab_kb_both_ends", "tcp_mem_kb_both_ends"):
            if key not in row["mem_per_conn"]:
                raise ValueError(f"mem_per_conn lacks {key}")
    if row["valid"] != (row["invalid_reason"] is None):
        raise ValueError("valid and invalid_reason disagree")
    return row


# ---------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, sc, results_dir, point_latest=True, label=None):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.dir = Path(results_dir) / "runs" / f"{stamp}-{label or sc['name']}"
        (self.dir / "harness").mkdir(parents=True, exist_ok=False)
        self.rows_file = (self.dir / "harness" / "results.jsonl").open("a")
        self.results_dir = Path(results_dir)
        self.point_latest = point_latest
        self.rows = []

    def add(self, row):
        check_row(row)
        self.rows.append(row)
        self.rows_file.write(json.dumps(row, sort_keys=True) + "\n")
        self.rows_file.flush()

    def write_manifest(self, doc):
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        tmp.replace(self.dir / "manifest.json")

    def close(self):
        self.rows_file.close()
        if self.point_latest:
            latest = self.results_dir / "latest"
            tmp = self.results_dir / ".latest.tmp"
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(self.dir.relative_to(self.results_dir))
            tmp.replace(latest)


def summarize(rows):
    """Median and validity per (server, params, point, metric), like compare.summarize."""
    groups = {}
    for r in rows:
        groups.setdefault((r["server"], json.dumps(r["params"], sort_keys=True), r["point"]), []).append(r)
    metrics = {
        "rps": lambda r: r.get("rps"),
        "server_cpu_us": lambda r: (r["cpu_us_per_req"]["server"]["user"] + r["cpu_us_per_req"]["server"]["sys"])
        if r.get("cpu_us_per_req") else None,
        "server_user_us": lambda r: r["cpu_us_per_req"]["server"]["user"] if r.get("cpu_us_per_req") else None,
        "client_cpu_us": lambda r: (r["cpu_us_per_req"]["client"]["user"] + r["cpu_us_per_req"]["client"]["sys"])
        if r.get("cpu_us_per_req") else None,
        "syscalls_per_req": lambda r: r.get("syscalls_per_req"),
        "ctx_switches_per_req": lambda r: r.get("ctx_switches_per_req"),
        "allocs_per_req": lambda r: r.get("allocs_per_req"),
        "p50_us": lambda r: r["latency_us"]["p50"] if r.get("latency_us") else None,
        "p99_us": lambda r: r["latency_us"]["p99"] if r.get("latency_us") else None,
        "user_kb_per_conn": lambda r: r["mem_per_conn"]["user_kb"] if r.get("mem_per_conn") else None,
        "kernel_stack_kb_per_conn": lambda r: r["mem_per_conn"]["kernel_stack_kb"] if r.get("mem_per_conn") else None,
        "instructions_per_req": lambda r: r.get("instructions_per_req"),
    }
    out = []
    for (server, params, point), group in groups.items():
        reasons = compare.merge_reasons([r["invalid_reason"] for r in group if r["invalid_reason"]],
                                        len(group))
        for name, get in metrics.items():
            values = [v for v in (get(r) for r in group if r.get("rps") is not None or
                                  r["point"] in ("memory", "cache")) if v is not None]
            if not values:
                continue
            median = statistics.median(values)
            spread = (max(values) - min(values)) / median if median else 0.0
            why = list(reasons)
            if len(values) >= 2 and spread > compare.MAX_SPREAD and name not in ("p99_us", "p50_us"):
                why.append(f"spread {spread:.0%}")
            out.append({"server": server, "params": json.loads(params), "point": point,
                        "metric": name, "median": median, "spread": spread, "n": len(values),
                        "valid": not why, "why_invalid": why})
    return out


def print_summary(summary, baseline):
    def get(server, params, point, metric):
        for s in summary:
            if s["server"] == server and s["params"] == params and s["point"] == point and s["metric"] == metric:
                return s
        return None

    columns = [("sat req/s", "saturation", "rps", 0), ("closed req/s", "closed_loop", "rps", 0),
               ("CPU us/req", "fixed_rate", "server_cpu_us", 2), ("user us/req", "fixed_rate", "server_user_us", 2),
               ("client us/req", "fixed_rate", "client_cpu_us", 2),
               ("syscalls/req", "fixed_rate", "syscalls_per_req", 2),
               ("ctx/req", "fixed_rate", "ctx_switches_per_req", 3), ("allocs/req", "fixed_rate", "allocs_per_req", 2),
               ("p50 us", "fixed_rate", "p50_us", 0), ("p99 us", "fixed_rate", "p99_us", 0),
               ("user KB/conn", "memory", "user_kb_per_conn", 2), ("kstack KB/conn", "memory", "kernel_stack_kb_per_conn", 2),
               ("instr/req", "cache", "instructions_per_req", 0)]
    keys = list(dict.fromkeys((s["server"], json.dumps(s["params"], sort_keys=True)) for s in summary))
    if not any(s["point"] == "fixed_rate" for s in summary):
        # No fixed rate (the pipelining scenario): the closed loop's per-request counts instead.
        columns[2:2] = [("syscalls/req", "closed_loop", "syscalls_per_req", 2),
                        ("ctx/req", "closed_loop", "ctx_switches_per_req", 3)]
    present = [c for c in columns if any(s["point"] == c[1] and s["metric"] == c[2] for s in summary)]
    table = [["server", "params"] + [c[0] for c in present]]
    for server, params_text in keys:
        params = json.loads(params_text)
        line = [server, ",".join(f"{k}={v}" for k, v in params.items()) or "-"]
        for _, point, metric, digits in present:
            s = get(server, params, point, metric)
            if s is None:
                line.append("-")
                continue
            text = compare.fixed(s["median"], digits)
            base = get(baseline, params, point, metric) if baseline and server != baseline else None
            if base and base["median"] and metric in ("rps", "server_cpu_us"):
                text += f" ({s['median'] / base['median']:.2f}x)"
            line.append(text + ("" if s["valid"] else " !"))
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"(medians over repeats; ratios against {baseline}; '!' = not valid, reasons below)")
    reasons = {}
    for s in summary:
        if not s["valid"]:
            key = (s["server"], ",".join(f"{k}={v}" for k, v in s["params"].items()), s["point"])
            reasons.setdefault(key, {})
            for w in s["why_invalid"]:
                reasons[key].setdefault(w, []).append(s["metric"])
    for (server, params, point), whys in reasons.items():
        run_reasons = [w for w, metrics in whys.items() if not w.startswith("spread")]
        spreads = [f"{m} {w.split()[1]}" for w, metrics in whys.items() if w.startswith("spread")
                   for m in metrics]
        text = "; ".join(run_reasons + ([f"repeats disagree: {', '.join(spreads)}"] if spreads else []))
        print(f"  ! {server} {params + ' ' if params else ''}{point}: {text}")


def print_failures(rows, summary):
    """Cells that produced no figure in any repeat (a server that crashed or never got ready):
    the summary table has no line for them, so they are listed here with their reasons."""
    measured = {(s["server"], json.dumps(s["params"], sort_keys=True), s["point"]) for s in summary}
    groups = {}
    for r in rows:
        groups.setdefault((r["server"], json.dumps(r["params"], sort_keys=True), r["point"]), []).append(r)
    failed = [(key, group) for key, group in groups.items() if key not in measured]
    for (server, params_text, point), group in failed:
        params = ",".join(f"{k}={v}" for k, v in json.loads(params_text).items())
        why = "; ".join(compare.merge_reasons(
            [r["invalid_reason"] for r in group if r["invalid_reason"]], len(group))) or "no figures"
        print(f"  x {server} {params + ' ' if params else ''}{point}: FAILED, no figures: {why}")
    return len(failed)


def placed(placement, server_cpu, client_cpu):
    """CPUs for a cell of the affinity scenario: (server, client); None means unpinned."""
    if placement in (None, "other_cpu"):
        return server_cpu, client_cpu
    if placement == "same_cpu":
        return server_cpu, server_cpu
    if placement == "unpinned":
        return None, None
    raise HarnessError(f"unknown placement '{placement}' (other_cpu, same_cpu, unpinned)")


# Set once run_scenario has said it was interrupted; a Ctrl-C or SIGTERM outside its measuring
# loop (setting up the run folder, say) is reported by __main__ instead.
INTERRUPT_REPORTED = []


def run_scenario(sc, opts):
    loadgen = Path(opts.bin_dir) / "loadgen"
    if not loadgen.exists():
        raise HarnessError(f"{loadgen} not built (make build)")
    target = parse_target(opts.target) if opts.target else None
    ns = netns_env() if sc.get("mode") == "netns" else None
    if sc.get("mode") == "netns" and ns is None:
        raise HarnessError("the netns mode runs inside bench/netns/with_netns.sh (run.py starts "
                           "it by itself)")
    if target:
        # The server runs on its own CPUs, elsewhere; only the client is placed here.
        client_cpu = opts.client_cpu if opts.client_cpu is not None else compare.choose_cpus()[1]
        server_cpu, placement = None, f"target {opts.target}: its CPUs are its own; client here"
        with RemoteServer(*target) as probe:
            sc["servers"] = [probe.spec]
            target_stats = probe.stats_at_start
        label = opts.label or f"target-{sc['name']}"
    else:
        server_cpu, client_cpu, placement = compare.choose_cpus(opts.server_cpu, opts.client_cpu)
        label = opts.label
    remote = bool(target or ns)
    repeats = opts.repeats or sc["repeats"]
    copts = compare.parse_args(["--duration", str(sc["duration_s"]), "--warmup", str(sc["warmup_s"]),
                                "--connections", str(sc["connections"]), "--pipeline",
                                str(sc["pipeline"]), "--path", sc["path"], "--bin-dir", opts.bin_dir])
    run = Run(sc, opts.results_dir, point_latest=not opts.no_latest, label=label)
    doc = manifest(sc, server_cpu, client_cpu, placement)
    doc["repeats"] = repeats
    doc["interrupted"] = False
    doc["skipped"] = {}
    doc["mode"] = "target" if target else "netns" if ns else "local"
    if target:
        doc["target"] = {"address": opts.target, "label": opts.label, "model": sc["servers"][0],
                         "loopback": is_loopback(target[0]),
                         "fd_limits": {"soft": target_stats.get("fd_soft_limit"),
                                       "hard": target_stats.get("fd_hard_limit")},
                         "figures_from": "the server's /stats (rusage, statm, syscall counters)"}
    if ns:
        doc["netns"] = dict(ns, delay="loadgen --think-ms" + ("" if ns["netem"] == "yes" else
                                                              " (no netem in this kernel)"))
    if remote:
        for point in [p for p in sc["points"] if p in ("memory", "cache")]:
            doc["skipped"][point] = ("needs the server's /proc and loopback sockets on this "
                                     "machine; not measured for a server reached over a network")
        sc = dict(sc, points=[p for p in sc["points"] if p not in ("memory", "cache")])
        if sc["server_args"] or sc["arg_map"]:
            doc["skipped"]["server_args"] = "server arguments of the scenario are not applied"
            sc = dict(sc, server_args=[], arg_map={})

    def open_server(spec, cpu):
        if target:
            return RemoteServer(*target)
        if ns:
            return NetnsServer(spec, cpu, opts.bin_dir, ns["server"], ns["server_addr"])
        return Server(spec, cpu, opts.bin_dir)

    run.write_manifest(doc)
    print(f"run: scenario {sc['name']} -> {run.dir}")
    print(f"run: server CPU {server_cpu}, client CPU {client_cpu} ({placement})", flush=True)

    try:
        # Which servers exist here; the rest are skipped with a note, never silently.
        servers = []
        for spec in sc["servers"]:
            try:
                with open_server(spec, server_cpu):
                    servers.append(spec)
            except HarnessError as e:
                doc["skipped"][spec] = str(e)
                print(f"run: skipping {spec}: {e}", flush=True)
        if not servers:
            raise HarnessError("no server of the scenario could start")
        baseline = "nginx" if "nginx" in servers else servers[0]
        doc["baseline"] = baseline

        points = sc["points"]
        if "fixed_rate" in points and sc.get("offered_rate"):
            doc["offered_rate"] = float(sc["offered_rate"])
            doc["calibration"] = {"given": True}
            print(f"run: offered rate {doc['offered_rate']:.0f} req/s (set by the scenario)")
        elif "fixed_rate" in points:
            with open_server(baseline, server_cpu) as s:
                s.overhead = compare.stats_overhead(s)
                cal = measure_any(s, loadgen, client_cpu, "closed", copts)
            if not cal["rps"] > 0:  # a zero rate would fail every fixed-rate cell obscurely
                raise HarnessError(f"calibration on {baseline} failed: no request succeeded "
                                   f"({cal['errors']} errors: {cal['errors_by_kind']})")
            doc["offered_rate"] = cal["rps"] * sc["rate_fraction"]
            doc["calibration"] = {"server": baseline, "closed_loop_rps": cal["rps"],
                                  "fraction": sc["rate_fraction"], "valid": not cal["invalid"]}
            print(f"run: calibrated on {baseline}: {cal['rps']:.0f} req/s closed loop; offered rate "
                  f"{doc['offered_rate']:.0f} req/s", flush=True)
        run.write_manifest(doc)

        matrix = cells(sc)
        load_points = [p for p in points if p in POINT_KIND]
        total = repeats * len(servers) * len(matrix) * len(load_points)
        total += len(servers) * len(matrix) * sum(1 for p in points if p in ("memory", "cache"))
        done = 0
        started = time.monotonic()

        def progress(text):
            nonlocal done
            done += 1
            elapsed = time.monotonic() - started
            eta = elapsed / done * (total - done)
            print(f"[{done}/{total} {elapsed:.0f}s, ~{eta:.0f}s left] {text}", flush=True)

        for repeat in range(repeats):
            for spec in servers:
                for params, server_args, loadgen_args, path in matrix:
                    full_spec = spec + (":" + " ".join(server_args) if server_args and
                                        spec not in compare.REFERENCES else "")
                    cell_server_cpu, cell_client_cpu = placed(params.get("placement"), server_cpu, client_cpu)
                    cell_copts = copts
                    if "connections" in params:  # a matrix over connection counts (netns)
                        cell_copts = copy.copy(copts)
                        cell_copts.connections = int(params["connections"])
                    try:
                        with open_server(full_spec, cell_server_cpu) as s:
                            s.overhead = compare.stats_overhead(s)
                            for index, point in enumerate(load_points):
                                try:
                                    cell = measure_any(s, loadgen, cell_client_cpu, POINT_KIND[point], cell_copts,
                                                           doc.get("offered_rate"), opts.perf,
                                                           loadgen_args, path)
                                    row = row_from_cell(sc, spec, params, point, repeat, cell)
                                    run.add(row)
                                    progress(f"{spec} {params or ''} {point}: {cell['rps']:.0f} req/s"
                                             + ("" if row["valid"] else f" (invalid: {row['invalid_reason']})"))
                                except HarnessError as e:
                                    run.add(base_row(sc, spec, params, point, repeat, str(e)))
                                    progress(f"{spec} {params or ''} {point}: FAILED: {e}")
                                    if not s.alive():
                                        # The points after it get a row too: a dead server is
                                        # reported for every cell it did not serve, not left out.
                                        for later in load_points[index + 1:]:
                                            why = f"not measured: {spec} died during {point}"
                                            run.add(base_row(sc, spec, params, later, repeat, why))
                                            progress(f"{spec} {params or ''} {later}: FAILED: {why}")
                                        break
                            if repeat == 0 and "memory" in points:
                                try:
                                    mem = memory_point(s, loadgen, client_cpu, sc.get("idle", [1000, 3000]), path)
                                    row = base_row(sc, spec, params, "memory", 0)
                                    row["mem_per_conn"] = mem
                                    run.add(row)
                                    progress(f"{spec} memory: {mem['user_kb']:.2f} KB user, "
                                             f"{mem['kernel_stack_kb']:.2f} KB kernel stack per connection")
                                except HarnessError as e:
                                    run.add(base_row(sc, spec, params, "memory", 0, str(e)))
                                    progress(f"{spec} {params or ''} memory: FAILED: {e}")
                    except HarnessError as e:
                        for point in load_points:
                            run.add(base_row(sc, spec, params, point, repeat, str(e)))
                            progress(f"{spec} {params or ''} {point}: FAILED: {e}")
                    if repeat == 0 and "cache" in points and spec not in compare.REFERENCES:
                        try:
                            res = cache_point(spec, sc.get("cache_requests", 20000), path)
                            row = base_row(sc, spec, params, "cache", 0)
                            row.update(instructions_per_req=res["instructions_per_request"],
                                       d1_misses_per_req=res["d1_misses_per_request"],
                                       ll_misses_per_req=res["ll_misses_per_request"])
                            run.add(row)
                            progress(f"{spec} cache: {res['instructions_per_request']:.0f} instructions/request")
                        except (HarnessError, subprocess.TimeoutExpired) as e:
                            run.add(base_row(sc, spec, params, "cache", 0, str(e)))
                            progress(f"{spec} {params or ''} cache: FAILED: {e}")
        summary = summarize(run.rows)
        (run.dir / "harness" / "summary.json").write_text(json.dumps(summary, indent=1))
        doc["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        peaks = connections_to_peak(run.rows) if "connections" in sc["matrix"] else []
        if peaks:
            with (run.dir / "harness" / "connections_to_peak.jsonl").open("w") as f:
                for p in peaks:
                    f.write(json.dumps(p, sort_keys=True) + "\n")
        print()
        print_summary(summary, baseline)
        print_failures(run.rows, summary)
        if peaks:
            print_peaks(peaks)
        for spec, why in doc["skipped"].items():
            print(f"  skipped {spec}: {why}")
        return run
    except KeyboardInterrupt:
        doc["interrupted"] = True
        print("\nrun: interrupted; servers stopped, rows so far kept", file=sys.stderr, flush=True)
        INTERRUPT_REPORTED.append(True)
        raise
    finally:
        run.write_manifest(doc)
        run.close()
        print(f"run: results in {run.dir}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="quick")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--no-latest", action="store_true", help="do not repoint results/latest")
    p.add_argument("--label", help="run folder suffix instead of the scenario name")
    p.add_argument("--target", metavar="HOST:PORT",
                   help="measure a running iolab server (make serve BIND=0.0.0.0) instead of "
                        "starting the scenario's servers; figures from its /stats")
    p.add_argument("--resume", action="store_true",
                   help="do nothing if a finished run with this label exists (make bench-full)")
    p.add_argument("--repeats", type=int, help="override the scenario's repeats")
    p.add_argument("--server-cpu", type=int)
    p.add_argument("--client-cpu", type=int)
    p.add_argument("--perf", action="store_true", help="cross-check syscalls with perf tracepoints")
    p.add_argument("--bin-dir", default=str(ROOT / "build/bin"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a scenario field, e.g. --set duration_s=1 --set 'servers=[\"threads\"]'")
    opts = p.parse_args(argv)
    if opts.list:
        for f in sorted(SCENARIOS.glob("*.json")):
            print(f"{f.stem:12} {json.loads(f.read_text()).get('description', '')}")
        return 0
    if opts.target and opts.server_cpu is not None:
        p.error("--server-cpu: a --target runs on its own CPUs (--client-cpu places the client)")
    if not opts.target and (opts.server_cpu is None) != (opts.client_cpu is None):
        p.error("--server-cpu and --client-cpu go together")
    if opts.repeats is not None and not 1 <= opts.repeats <= 50:
        p.error("--repeats must be in 1..50")
    sc = load_scenario(opts.scenario)
    if opts.resume:
        label = opts.label or sc["name"]
        for folder in sorted((Path(opts.results_dir) / "runs").glob(f"*-{label}")):
            try:
                doc = json.loads((folder / "manifest.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if doc.get("finished") and not doc.get("interrupted"):
                print(f"run: {label} already done in {folder} (--resume)")
                return 0
    for item in opts.set:
        key, _, value = item.partition("=")
        if key not in sc:
            p.error(f"--set: the scenario has no field '{key}'")
        try:
            sc[key] = json.loads(value)
        except json.JSONDecodeError:
            p.error(f"--set {key}: value is not JSON: {value}")
    if sc["mode"] not in ("local", "netns"):
        p.error(f"mode '{sc['mode']}': local or netns")
    if sc.get("mode") == "netns" and opts.target:
        p.error("--target and a netns scenario exclude each other (netns starts its own servers)")
    if sc.get("mode") == "netns" and netns_env() is None:
        # Run again inside two fresh namespaces; the wrapper (same pid) removes them whatever
        # happens, and exits 77 with its reason when this machine cannot make them.
        args = list(sys.argv[1:] if argv is None else argv)
        os.execv(str(NETNS_WRAPPER), [str(NETNS_WRAPPER), "--", "/usr/bin/python3",
                                      str(Path(__file__).resolve()), *args])
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    run_scenario(sc, opts)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"run.py: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        if not INTERRUPT_REPORTED:
            print("\nrun: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
