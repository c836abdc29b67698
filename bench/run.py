#!/usr/bin/python3
"""run.py: runs a scenario and writes one run folder (DESIGN section 6).

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

Usage: bench/run.py [--scenario quick] [--results-dir results] [--quick-repeats N] [--dry-run]
       bench/run.py --list
"""

import argparse
import datetime
import itertools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
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
        "valid": not invalid, "invalid_reason": "; ".join(invalid) or None,
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
    """The row schema (DESIGN 6.2 and the runner issue); raises ValueError on a bad row."""
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
        reasons = merge_reasons([r["invalid_reason"] for r in group if r["invalid_reason"]], len(group))
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
            text = f"{s['median']:.{digits}f}"
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


def placed(placement, server_cpu, client_cpu):
    """CPUs for a cell of the affinity scenario: (server, client); None means unpinned."""
    if placement in (None, "other_cpu"):
        return server_cpu, client_cpu
    if placement == "same_cpu":
        return server_cpu, server_cpu
    if placement == "unpinned":
        return None, None
    raise HarnessError(f"unknown placement '{placement}' (other_cpu, same_cpu, unpinned)")


def run_scenario(sc, opts):
    loadgen = Path(opts.bin_dir) / "loadgen"
    if not loadgen.exists():
        raise HarnessError(f"{loadgen} not built (make build)")
    server_cpu, client_cpu, placement = compare.choose_cpus(opts.server_cpu, opts.client_cpu)
    repeats = opts.repeats or sc["repeats"]
    copts = compare.parse_args(["--duration", str(sc["duration_s"]), "--warmup", str(sc["warmup_s"]),
                                "--connections", str(sc["connections"]), "--pipeline",
                                str(sc["pipeline"]), "--path", sc["path"], "--bin-dir", opts.bin_dir])
    run = Run(sc, opts.results_dir, point_latest=not opts.no_latest, label=opts.label)
    doc = manifest(sc, server_cpu, client_cpu, placement)
    doc["repeats"] = repeats
    doc["interrupted"] = False
    doc["skipped"] = {}
    run.write_manifest(doc)
    print(f"run: scenario {sc['name']} -> {run.dir}")
    print(f"run: server CPU {server_cpu}, client CPU {client_cpu} ({placement})", flush=True)

    try:
        # Which servers exist here; the rest are skipped with a note, never silently.
        servers = []
        for spec in sc["servers"]:
            try:
                with Server(spec, server_cpu, opts.bin_dir):
                    servers.append(spec)
            except HarnessError as e:
                doc["skipped"][spec] = str(e)
                print(f"run: skipping {spec}: {e}", flush=True)
        if not servers:
            raise HarnessError("no server of the scenario could start")
        baseline = "nginx" if "nginx" in servers else servers[0]
        doc["baseline"] = baseline

        points = sc["points"]
        if "fixed_rate" in points:
            with Server(baseline, server_cpu, opts.bin_dir) as s:
                s.overhead = compare.stats_overhead(s)
                cal = compare.measure(s, loadgen, client_cpu, "closed", copts)
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
                    try:
                        with Server(full_spec, cell_server_cpu, opts.bin_dir) as s:
                            s.overhead = compare.stats_overhead(s)
                            for point in load_points:
                                try:
                                    cell = compare.measure(s, loadgen, cell_client_cpu, POINT_KIND[point], copts,
                                                           doc.get("offered_rate"), opts.perf,
                                                           loadgen_args, path)
                                    row = row_from_cell(sc, spec, params, point, repeat, cell)
                                    run.add(row)
                                    progress(f"{spec} {params or ''} {point}: {cell['rps']:.0f} req/s"
                                             + ("" if row["valid"] else f" (invalid: {row['invalid_reason']})"))
                                except HarnessError as e:
                                    run.add(base_row(sc, spec, params, point, repeat, str(e)))
                                    progress(f"{spec} {point}: FAILED: {e}")
                                    if not s.alive():
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
                                    progress(f"{spec} memory: FAILED: {e}")
                    except HarnessError as e:
                        for point in load_points:
                            run.add(base_row(sc, spec, params, point, repeat, str(e)))
                            progress(f"{spec} {point}: FAILED: {e}")
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
                            progress(f"{spec} cache: FAILED: {e}")
        summary = summarize(run.rows)
        (run.dir / "harness" / "summary.json").write_text(json.dumps(summary, indent=1))
        doc["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        print()
        print_summary(summary, baseline)
        for spec, why in doc["skipped"].items():
            print(f"  skipped {spec}: {why}")
        return run
    except KeyboardInterrupt:
        doc["interrupted"] = True
        print("\nrun: interrupted; servers stopped, rows so far kept", file=sys.stderr, flush=True)
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
    if (opts.server_cpu is None) != (opts.client_cpu is None):
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
        sys.exit(130)
