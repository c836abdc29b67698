"""Validity and statistics: what makes one run invalid (errors, steal, background load, listen
overflows, a missed offered rate, a client-bound closed loop), and the summaries that take the
median of the repeats, their spread, and say per metric whether the figure is valid and why not.

PRECISION states, per kind of metric, how wide its 95% interval (intervals.py) may be before the
figure is invalid, with the reason; precision_problem applies it. (The summaries below still
judge max - min over the repeats; issue 26 moves them to the intervals.)

compare.py summarizes cells (one per server, kind and repeat); run.py summarizes rows (one per
server, cell parameters, point and repeat, as written to results.jsonl).
"""

import json
import re
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from .intervals import Interval, mean_interval, ratio_interval

MAX_SPREAD = 0.15
MAX_RATE_SHORTFALL = 0.02
MAX_STEAL = 0.02
# CPU used by everything else on the machine during a window, in CPUs: another build or test on
# a shared 2-CPU machine takes CPU from the server or the client without showing as steal.
MAX_BACKGROUND_CPUS = 0.25
SATURATED_CPU = 0.90


def cell_problems(cell: dict[str, Any], server: object = None) -> list[str]:
    """Why one run (a cell of compare.py's or run.py's) is not valid; empty when it is. `server`
    is not used (kept for callers that pass it)."""
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
            problems.append(f"achieved {cell['achieved_rate']:.0f}/s of "
                            f"{cell['offered_rate']:.0f}/s")
    if cell["kind"] in ("saturation", "closed") and cell["server_cpu_util"] < SATURATED_CPU:
        problems.append(f"client-bound (server CPU {cell['server_cpu_util']:.0%})")
    elif cell["kind"] == "closed" and cell["client_cpu_util"] >= SATURATED_CPU:
        # One request in flight per connection: the client's own CPU caps the rate as much as
        # the server's does, so this is no measure of the server alone.
        problems.append(f"client-bound (client CPU {cell['client_cpu_util']:.0%}, "
                        f"server CPU {cell['server_cpu_util']:.0%})")
    return problems


def merge_reasons(reasons: list[str], runs: int) -> list[str]:
    """'steal 14%', 'steal 35%' -> 'steal 14-35% in 2 of 3 runs'."""
    kinds: dict[str, list[list[float]]] = {}
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


def median_and_spread(values: list[float]) -> tuple[float, float]:
    """The median of the repeats and their spread, (max - min) / median (0 for a zero median)."""
    median = statistics.median(values)
    return median, (max(values) - min(values)) / median if median else 0.0


# compare.py: the metrics of each kind of cell.
METRICS = {
    "saturation": ["rps", "server_total_us"],
    "closed": ["rps"],
    "fixed": ["server_user_us", "server_user_net_us", "server_user_above_floor_us",
              "server_sys_us", "server_total_us", "client_user_us",
              "client_sys_us", "syscalls_per_request", "perf_syscalls_per_request",
              "ctx_per_request", "p50_us", "p99_us"],
}


