"""A scenario, cell by cell, into a run folder (bench/run.py).

run_scenario prepares the run (CPUs, a --target's probe, the manifest), finds which servers
exist here, calibrates the offered rate, then loops: for each repeat, server and cell of the
matrix, measure_cell measures its load points, its memory point (every round of the first cell,
the first round of the others) and, in the first repeat, its cache point, each into one row.
Every process it starts is stopped before it returns, also on Ctrl-C, which leaves a consistent
folder (rows so far, manifest marked interrupted). A server that crashes mid-run or never gets
ready becomes invalid rows with the reason, and the run goes on.
"""

import argparse
import dataclasses
import datetime
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import HarnessError, intervals, machine, runfolder, servers, tables, validity
from .measure import Load, cache_point, measure, memory_point
from .runfolder import Run, base_row, row_from_cell
from .scenarios import POINT_KIND, Cell, matrix_cells, placed
from .servers import AnyServer, NetnsServer, RemoteServer, Server
from .sweeps import connections_to_peak

# Set once run_scenario has said it was interrupted; a Ctrl-C or SIGTERM outside its measuring
# loop (setting up the run folder, say) is reported by bench/run.py instead.
INTERRUPT_REPORTED: list[bool] = []


class Progress:
    """'[done/total elapsed, ~left] what' lines, one per row."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.started = time.monotonic()

    def seconds_per_row(self) -> float:
        return (time.monotonic() - self.started) / self.done if self.done else 0.0

    def __call__(self, text: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total} {elapsed:.0f}s, ~{eta:.0f}s left] {text}", flush=True)


@dataclass
class Context:
    """What every cell of a run shares."""
    sc: dict[str, Any]
    opts: argparse.Namespace
    loadgen: Path
    load: Load
    run: Run
    doc: dict[str, Any]
    server_cpu: int | None
    client_cpu: int | None
    target: tuple[str, int] | None = None
    ns: dict[str, str] | None = None
    progress: Progress = field(default_factory=lambda: Progress(0))

    def open_server(self, spec: str, cpu: int | None) -> AnyServer:
        if self.target:
            return RemoteServer(*self.target)
        if self.ns:
            return NetnsServer(spec, cpu, self.opts.bin_dir, self.ns["server"],
                               self.ns["server_addr"])
        return Server(spec, cpu, self.opts.bin_dir)


def prepare(sc: dict[str, Any], opts: argparse.Namespace) -> Context:
    """Places server and client, opens the run folder and writes its first manifest."""
    loadgen = Path(opts.bin_dir) / "loadgen"
    if not loadgen.exists():
        raise HarnessError(f"{loadgen} not built (make build)")
    target = servers.parse_target(opts.target) if opts.target else None
    ns = machine.netns_env() if sc.get("mode") == "netns" else None
    if sc.get("mode") == "netns" and ns is None:
        raise HarnessError("the netns mode runs inside bench/netns/with_netns.sh (run.py starts "
                           "it by itself)")
    server_cpu: int | None
    if target:
        # The server runs on its own CPUs, elsewhere; only the client is placed here.
        client_cpu = (opts.client_cpu if opts.client_cpu is not None
                      else machine.choose_cpus()[1])
        server_cpu, placement = None, f"target {opts.target}: its CPUs are its own; client here"
        with RemoteServer(*target) as probe:
            sc["servers"] = [probe.spec]
            target_stats = probe.stats_at_start or {}
        label = opts.label or f"target-{sc['name']}"
    else:
        server_cpu, client_cpu, placement = machine.choose_cpus(opts.server_cpu, opts.client_cpu)
        label = opts.label
    load = Load(duration=float(sc["duration_s"]), warmup=float(sc["warmup_s"]),
                connections=int(sc["connections"]), pipeline=int(sc["pipeline"]), path=sc["path"])
    run = Run(sc, opts.results_dir, point_latest=not opts.no_latest, label=label)
    doc = runfolder.manifest(sc, server_cpu, client_cpu, placement)
    doc["repeats"] = opts.repeats or sc["repeats"]
    # More rounds where intervals are still wide, within the time budget (extra_rounds).
    # --repeats N asks for N rounds: no extra ones unless max_repeats is --set too.
    fixed_rounds = opts.repeats is not None and not any(
        item.startswith("max_repeats=") for item in getattr(opts, "set", []))
    doc["rounds"] = {"min": doc["repeats"],
                     "max": doc["repeats"] if fixed_rounds else
                     max(doc["repeats"], int(sc.get("max_repeats") or 0)),
                     "budget_s": sc.get("budget_s"), "stopped": None}
    doc["cpu_accounting"] = machine.cpu_accounting()
    doc["cpu_accounting_note"] = (
        "the total CPU per request (user + system) is the scheduler's run time, exact; on a "
        "tick-sampled kernel only its split into user and system is an estimate")
    doc["interrupted"] = False
    doc["skipped"] = {}
    doc["mode"] = "target" if target else "netns" if ns else "local"
    if target:
        doc["target"] = {"address": opts.target, "label": opts.label, "model": sc["servers"][0],
                         "loopback": servers.is_loopback(target[0]),
                         "fd_limits": {"soft": target_stats.get("fd_soft_limit"),
                                       "hard": target_stats.get("fd_hard_limit")},
                         "figures_from": "the server's /stats (rusage, statm, syscall counters)"}
    if ns:
        doc["netns"] = dict(ns, delay="loadgen --think-ms" + ("" if ns["netem"] == "yes" else
                                                              " (no netem in this kernel)"))
    if target or ns:
        for point in [p for p in sc["points"] if p in ("memory", "cache")]:
            doc["skipped"][point] = ("needs the server's /proc and loopback sockets on this "
                                     "machine; not measured for a server reached over a network")
        sc = dict(sc, points=[p for p in sc["points"] if p not in ("memory", "cache")])
        if sc["server_args"] or sc["arg_map"]:
            doc["skipped"]["server_args"] = "server arguments of the scenario are not applied"
            sc = dict(sc, server_args=[], arg_map={})
    run.write_manifest(doc)
    print(f"run: scenario {sc['name']} -> {run.dir}")
    print(f"run: server CPU {server_cpu}, client CPU {client_cpu} ({placement})", flush=True)
    return Context(sc, opts, loadgen, load, run, doc, server_cpu, client_cpu, target, ns)


def available_servers(ctx: Context) -> list[str]:
    """Which servers exist here; the rest are skipped with a note, never silently."""
    found = []
    for spec in ctx.sc["servers"]:
        try:
            with ctx.open_server(spec, ctx.server_cpu):
                found.append(spec)
        except HarnessError as e:
            ctx.doc["skipped"][spec] = str(e)
            print(f"run: skipping {spec}: {e}", flush=True)
    if not found:
        raise HarnessError("no server of the scenario could start")
    return found


# What makes two runs' offered rates interchangeable: the same machine, CPUs and placement.
SAME_MACHINE = ("hostname", "cpu_model", "cpus_online", "kernel", "server_cpu", "client_cpu",
                "placement", "mode", "target")


def earlier_calibration(ctx: Context, baseline: str) -> tuple[str, dict[str, Any]] | None:
    """The newest finished run of this scenario in the same results folder, on this machine,
    whose offered rate was calibrated on the same baseline at the same fraction: its folder name
    and manifest. None when there is none."""
    here = ctx.run.dir
    for path in sorted(here.parent.glob("*/manifest.json"), reverse=True):
        if path.parent == here:
            continue
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        cal = m.get("calibration") or {}
        if (m.get("scenario") != ctx.sc["name"] or not m.get("finished")
                or m.get("interrupted") or not m.get("offered_rate") or cal.get("given")):
            continue
        if any(m.get(k) != ctx.doc.get(k) for k in SAME_MACHINE):
            continue
        if cal.get("server") != baseline or cal.get("fraction") != ctx.sc["rate_fraction"]:
            continue
        return path.parent.name, m
    return None


def calibrate(ctx: Context, baseline: str) -> None:
    """The offered rate of the fixed-rate points, into the manifest: the scenario's; or the one
    an earlier run of the scenario calibrated on this machine (earlier_calibration), so that
    two runs measure their fixed-rate points at the same load and `make compare` compares like
    with like (--recalibrate measures it again); or a fraction of the baseline's closed-loop
    rate. That closed loop is client-bound on a small machine and moved by 20% between two
    runs here, and CPU and latency per request at the fixed rate move with the load."""
    sc, doc = ctx.sc, ctx.doc
    earlier = (earlier_calibration(ctx, baseline)
               if "fixed_rate" in sc["points"] and not sc.get("offered_rate")
               and not getattr(ctx.opts, "recalibrate", False) else None)
    if "fixed_rate" in sc["points"] and sc.get("offered_rate"):
        doc["offered_rate"] = float(sc["offered_rate"])
        doc["calibration"] = {"given": True}
        print(f"run: offered rate {doc['offered_rate']:.0f} req/s (set by the scenario)")
    elif earlier is not None:
        name, m = earlier
        doc["offered_rate"] = float(m["offered_rate"])
        doc["calibration"] = dict(m["calibration"], reused_from=name)
        print(f"run: offered rate {doc['offered_rate']:.0f} req/s, as {name} calibrated it on "
              f"this machine (the same load, so the two compare; --recalibrate measures it "
              f"again)", flush=True)
    elif "fixed_rate" in sc["points"]:
        with ctx.open_server(baseline, ctx.server_cpu) as s:
            s.overhead = servers.stats_overhead(s)
            cal = measure(s, ctx.loadgen, ctx.client_cpu, "closed", ctx.load)
        if not cal["rps"] > 0:  # a zero rate would fail every fixed-rate cell obscurely
            raise HarnessError(f"calibration on {baseline} failed: no request succeeded "
                               f"({cal['errors']} errors: {cal['errors_by_kind']})")
        doc["offered_rate"] = cal["rps"] * sc["rate_fraction"]
        doc["calibration"] = {"server": baseline, "closed_loop_rps": cal["rps"],
                              "fraction": sc["rate_fraction"], "valid": not cal["invalid"]}
        print(f"run: calibrated on {baseline}: {cal['rps']:.0f} req/s closed loop; offered rate "
              f"{doc['offered_rate']:.0f} req/s", flush=True)
    ctx.run.write_manifest(doc)


def load_points(ctx: Context) -> list[str]:
    return [p for p in ctx.sc["points"] if p in POINT_KIND]


def measure_loads(ctx: Context, s: AnyServer, spec: str, cell: Cell, repeat: int,
                  client_cpu: int | None, load: Load, points: list[str]) -> None:
    """The cell's load points against a started server, one row each. After a failure that
    killed the server, the points after it get a row too: a dead server is reported for every
    cell it did not serve, not left out."""
    label = f"{spec} {cell.params or ''}"
    for index, point in enumerate(points):
        try:
            result = measure(s, ctx.loadgen, client_cpu, POINT_KIND[point], load,
                             ctx.doc.get("offered_rate"), ctx.opts.perf, cell.loadgen_args,
                             cell.path)
            row = row_from_cell(ctx.sc, spec, cell.params, point, repeat, result)
            ctx.run.add(row)
            ctx.progress(f"{label} {point}: {result['rps']:.0f} req/s"
                         + ("" if row["valid"] else f" (invalid: {row['invalid_reason']})"))
        except HarnessError as e:
            ctx.run.add(base_row(ctx.sc, spec, cell.params, point, repeat, str(e)))
            ctx.progress(f"{label} {point}: FAILED: {e}")
            if not s.alive():
                for later in points[index + 1:]:
                    why = f"not measured: {spec} died during {point}"
                    ctx.run.add(base_row(ctx.sc, spec, cell.params, later, repeat, why))
                    ctx.progress(f"{label} {later}: FAILED: {why}")
                break


def memory_round(ctx: Context, cell: Cell, repeat: int) -> bool:
    """Whether this round of a cell measures memory per connection: every round of the
    scenario's repeats in the matrix's first cell (the cell the charts and claim C03 read, so
    its figure gets an interval like every other), the first round in the other cells."""
    return repeat == 0 or (repeat < ctx.doc["repeats"]
                           and cell.params == matrix_cells(ctx.sc)[0].params)


def measure_memory(ctx: Context, s: Server, spec: str, cell: Cell, repeat: int) -> None:
    """Memory per idle connection in one round, one row."""
    try:
        mem = memory_point(s, ctx.loadgen, ctx.client_cpu, ctx.sc.get("idle", [1000, 3000]),
                           cell.path)
        row = base_row(ctx.sc, spec, cell.params, "memory", repeat)
        row["mem_per_conn"] = mem
        ctx.run.add(row)
        ctx.progress(f"{spec} memory: {mem['user_kb']:.2f} KB user, "
                     f"{mem['kernel_stack_kb']:.2f} KB kernel stack per connection")
    except HarnessError as e:
        ctx.run.add(base_row(ctx.sc, spec, cell.params, "memory", repeat, str(e)))
        ctx.progress(f"{spec} {cell.params or ''} memory: FAILED: {e}")


def measure_cache(ctx: Context, spec: str, cell: Cell) -> None:
    """Instructions and cache misses per request under callgrind (first repeat only), one row."""
    try:
        res = cache_point(spec, ctx.sc.get("cache_requests", 20000), cell.path)
        row = base_row(ctx.sc, spec, cell.params, "cache", 0)
        row.update(instructions_per_req=res["instructions_per_request"],
                   d1_misses_per_req=res["d1_misses_per_request"],
                   ll_misses_per_req=res["ll_misses_per_request"])
        ctx.run.add(row)
        ctx.progress(f"{spec} cache: {res['instructions_per_request']:.0f} instructions/request")
    except (HarnessError, subprocess.TimeoutExpired) as e:
        ctx.run.add(base_row(ctx.sc, spec, cell.params, "cache", 0, str(e)))
        ctx.progress(f"{spec} {cell.params or ''} cache: FAILED: {e}")


def measure_cell(ctx: Context, spec: str, cell: Cell, repeat: int,
                 only: list[str] | None = None) -> None:
    """One server in one cell of the matrix, in one repeat: a server started for the cell (with
    the cell's arguments, on the cell's CPUs), its load points (`only` those in an extra round),
    its memory point (memory_round) and in the first repeat its cache point."""
    points = ctx.sc["points"]
    loads = only if only is not None else load_points(ctx)
    full_spec = spec + (":" + " ".join(cell.server_args) if cell.server_args and
                        spec not in servers.REFERENCES else "")
    server_cpu, client_cpu = placed(cell.params.get("placement"), ctx.server_cpu, ctx.client_cpu)
    load = ctx.load
    if "connections" in cell.params:  # a matrix over connection counts (netns)
        load = dataclasses.replace(load, connections=int(cell.params["connections"]))
    try:
        with ctx.open_server(full_spec, server_cpu) as s:
            s.overhead = servers.stats_overhead(s)
            measure_loads(ctx, s, spec, cell, repeat, client_cpu, load, loads)
            if (only is None and "memory" in points and isinstance(s, Server)
                    and memory_round(ctx, cell, repeat)):
                measure_memory(ctx, s, spec, cell, repeat)
    except HarnessError as e:
        for point in loads:
            ctx.run.add(base_row(ctx.sc, spec, cell.params, point, repeat, str(e)))
            ctx.progress(f"{spec} {cell.params or ''} {point}: FAILED: {e}")
    if repeat == 0 and "cache" in points and spec not in servers.REFERENCES:
        measure_cache(ctx, spec, cell)


def reachable(s: dict[str, Any], max_rounds: int | None) -> bool:
    """Whether `max_rounds` rounds can be expected to bring a summary figure's interval within
    its kind's precision: with the round-to-round spread it has now, the half-width of a
    t-interval shrinks as t(n - 1) / sqrt(n). A fixed-rate p99 that moves 5x between rounds will
    not reach ±25% in a few more; a saturation rate at ±12% over 4 rounds will at 7."""
    n, low, high = s.get("n", 0), s.get("low"), s.get("high")
    if max_rounds is None or low is None or high is None or n < 2:
        return True
    if n >= max_rounds:
        return False
    reach = (high - low) / 2
    t_now = intervals.t_quantile(intervals.CONFIDENCE, n - 1)
    t_max = intervals.t_quantile(intervals.CONFIDENCE, max_rounds - 1)
    predicted = reach * (t_max / t_now) * math.sqrt(n / max_rounds)
    return bool(predicted <= validity.max_reach(s["metric"], s["mean"]))


def wide_points(summary: list[dict[str, Any]],
                max_rounds: int | None = None) -> set[tuple[str, str, str]]:
    """(server, params as JSON, point) of the load points with a figure in the table that is
    invalid only for want of precision (its interval too wide, or every round disturbed by
    steal or background load): more rounds can make it valid. A figure with a lasting reason
    (errors, a missed rate, client-bound) cannot be helped by more rounds and gets none, nor
    does one whose interval `max_rounds` rounds cannot be expected to narrow enough
    (reachable): the time budget goes where it can make figures valid."""
    shown = {(c[1], c[2]) for c in tables.run_columns(summary)}
    out = set()
    for s in summary:
        if s["point"] not in POINT_KIND or s["valid"] or (s["point"], s["metric"]) not in shown:
            continue
        if not all(validity.is_precision_reason(w) or validity.is_transient(w)
                   for w in s["reasons"]):
            continue
        imprecise = any(validity.is_precision_reason(w) and w.startswith("interval ")
                        for w in s["reasons"])
        if not imprecise or reachable(s, max_rounds):
            out.add((s["server"], json.dumps(s["params"], sort_keys=True), s["point"]))
    return out


def extra_rounds(ctx: Context, found: list[str], cells: list[Cell], baseline: str,
                 deadline: float) -> None:
    """Rounds where the variance is: after the scenario's `repeats` rounds of every cell, more
    short interleaved rounds for the load points whose intervals are still too wide (and for the
    baseline's same point, so that every ratio keeps its pairs), until every figure is precise,
    a point has `max_repeats` rounds, or the time budget (`budget_s` from the start of the
    first round) is spent. Why it stopped goes into the manifest."""
    rounds = ctx.doc["rounds"]
    repeat = rounds["min"]
    stopped = "every figure precise enough"
    while True:
        if repeat >= rounds["max"]:
            stopped = f"at the most rounds ({rounds['max']})"
            break
        wide = wide_points(validity.summarize_rows(ctx.run.rows, baseline), rounds["max"])
        if not wide:
            stopped = "every figure precise enough, or invalid for a reason rounds cannot fix"
            break
        plan = []
        for spec in found:
            for cell in cells:
                pj = json.dumps(cell.params, sort_keys=True)
                points = [p for p in load_points(ctx)
                          if (spec, pj, p) in wide
                          or (spec == baseline and any((o, pj, p) in wide for o in found))]
                if points:
                    plan.append((spec, cell, points))
        ctx.progress.total += sum(len(p) for _, _, p in plan)
        for spec, cell, points in plan:
            per_point = ctx.progress.seconds_per_row()
            if time.monotonic() + per_point * len(points) > deadline:
                ctx.progress.total = ctx.progress.done
                stopped = f"time budget of {float(rounds['budget_s']):g} s spent"
                rounds["stopped"] = stopped
                return
            measure_cell(ctx, spec, cell, repeat, points)
        repeat += 1
    rounds["stopped"] = stopped


def finish(ctx: Context, baseline: str) -> None:
    """summary.json, connections_to_peak.jsonl and the printed tables."""
    run, doc = ctx.run, ctx.doc
    summary = validity.summarize_rows(run.rows, baseline)
    (run.dir / "harness" / "summary.json").write_text(json.dumps(summary, indent=1))
    doc["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    peaks = connections_to_peak(run.rows) if "connections" in ctx.sc["matrix"] else []
    if peaks:
        with (run.dir / "harness" / "connections_to_peak.jsonl").open("w") as f:
            for p in peaks:
                f.write(json.dumps(p, sort_keys=True) + "\n")
    print()
    tables.print_summary(summary, baseline, doc.get("cpu_accounting"))
    tables.print_failures(run.rows, summary)
    tables.print_rounds(run.rows)
    if doc.get("rounds", {}).get("stopped"):
        print(f"  extra rounds: {doc['rounds']['stopped']}")
    if peaks:
        tables.print_peaks(peaks)
    for spec, why in doc["skipped"].items():
        print(f"  skipped {spec}: {why}")


def run_scenario(sc: dict[str, Any], opts: argparse.Namespace) -> Run:
    """Measures every repeat, server and cell of a scenario into a new run folder."""
    ctx = prepare(sc, opts)
    try:
        found = available_servers(ctx)
        baseline = "nginx" if "nginx" in found else found[0]
        ctx.doc["baseline"] = baseline
        calibrate(ctx, baseline)
        cells = matrix_cells(ctx.sc)
        repeats = ctx.doc["repeats"]
        points = ctx.sc["points"]
        ctx.progress = Progress(
            repeats * len(found) * len(cells) * len(load_points(ctx))
            + len(found) * len(cells) * sum(1 for p in points if p in ("memory", "cache"))
            + len(found) * (repeats - 1) * ("memory" in points))
        budget = ctx.doc["rounds"]["budget_s"]
        deadline = time.monotonic() + float(budget) if budget else math.inf
        for repeat in range(repeats):
            for spec in found:
                for cell in cells:
                    measure_cell(ctx, spec, cell, repeat)
        extra_rounds(ctx, found, cells, baseline, deadline)
        finish(ctx, baseline)
        return ctx.run
    except KeyboardInterrupt:
        ctx.doc["interrupted"] = True
        print("\nrun: interrupted; servers stopped, rows so far kept", file=sys.stderr, flush=True)
        INTERRUPT_REPORTED.append(True)
        raise
    finally:
        ctx.run.write_manifest(ctx.doc)
        ctx.run.close()
        print(f"run: results in {ctx.run.dir}", flush=True)
