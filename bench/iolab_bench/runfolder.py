"""The run folder (results/runs/<timestamp>-<label>/, described in results/README.md): the
machine manifest, one row per cell, repeat and point in harness/results.jsonl, and the row
schema."""

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from . import ROOT, machine, servers
from .scenarios import POINT_KIND

SCHEMA_VERSION = 1


def manifest(sc: dict[str, Any], server_cpu: int | None, client_cpu: int | None,
             placement: str) -> dict[str, Any]:
    """The machine, build and settings of a run (manifest.json)."""
    cpuinfo = machine.read_first("/proc/cpuinfo", "")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    vulns = {p.name: machine.read_first(p)
             for p in sorted(Path("/sys/devices/system/cpu/vulnerabilities").glob("*"))}
    total, steal = machine.read_steal()
    time.sleep(0.5)
    total2, steal2 = machine.read_steal()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nginx = machine.command_output(["/usr/sbin/nginx", "-v"]) or (subprocess.run(
        ["/usr/sbin/nginx", "-v"], capture_output=True, text=True).stderr.strip()
        if os.path.exists("/usr/sbin/nginx") else None)
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": sc["name"],
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_model": model,
        "cpus_online": machine.read_first("/sys/devices/system/cpu/online"),
        "topology": {str(c): k for c, k in machine.cpu_topology().items()},
        "server_cpu": server_cpu, "client_cpu": client_cpu, "placement": placement,
        "kernel": platform.release(),
        "mitigations": vulns,
        # Tick-sampled or exact: the user/system columns mean different things on different
        # kernels.
        "cpu_accounting": machine.cpu_accounting(),
        "governor": machine.read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
                                       "none"),
        "steal_at_start_pct": 100.0 * (steal2 - steal) / max(total2 - total, 1),
        "compiler": (machine.command_output(["c++", "--version"]) or "?").splitlines()[0],
        "liburing": machine.command_output(["dpkg-query", "-W", "-f=${Version}",
                                            "liburing-dev"]),
        "nginx": nginx,
        "git_revision": machine.command_output(["git", "-C", str(ROOT), "rev-parse", "--short",
                                                "HEAD"]),
        "git_dirty": bool(machine.command_output(["git", "-C", str(ROOT), "status", "--porcelain",
                                                  "--untracked-files=no"])),
        "fd_limits": {"soft": soft, "hard": hard},
        "somaxconn": machine.read_first("/proc/sys/net/core/somaxconn"),
        "python": sys.version.split()[0],
        "settings": {k: sc[k] for k in ("repeats", "warmup_s", "duration_s", "connections",
                                        "pipeline", "path", "rate_fraction")},
    }


def row_from_cell(sc: dict[str, Any], spec: str, params: dict[str, Any], point: str, repeat: int,
                  cell: dict[str, Any]) -> dict[str, Any]:
    """The results.jsonl row of one measured cell."""
    invalid = cell["invalid"]
    return {
        "server": spec, "scenario": sc["name"], "params": params, "point": point,
        "repeat": repeat, "offered_rate": cell.get("offered_rate"), "rps": cell["rps"],
        "requests": cell["requests"],
        "latency_us": cell["latency_us"],
        "cpu_us_per_req": {"server": {"user": cell.get("server_user_us"),
                                      "sys": cell.get("server_sys_us")},
                           "client": {"user": cell.get("client_user_us"),
                                      "sys": cell.get("client_sys_us")}},
        "server_cpu_clock_us_per_req": cell.get("server_cpu_clock_us"),
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
        "sources": cell.get("sources") or (servers.REFERENCE_SOURCES if spec.partition(":")[0] in
                                           servers.REFERENCES else servers.LOCAL_SOURCES),
        "target": cell.get("target"),
    }


def base_row(sc: dict[str, Any], spec: str, params: dict[str, Any], point: str, repeat: int,
             reason: str | None = None) -> dict[str, Any]:
    """A row without load figures: a failure (reason given) or a memory/cache point."""
    return {"server": spec, "scenario": sc["name"], "params": params, "point": point,
            "repeat": repeat, "valid": reason is None, "invalid_reason": reason}


ROW_KEYS = ("server", "scenario", "params", "point", "repeat", "valid", "invalid_reason")
MEASURED_KEYS = ("offered_rate", "rps", "latency_us", "cpu_us_per_req", "syscalls_per_req",
                 "ctx_switches_per_req", "rss_kb", "mem_per_conn", "allocs_per_req", "errors",
                 "client_cpu_util", "server_cpu_util", "steal_pct")


def check_row(row: dict[str, Any]) -> dict[str, Any]:
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


class Run:
    """A run folder being written: rows flushed as they come, the manifest replaced whole."""

    def __init__(self, sc: dict[str, Any], results_dir: str | Path, point_latest: bool = True,
                 label: str | None = None) -> None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.dir = Path(results_dir) / "runs" / f"{stamp}-{label or sc['name']}"
        (self.dir / "harness").mkdir(parents=True, exist_ok=False)
        self.rows_file: IO[str] = (self.dir / "harness" / "results.jsonl").open("a")
        self.results_dir = Path(results_dir)
        self.point_latest = point_latest
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        check_row(row)
        self.rows.append(row)
        self.rows_file.write(json.dumps(row, sort_keys=True) + "\n")
        self.rows_file.flush()

    def write_manifest(self, doc: dict[str, Any]) -> None:
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        tmp.replace(self.dir / "manifest.json")

    def close(self) -> None:
        self.rows_file.close()
        if self.point_latest:
            latest = self.results_dir / "latest"
            tmp = self.results_dir / ".latest.tmp"
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(self.dir.relative_to(self.results_dir))
            tmp.replace(latest)