def summarize_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """compare.py: median, spread and validity per (server, kind, metric)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in cells:
        out.setdefault((cell["server"], cell["kind"]), []).append(cell)
    summary = []
    for (server, kind), group in out.items():
        for metric in METRICS[kind]:
            values = [c[metric] for c in group if c.get(metric) is not None]
            if not values:
                continue
            median, spread = median_and_spread(values)
            problems = [p for c in group for p in c["invalid"]]
            if metric == "server_user_above_floor_us":
                problems += [p for c in group for p in c.get("floor_invalid", [])]
            reasons = merge_reasons(problems, len(group))
            if len(values) >= 2 and spread > MAX_SPREAD and metric not in ("p99_us",):
                reasons.append(f"spread {spread:.0%}")
            if kind == "closed" and any(r.startswith("client-bound") for r in reasons):
                reasons = ([r for r in reasons if not r.startswith("client-bound")]
                           + ["client-bound"])
            summary.append({"server": server, "kind": kind, "metric": metric, "median": median,
                            "spread": spread, "n": len(values), "values": values,
                            "valid": not reasons, "why_invalid": reasons})
    return summary


def _cpu(side: str, part: str | None = None) -> Callable[[dict[str, Any]], Any]:
    def get(r: dict[str, Any]) -> Any:
        if not r.get("cpu_us_per_req"):
            return None
        cpu = r["cpu_us_per_req"][side]
        return cpu[part] if part else cpu["user"] + cpu["sys"]
    return get


def _nested(key: str, inner: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: r[key][inner] if r.get(key) else None


# run.py: the metrics of a row, by name in summary.json.
ROW_METRICS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "rps": lambda r: r.get("rps"),
    "server_cpu_us": _cpu("server"),
    "server_user_us": _cpu("server", "user"),
    "client_cpu_us": _cpu("client"),
    "syscalls_per_req": lambda r: r.get("syscalls_per_req"),
    "ctx_switches_per_req": lambda r: r.get("ctx_switches_per_req"),
    "allocs_per_req": lambda r: r.get("allocs_per_req"),
    "p50_us": _nested("latency_us", "p50"),
    "p99_us": _nested("latency_us", "p99"),
    "user_kb_per_conn": _nested("mem_per_conn", "user_kb"),
    "kernel_stack_kb_per_conn": _nested("mem_per_conn", "kernel_stack_kb"),
    "instructions_per_req": lambda r: r.get("instructions_per_req"),
}


def group_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Rows by (server, params as sorted JSON, point), in the order first seen."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["server"], json.dumps(r["params"], sort_keys=True), r["point"])
        groups.setdefault(key, []).append(r)
    return groups


def summarize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """run.py: median and validity per (server, params, point, metric), like summarize_cells."""
    out = []
    for (server, params, point), group in group_rows(rows).items():
        reasons = merge_reasons([r["invalid_reason"] for r in group if r["invalid_reason"]],
                                len(group))
        for name, get in ROW_METRICS.items():
            values = [v for v in (get(r) for r in group if r.get("rps") is not None or
                                  r["point"] in ("memory", "cache")) if v is not None]
            if not values:
                continue
            median, spread = median_and_spread(values)
            why = list(reasons)
            if len(values) >= 2 and spread > MAX_SPREAD and name not in ("p99_us", "p50_us"):
                why.append(f"spread {spread:.0%}")
            out.append({"server": server, "params": json.loads(params), "point": point,
                        "metric": name, "median": median, "spread": spread, "n": len(values),
                        "valid": not why, "why_invalid": why})
    return out


# Validity from precision (issue 26): a metric is invalid when its 95% interval (intervals.py) is
# wider than a share of its value, one share per kind of metric; a small count is judged on its
# absolute width instead. Each reason names only the metrics of its own kind.
@dataclass(frozen=True)
class Precision:
    """At most `share` of the value for high - low; or, when `absolute` is set, at most that
    width in the metric's own unit whatever the share (the looser of the two)."""

    share: float
    absolute: float | None
    reason: str


PRECISION: dict[str, Precision] = {
    "throughput": Precision(0.10, None,
                            "requests per second: two runs must agree within 10% (issue 26's "
                            "test-retest target), which an interval spanning more than 10% of "
                            "the value cannot promise"),
    "cpu_total": Precision(0.10, None,
                           "total CPU per request (user + system): the scheduler's exact run "
                           "time, so its width is only round-to-round variation; held to the "
                           "10% within which two runs must agree"),
    "cpu_split": Precision(0.20, None,
                           "user or system CPU per request alone: on a tick-sampled kernel the "
                           "split of the exact total is an estimate (said once in the table "
                           "header and the manifest), so its interval may span 20%"),
    "syscalls": Precision(0.10, None,
                          "system calls per request: nearly fixed by the code path for each "
                          "request, so a width above 10% means windows that do not line up"),
    "ctx_switches": Precision(0.25, 0.05,
                              "context switches per request: an event loop makes about 0.1 "
                              "per request, where a few hundred switches in a window move the "
                              "share a lot; a width of 0.05 per request (one in 20 requests) "
                              "is precise enough, and above about 0.2 per request the 25% share "
                              "governs"),
    "latency_median": Precision(0.20, None,
                                "median latency (p50): set by the scheduler's wake-ups on a "
                                "shared machine, so its interval may span 20%"),
    "latency_tail": Precision(0.50, None,
                              "tail latency (p99): a few slow requests per window decide it, "
                              "so it varies more than the median; its interval may span 50% "
                              "(a tail is compared only at 1.5x or more), and a tail that does "
                              "not repeat is flagged like any other figure"),
    "count": Precision(0.05, None,
                       "allocations or instructions per request: counted, not timed, so they "
                       "repeat to within 5% when the same requests were served"),
    "memory": Precision(0.10, None,
                        "memory per connection: a slope between two connection counts, held to "
                        "10%"),
}

