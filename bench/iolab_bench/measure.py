"""One measured run of one kind against a started server (local, --target or netns), and the
points a load does not give: memory per idle connection and instructions per request.

Kinds: 'fixed' (open loop at the offered rate: CPU, system calls and context switches per
request, latency), 'saturation' (closed loop, pipelined: requests/s) and 'closed' (closed loop,
one request in flight per connection). Server counters are read at the moments loadgen marks the
start and end of its window; what one /stats snapshot costs is subtracted (Server.overhead).
"""

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from . import ROOT, HarnessError, machine, servers, validity
from .servers import AnyServer


@dataclass
class Load:
    """The load of every run of a command line or scenario (a cell may change connections)."""
    duration: float = 3.0
    warmup: float = 1.0
    connections: int = 64
    pipeline: int = 16
    path: str = "/ping"


def run_loadgen(loadgen: str | Path, url: str, client_cpu: int | None, args: Sequence[str],
                on_mark: Callable[[str], None], timeout_s: float) -> Any:
    """loadgen's JSON report; on_mark("start"/"end") runs as it marks its measured window."""
    pin = ["--pin", str(client_cpu)] if client_cpu is not None else []
    cmd = [str(loadgen), "--url", url, *pin, "--json", "-", *args]
    stderr_lines = []
    # As a context manager Popen closes the pipes and waits for loadgen, also on an exception.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            assert proc.stderr is not None
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
        raise HarnessError(f"loadgen failed (exit {proc.returncode}): "
                           f"{''.join(stderr_lines).strip()}")
    return json.loads(out)


def perf_syscalls_start(pid: int) -> "subprocess.Popen[str] | None":
    """perf counting syscall-entry tracepoints of pid, or None where perf is not permitted."""
    try:
        return subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p",
                                 str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def perf_syscalls_stop(proc: "subprocess.Popen[str] | None") -> int | None:
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


def measure(server: AnyServer, loadgen: str | Path, client_cpu: int | None, kind: str, load: Load,
            offered_rate: float | None = None, use_perf: bool = False,
            extra_args: Sequence[str] = (), path: str | None = None) -> dict[str, Any]:
    """One run of one kind ('fixed', 'saturation', 'closed') against a started server: a cell.

    The same for every server: a local one is read from /proc and /stats, a remote one (a
    --target, a netns server) from /stats alone, and then the cell also names each figure's
    source and where the server was. extra_args go to loadgen as they are (a scenario's cell
    parameters); path overrides load.path."""
    url = f"http://{server.host}:{server.port}{path or load.path}"
    args = ["--connections", str(load.connections), "--duration", f"{load.duration}s",
            "--warmup", f"{load.warmup}s", *extra_args]
    if server.sources is not None and not servers.is_loopback(server.host):
        args.append("--allow-remote")  # loadgen refuses other addresses unless told
    if kind == "fixed":
        args += ["--rate", f"{offered_rate:.0f}"]
    elif kind == "saturation":
        args += ["--pipeline", str(load.pipeline)]
    marks: dict[str, Any] = {}
    perf: dict[str, Any] = {}
    pid = server.pid()

    def on_mark(which: str) -> None:
        marks[which] = server.snapshot()
        marks[which + "_steal"] = machine.read_steal()
        marks[which + "_busy"] = machine.read_busy_s()
        marks[which + "_overflows"] = server.listen_overflows()
        if use_perf and pid and which == "start":
            perf["proc"] = perf_syscalls_start(pid)
        if use_perf and which == "end":
            perf["count"] = perf_syscalls_stop(perf.get("proc"))

    try:
        report = run_loadgen(loadgen, url, client_cpu, args, on_mark,
                             timeout_s=load.duration + load.warmup + 60)
    except (HarnessError, OSError):  # urllib's URLError is an OSError
        if server.alive():
            raise
        report = None
    if report is None or not server.alive():
        raise HarnessError(f"{server.spec}: the server died during the run ({server.exit_note()})")
    if "start" not in marks or "end" not in marks:
        raise HarnessError("loadgen printed no window marks")
    return cell_from(server, kind, offered_rate, report, marks, perf.get("count"))


