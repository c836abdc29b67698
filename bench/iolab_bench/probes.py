"""Probes: the claims ledger's measurements that are not a load point of the harness (make
claims-probes). Each writes a run folder like a scenario's (manifest.json, harness/results.jsonl,
harness/summary.json), so bench/claims.json names its figures as harness sources:

  startup      C07: server_epoll_et linked statically and dynamically, `--help` from exec to
               exit, timed by bench/perf/startup.sh under hyperfine; every timed run is a round.
  descriptors  C20: the soft limit of open files a process starts with here, and what a busy
               server does at a 1,024 descriptor limit: server_epoll_et under prlimit, idle
               connections past the limit, a fixed rate of new connections; the share of the
               offered requests it served, one round per repeat (and the same under the limit).
  scheduler    C15: server_coro with 2 workers under a closed-loop load, its scheduler probe on
               (IOLAB_SCHED_PROBE_MS: a coroutine that yields every millisecond and times the
               yield to its resumption); from the line the scheduler prints when it stops, the
               p99 of that latency and the balance of resumptions between the workers, one round
               per repeat.

Each round is judged by the harness's rule on other processes' CPU while it ran
(validity.MAX_BACKGROUND_CPUS; for startup, over the whole timing, which follows the builds).

A probe's settings (servers, points, repeats and its own) are in bench/probes/<name>.json; the
ledger's test checks its sources against them as against a scenario's.
"""

import datetime
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from . import ROOT, HarnessError, machine, runfolder
from .validity import MAX_BACKGROUND_CPUS

PROBES = ROOT / "bench" / "probes"


def load_probe(name: str) -> dict[str, Any]:
    path = PROBES / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROBES.glob("*.json")))
        raise HarnessError(f"unknown probe '{name}' (known: {known})")
    spec: dict[str, Any] = json.loads(path.read_text())
    spec["name"] = name
    return spec


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """summary.json rows (as validity.summarize_rows writes them) from probe rows: the median of
    each metric over the rounds, not valid when a round was not."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["server"], json.dumps(r["params"], sort_keys=True), r["point"]),
                          []).append(r)
    out = []
    for (server, params, point), group in groups.items():
        why = sorted({r["invalid_reason"] for r in group if r.get("invalid_reason")})
        metrics = sorted({m for r in group for m in (r.get("metrics") or {})})
        for metric in metrics:
            values = [r["metrics"][metric] for r in group
                      if (r.get("metrics") or {}).get(metric) is not None]
            if not values:
                continue
            median = statistics.median(values)
            spread = (max(values) - min(values)) / median if median else 0.0
            out.append({"server": server, "params": json.loads(params), "point": point,
                        "metric": metric, "median": median, "spread": spread, "n": len(values),
                        "valid": not why, "why_invalid": why})
    return out


class ProbeRun:
    """A run folder written by a probe."""

    def __init__(self, spec: dict[str, Any], results_dir: Path) -> None:
        sc = {"name": spec["name"], "repeats": spec.get("repeats"), "warmup_s": None,
              "duration_s": spec.get("duration_s"), "connections": spec.get("connections"),
              "pipeline": None, "path": None, "rate_fraction": None}
        self.doc = runfolder.manifest(sc, None, None, "probe: see its settings")
        self.doc["probe"] = spec
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.dir = Path(results_dir) / "runs" / f"{stamp}-{spec['name']}"
        (self.dir / "harness").mkdir(parents=True)
        self.rows: list[dict[str, Any]] = []
        self.write_manifest()

    def add(self, server: str, point: str, repeat: int, metrics: dict[str, float | None],
            invalid: str | None = None, params: dict[str, Any] | None = None) -> None:
        row = {"scenario": self.doc["scenario"], "server": server, "params": params or {},
               "point": point, "repeat": repeat, "metrics": metrics, "invalid_reason": invalid,
               "valid": invalid is None}
        self.rows.append(row)
        with (self.dir / "harness" / "results.jsonl").open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if v is not None)
        print(f"probe {self.doc['scenario']}: {server} {point} round {repeat}: {shown}"
              + (f" (not valid: {invalid})" if invalid else ""), flush=True)

    def write_manifest(self) -> None:
        (self.dir / "manifest.json").write_text(json.dumps(self.doc, indent=1, sort_keys=True))

    def finish(self) -> None:
        (self.dir / "harness" / "summary.json").write_text(
            json.dumps(summarize(self.rows), indent=1))
        self.doc["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        self.write_manifest()
        print(f"probe: results in {self.dir}", flush=True)


# ---- servers and load -----------------------------------------------------------------------

def start_server(argv: list[str], env: dict[str, str] | None = None
                 ) -> tuple["subprocess.Popen[str]", int]:
    """Starts a server command and reads its port from its ready line."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on [0-9.]+:(\d+) ", line)
    if not match:
        stop_server(proc)
        raise HarnessError(f"{argv[0]}: no ready line ({line.strip()!r})")
    return proc, int(match.group(1))