# The kind of each metric, by its name in compare.py's and run.py's summaries.
METRIC_KIND: dict[str, str] = {
    "rps": "throughput",
    "server_total_us": "cpu_total", "server_cpu_us": "cpu_total", "client_cpu_us": "cpu_total",
    "server_user_us": "cpu_split", "server_user_net_us": "cpu_split",
    "server_user_above_floor_us": "cpu_split", "server_sys_us": "cpu_split",
    "client_user_us": "cpu_split", "client_sys_us": "cpu_split",
    "syscalls_per_request": "syscalls", "perf_syscalls_per_request": "syscalls",
    "syscalls_per_req": "syscalls",
    "ctx_per_request": "ctx_switches", "ctx_switches_per_req": "ctx_switches",
    "p50_us": "latency_median", "p99_us": "latency_tail",
    "allocs_per_req": "count", "instructions_per_req": "count",
    "user_kb_per_conn": "memory", "kernel_stack_kb_per_conn": "memory",
}


def precision_of(metric: str) -> Precision:
    """The precision a metric is held to (KeyError for a metric with no stated precision)."""
    return PRECISION[METRIC_KIND[metric]]


def max_width(metric: str, value: float) -> float:
    """The widest interval (high - low) that a valid `metric` of this value may have."""
    p = precision_of(metric)
    width = p.share * abs(value)
    return max(width, p.absolute) if p.absolute is not None else width


def precision_problem(metric: str, interval: Interval) -> str | None:
    """Why a metric's interval is too wide for its kind, or None when it is precise enough.
    One round says nothing about repeatability but is not flagged here (memory and instruction
    points are measured once); an unbounded ratio is."""
    if interval.n < 2:
        return None
    if interval.low is None or interval.high is None:
        return f"no interval ({interval.method})"
    width = interval.high - interval.low
    limit = max_width(metric, interval.estimate)
    if width <= limit:
        return None
    p = precision_of(metric)
    if p.absolute is not None and limit == p.absolute:
        return (f"interval {width:.3g} wide over {interval.n} rounds "
                f"(at most {p.absolute:g} per request)")
    share = interval.relative_width()
    return (f"interval {share:.0%} of the value over {interval.n} rounds "
            f"(at most {p.share:.0%})")


def _by_repeat(group: list[dict[str, Any]], metric: str) -> dict[int, float]:
    """A metric of run.py's rows of one (server, params, point), by repeat (the round)."""
    get = ROW_METRICS[metric]
    out: dict[int, float] = {}
    for r in group:
        if r.get("rps") is None and r["point"] not in ("memory", "cache"):
            continue  # a failed measurement: no figures
        value = get(r)
        if value is not None:
            if r["repeat"] in out:
                raise ValueError(f"two rows of repeat {r['repeat']} for {r['server']} "
                                 f"{r['point']}")
            out[r["repeat"]] = float(value)
    return out


def row_interval(group: list[dict[str, Any]], metric: str) -> Interval | None:
    """The mean of a metric over run.py's rows of one (server, params, point) and its 95%
    interval; None when no row has the metric."""
    values = _by_repeat(group, metric)
    return mean_interval([values[k] for k in sorted(values)]) if values else None


def row_ratio_interval(group: list[dict[str, Any]], baseline: list[dict[str, Any]],
                       metric: str) -> Interval | None:
    """A metric's ratio to the baseline's over the rounds both measured (paired by repeat: the
    runner interleaves the servers within each repeat) and its 95% interval; None when they
    share no round."""
    ours, theirs = _by_repeat(group, metric), _by_repeat(baseline, metric)
    rounds = sorted(set(ours) & set(theirs))
    if not rounds:
        return None
    return ratio_interval([ours[k] for k in rounds], [theirs[k] for k in rounds])