def cell_from(server: AnyServer, kind: str, offered_rate: float | None, report: dict[str, Any],
              marks: dict[str, Any], perf_count: int | None) -> dict[str, Any]:
    """The cell of one run: loadgen's report and the counters at its window marks."""
    a, b = marks["start"], marks["end"]
    requests = max(report["requests"], 1)
    wall = b["t"] - a["t"]
    total, steal = (y - x for x, y in zip(marks["start_steal"], marks["end_steal"]))
    user_s, sys_s = b["user_s"] - a["user_s"], b["sys_s"] - a["sys_s"]
    client_s = report["client_cpu_s"]["user"] + report["client_cpu_s"]["sys"]
    overflows = (None if marks["start_overflows"] is None or marks["end_overflows"] is None
                 else marks["end_overflows"] - marks["start_overflows"])
    cell = {
        "server": server.spec, "kind": kind, "requests": report["requests"], "rps": report["rps"],
        "errors": report["errors"]["total"],
        "offered_rate": offered_rate if kind == "fixed" else None,
        "achieved_rate": report.get("achieved_rate"),
        "server_user_us": user_s * 1e6 / requests,
        "server_sys_us": sys_s * 1e6 / requests,
        "server_cpu_util": (user_s + sys_s) / max(wall, 1e-9),
        "client_user_us": report["client_cpu_s"]["user"] * 1e6 / requests,
        "client_sys_us": report["client_cpu_s"]["sys"] * 1e6 / requests,
        "ctx_per_request": (b["ctx"] - a["ctx"] - server.overhead["ctx"]) / requests,
        "p50_us": report["latency_us"]["p50"], "p99_us": report["latency_us"]["p99"],
        "latency_us": {k: report["latency_us"][k] for k in ("p50", "p90", "p99", "p999", "max")},
        "errors_by_kind": {k: v for k, v in report["errors"].items() if k != "total"},
        "client_cpu_util": client_s / max(report["duration_s"], 1e-9),
        "wall_s": wall,
        "steal": steal / total if total else 0.0,
        "listen_overflows": overflows,
    }
    cell["server_total_us"] = cell["server_user_us"] + cell["server_sys_us"]
    if a.get("cpu_clock_s") is not None and b.get("cpu_clock_s") is not None:
        # The server's own CPU clock (its /stats): a check on the total above, which the kernel
        # scales to the same run time.
        cell["server_cpu_clock_us"] = (b["cpu_clock_s"] - a["cpu_clock_s"]) * 1e6 / requests
    # Other processes' CPU on this machine: only meaningful when the server runs here too.
    cell["background_cpus"] = (machine.background_cpus(marks, user_s + sys_s, client_s, wall)
                               if server.pid() else None)
    cell["rss_kb"] = b["rss_kb"]
    if server.iolab:
        calls = sum(b["stats"]["syscalls"].values()) - sum(a["stats"]["syscalls"].values())
        cell["syscalls_per_request"] = (calls - server.overhead["syscalls"]) / requests
        allocs = b["stats"]["allocations"] - a["stats"]["allocations"]
        cell["allocs_per_request"] = (allocs - server.overhead["allocations"]) / requests
    if perf_count is not None:
        cell["perf_syscalls_per_request"] = perf_count / requests
    if server.sources is not None:
        cell.update(sources=server.sources, target=server.where)
    cell["invalid"] = validity.cell_problems(dict(cell, listen_overflows=overflows or 0))
    return cell


def add_user_beyond_syscalls(cell: dict[str, Any], billing: dict[str, float] | str | None
                             ) -> dict[str, Any]:
    """Adds server_user_net_us: user CPU per request less the user time billed to the system calls
    themselves. Only from perf's count, the one every server has (nginx has no /stats), so every
    server in the column is corrected the same way."""
    calls = cell.get("perf_syscalls_per_request")
    if isinstance(billing, dict) and calls is not None:
        cell["server_user_net_us"] = cell["server_user_us"] - billing["user_us"] * calls
    return cell


def add_user_above_floor(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def memory_point(server: servers.Server, loadgen: str | Path, client_cpu: int | None,
                 idle_counts: Sequence[int], path: str) -> dict[str, float]:
    """User and kernel memory per idle keep-alive connection: the slope between two counts."""
    samples = []
    pid = server.pid()
    if pid is None:
        raise HarnessError(f"{server.spec}: memory per connection needs a server started here")
    server_pid: int = pid
    for idle in idle_counts:
        snap: dict[str, Any] = {}

        def on_mark(which: str) -> None:
            if which == "start":
                time.sleep(0.3)  # let the server settle on its new connections
                snap.update(rss_kb=machine.rss_kb(server_pid), mem=machine.meminfo_kb(),
                            tcp=machine.tcp_mem_kb())
                if server.iolab:
                    snap["pool_kb"] = server.snapshot()["stats"]["model_counters"][
                        "pool_reserved_bytes"] / 1024

        base = machine.meminfo_kb()
        report = run_loadgen(
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
    kernel = {k: (b["mem"][k] - a["mem"][k]) / n for k in machine.MEMINFO_KEYS}
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


def cache_point(spec: str, requests: int, path: str) -> dict[str, float]:
    """Instructions and cache misses per request under callgrind (bench/perf)."""
    model = spec.partition(":")[0]
    script = ROOT / "bench/perf/instructions_per_request.sh"
    result = subprocess.run([str(script), model, str(requests), path], capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        raise HarnessError(result.stderr.strip() or "callgrind run failed")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))