def stop_server(proc: "subprocess.Popen[str]") -> str:
    """SIGTERM, then its stderr."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()
    return err


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its threads so far (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadgen(bin_dir: Path, port: int, args: list[str], timeout_s: float,
            server_pid: int | None = None) -> dict[str, Any]:
    """loadgen's JSON report, with "background_cpus": other processes' CPU during the whole
    run (the harness's rule: above validity.MAX_BACKGROUND_CPUS the round is not valid)."""
    cmd = [str(bin_dir / "loadgen"), "--url", f"http://127.0.0.1:{port}/ping", "--json", "-",
           *args]
    busy, server, wall = machine.read_busy_s(), 0.0, time.monotonic()
    if server_pid is not None:
        server = proc_cpu_s(server_pid)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if res.returncode != 0:
        raise HarnessError(f"loadgen failed (exit {res.returncode}): {res.stderr.strip()}")
    report: dict[str, Any] = json.loads(res.stdout)
    busy = machine.read_busy_s() - busy
    if server_pid is not None:
        server = proc_cpu_s(server_pid) - server
    client = report.get("client_cpu_total_s") or {}
    client_s = float(client.get("user", 0.0)) + float(client.get("sys", 0.0))
    report["background_cpus"] = max(0.0, busy - server - client_s) / max(
        time.monotonic() - wall, 1e-9)
    return report


def background_problem(report: dict[str, Any]) -> str | None:
    b = float(report.get("background_cpus") or 0.0)
    return f"background load {b:.2f} CPUs" if b > MAX_BACKGROUND_CPUS else None


# ---- the probes -----------------------------------------------------------------------------

def _startup_sh(args: list[str], env: dict[str, str] | None = None
                ) -> tuple[dict[str, Any], dict[str, Any], float]:
    """startup.sh's summary, hyperfine's export, and other processes' CPU while it ran."""
    with tempfile.TemporaryDirectory(prefix="iolab-probe-startup-") as tmp:
        export = Path(tmp) / "hyperfine.json"
        cmd = [str(ROOT / "bench" / "perf" / "startup.sh"), *args, "--export", str(export)]
        print("probe startup: " + " ".join(cmd), flush=True)
        own = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, wall = machine.read_busy_s(), time.monotonic()
        res = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
        busy, wall = machine.read_busy_s() - busy, time.monotonic() - wall
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0 or not export.exists():
            raise HarnessError(f"startup.sh failed (exit {res.returncode})")
        ours = (done.ru_utime - own.ru_utime) + (done.ru_stime - own.ru_stime)
        hyperfine = json.loads(export.read_text())
    return json.loads(res.stdout), hyperfine, max(0.0, busy - ours) / max(wall, 1e-9)


def probe_startup(spec: dict[str, Any], run: ProbeRun, bin_dir: Path) -> None:
    model = spec["servers"][0]
    # First the two builds (startup.sh keeps them), timed twice only; then the timing alone on
    # those binaries, so that other processes' CPU is measured over the timing and nothing else.
    built, _, _ = _startup_sh(["--runs", "2", "--model", model])
    env = dict(os.environ, STARTUP_DYNAMIC=built["dynamic"], STARTUP_STATIC=built["static"])
    summary, hyperfine, background = _startup_sh(
        ["--runs", str(spec["runs"]), "--model", model], env)
    run.doc["startup_summary"] = summary
    results = {r["command"]: r for r in hyperfine["results"]}
    invalid = (f"background load {background:.2f} CPUs" if background > MAX_BACKGROUND_CPUS
               else None)
    for point in spec["points"]:
        for i, seconds in enumerate(results[f"help-{point}"]["times"]):
            run.add(model, point, i, {"startup_ms": 1000.0 * seconds,
                                      "background_cpus": background}, invalid)


def probe_descriptors(spec: dict[str, Any], run: ProbeRun, bin_dir: Path) -> None:
    server = spec["servers"][0]
    limit = int(spec["limit"])
    rate, duration = float(spec["rate"]), float(spec["duration_s"])
    for repeat in range(int(spec["repeats"])):
        fresh = subprocess.run(["/bin/sh", "-c", "ulimit -Sn"], capture_output=True, text=True)
        run.add(server, "default_limit", repeat, {"fd_soft_limit": float(fresh.stdout.strip())})
        for point, idle in (("under_limit", int(spec["idle_under"])),
                            ("at_limit", int(spec["idle_at"]))):
            proc, port = start_server(["prlimit", f"--nofile={limit}:{limit}",
                                       str(bin_dir / f"server_{server}"), "--port", "0"])
            try:
                report = loadgen(bin_dir, port, [
                    "--idle-connections", str(idle), "--new-connection-per-request",
                    "--connections", str(spec["connections"]), "--rate", f"{rate:g}",
                    "--duration", f"{duration:g}s", "--timeout", "1s",
                    "--setup-timeout", "5s"], timeout_s=duration + 60, server_pid=proc.pid)
            except HarnessError as e:
                run.add(server, point, repeat, {"served_share": None, "failed_share": None},
                        str(e),)
                continue
            finally:
                alive = proc.poll() is None
                stop_server(proc)
            offered = rate * duration
            served = float(report.get("requests", 0))
            errors = (report.get("errors") or {}).get("total", 0)
            run.add(server, point, repeat, {
                # Both shares of the offered requests: C20's rule reads the failed one (a share
                # that is 0 when the server fails outright tests nothing as a bound to stay under).
                "served_share": served / offered, "failed_share": 1.0 - served / offered,
                "errors": float(errors),
                "idle_ready": float((report.get("idle_connections") or {}).get("ready", 0)),
                "server_alive": 1.0 if alive else 0.0,
                "background_cpus": report["background_cpus"]}, background_problem(report))


SCHED_LINE = re.compile(r"scheduler probe: samples=(\d+) p50_us=([0-9.]+) p99_us=([0-9.]+) "
                        r"max_us=([0-9.]+) resumes=([0-9,]+)")


def probe_scheduler(spec: dict[str, Any], run: ProbeRun, bin_dir: Path) -> None:
    server = spec["servers"][0]
    name, _, extra = server.partition(":")
    env = dict(os.environ, IOLAB_SCHED_PROBE_MS=str(spec["probe_ms"]))
    for repeat in range(int(spec["repeats"])):
        proc, port = start_server([str(bin_dir / f"server_{name}"), "--port", "0",
                                   *extra.split()], env)
        invalid = None
        try:
            report = loadgen(bin_dir, port, [
                "--connections", str(spec["connections"]), "--threads", "1",
                "--duration", f"{spec['duration_s']}s", "--warmup", "1s"],
                timeout_s=float(spec["duration_s"]) + 30, server_pid=proc.pid)
            if (report.get("errors") or {}).get("total"):
                invalid = f"{report['errors']['total']} errors"
            invalid = invalid or background_problem(report)
        except HarnessError as e:
            invalid = str(e)
        err = stop_server(proc)
        match = SCHED_LINE.search(err)
        if not match:
            run.add(server, "probe", repeat, {"sched_p99_us": None},
                    invalid or "no scheduler probe line (IOLAB_SCHED_PROBE_MS not supported?)")
            continue
        resumes = [float(x) for x in match.group(5).split(",") if x]
        mean = statistics.fmean(resumes) if resumes else 0.0
        run.add(server, "probe", repeat, {
            "samples": float(match.group(1)), "sched_p50_us": float(match.group(2)),
            "sched_p99_us": float(match.group(3)), "sched_max_us": float(match.group(4)),
            "resume_imbalance": max(resumes) / mean if mean else None}, invalid)


PROBE_FUNCS: dict[str, Callable[[dict[str, Any], ProbeRun, Path], None]] = {
    "startup": probe_startup, "descriptors": probe_descriptors, "scheduler": probe_scheduler}


def run_probe(name: str, results_dir: Path, bin_dir: Path,
              repeats: int | None = None) -> Path:
    spec = load_probe(name)
    if repeats is not None:
        spec["repeats"] = repeats
        if "runs" in spec:
            spec["runs"] = max(repeats, 2)
    run = ProbeRun(spec, results_dir)
    started = time.monotonic()
    try:
        PROBE_FUNCS[name](spec, run, bin_dir)
    finally:
        run.doc["seconds"] = round(time.monotonic() - started, 1)
        run.finish()
    return run.dir
