"""Validity and statistics: what makes one run invalid (errors, steal, background load, listen
overflows, a missed offered rate, a client-bound closed loop), and the summaries that give each
metric the mean of its rounds with a 95% interval (intervals.py), its ratio to the baseline over
the paired rounds with that ratio's interval, and whether the figure is valid and why not.

A figure is invalid when a problem of one of its runs affects its kind of metric (REASON_SCOPES:
a client-bound closed loop marks its rate, not its system calls per request), or when its
interval reaches further from its mean than its kind's PRECISION allows (each with its reason:
±10% for most, from the runs' test-retest target of agreeing within 10%). Steal and background load
disturb a round rather than describe the server: such a round is left out of the figures it
affects (said in the summary's "notes") and the runner measures more rounds where intervals are
still wide (runner.extra_rounds).

compare.py summarizes cells (one per server, kind and repeat); run.py summarizes rows (one per
server, cell parameters, point and repeat, as written to results.jsonl). Both summaries carry
mean, low, high, method, n, values, ratio, ratio_low, ratio_high, valid, reasons (why_invalid is
the same list, for older readers), notes, and median and spread of the same rounds for readers
of older summaries.
"""

import json
import re
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from .intervals import Interval, mean_interval, ratio_interval

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


# compare.py: the metrics of each kind of cell.
METRICS = {
    "saturation": ["rps", "server_total_us"],
    "closed": ["rps"],
    "fixed": ["server_user_us", "server_user_net_us", "server_user_above_floor_us",
              "server_sys_us", "server_total_us", "client_user_us",
              "client_sys_us", "syscalls_per_request", "perf_syscalls_per_request",
              "ctx_per_request", "p50_us", "p99_us"],
}


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


# Validity from precision (issue 26): a metric is invalid when its 95% interval (intervals.py)
# reaches further from its mean than a share of the value, one share per kind of metric: the same
# "±" the tables print beside each figure, so a reader can check a '!' by eye. A small count is
# judged on its absolute reach instead. Each reason names only the metrics of its own kind.
#
# Why ±10% for most kinds: the runs' test-retest target (issue 26) is two runs agreeing within
# 10%. When rounds vary independently, a mean known to ±10% from 5 rounds has a standard error of
# 10% / 2.78 (Student's t, 4 degrees of freedom) = 3.6% of the value, the difference of two such
# means has sqrt(2) x 3.6% = 5.1%, and 1.96 x 5.1% = 10%: two runs agree within 10% 95 times in
# 100; with 3 or 4 rounds the same ±10% means a smaller standard error (t is larger), so more.
# A wider interval cannot promise that agreement. What varies between runs but not between the
# rounds of one run (the host slower all afternoon) no interval sees: compare_runs.py shows it.
TEST_RETEST = 0.10


@dataclass(frozen=True)
class Precision:
    """A valid figure's 95% interval reaches at most `share` of its value either side of the
    mean; or, when `absolute` is set, at most that far either side in the metric's own unit
    whatever the share (the looser of the two)."""

    share: float
    absolute: float | None
    reason: str


PRECISION: dict[str, Precision] = {
    "throughput": Precision(TEST_RETEST, None,
                            "requests per second: held to the runs' test-retest target: a "
                            "mean known to ±10% (95%, from 3-5 rounds) is one that another run "
                            "matches within 10% 95 times in 100 (see TEST_RETEST)"),
    "cpu_total": Precision(TEST_RETEST, None,
                           "total CPU per request (user + system): the scheduler's exact run "
                           "time, so its interval is only round-to-round variation; held to "
                           "the same test-retest target as the rate"),
    "cpu_split": Precision(TEST_RETEST, 0.5,
                           "user or system CPU per request alone: the total is exact, but a "
                           "tick-sampled kernel (said once in the table header and the "
                           "manifest) splits it by which mode each 4 ms tick (HZ=250) landed "
                           "in; a window of a few hundred ticks of server CPU at 10-20,000 "
                           "requests/s moves the split by a few tenths of a us per request "
                           "from round to round, so ±0.5 us per request is that sampling, not "
                           "a server that does not repeat; above 5 us per request the ±10% "
                           "share governs"),
    "syscalls": Precision(TEST_RETEST, 0.025,
                          "system calls per request: set by the code path and by how many "
                          "requests each wake-up finds; held to the test-retest target, and "
                          "below 0.25 per request (io_uring's batched io_uring_enter, a "
                          "pipelined load) to ±0.025 per request (one call in 40 requests), "
                          "since a share of a figure near zero is no measure of precision"),
    "ctx_switches": Precision(TEST_RETEST, 0.025,
                              "context switches per request: an event loop makes about 0.1-0.2 "
                              "per request, where a few hundred switches in a window move the "
                              "share a lot; ±0.025 per request (one in 40 requests) is precise "
                              "enough, and above 0.25 per request the ±10% share governs"),
    "latency_median": Precision(TEST_RETEST, None,
                                "median latency (p50): held to the test-retest target like the "
                                "rate; it is set by the scheduler's wake-ups on a shared "
                                "machine, so it is flagged more often"),
    "latency_tail": Precision(0.25, None,
                              "tail latency (p99): a few slow requests per window decide it, "
                              "so it varies more than the median; a tail is compared only at "
                              "1.5x or more, which ±25% still decides, and a tail that does "
                              "not repeat to ±25% is flagged like any other figure"),
    "count": Precision(0.05, 0.01,
                       "allocations or instructions per request: counted, not timed, so they "
                       "repeat to ±5% when the same requests were served; a figure near zero "
                       "(the pooled server's allocations) to ±0.01 per request (one in 100 "
                       "requests)"),
    "memory": Precision(TEST_RETEST, None,
                        "memory per connection: a slope between two connection counts, held to "
                        "the test-retest target"),
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
    "p90_us": "latency_tail", "p999_us": "latency_tail",
    "allocs_per_req": "count", "instructions_per_req": "count",
    "user_kb_per_conn": "memory", "kernel_stack_kb_per_conn": "memory",
}


def precision_of(metric: str) -> Precision:
    """The precision a metric is held to (KeyError for a metric with no stated precision)."""
    return PRECISION[METRIC_KIND[metric]]


def max_reach(metric: str, value: float) -> float:
    """How far either side of its mean the interval of a valid `metric` of this value may
    reach (the ± of the tables)."""
    p = precision_of(metric)
    reach = p.share * abs(value)
    return max(reach, p.absolute) if p.absolute is not None else reach


def agrees(metric: str, a: float, b: float) -> bool:
    """Whether two runs' figures of a metric agree within the test-retest target: b / a within
    10% of 1, or, for a kind judged on its absolute precision, b - a within that precision (two
    context-switch counts of 0.00002 and 0.00009 per request are both none)."""
    if a and abs(b / a - 1) <= TEST_RETEST + 1e-12:
        return True
    if a == b:
        return True
    kind = METRIC_KIND.get(metric)
    absolute = PRECISION[kind].absolute if kind else None
    return absolute is not None and abs(b - a) <= absolute + 1e-12


def precision_problem(metric: str, interval: Interval) -> str | None:
    """Why a metric's interval reaches too far from its mean for its kind, or None when it is
    precise enough. One round says nothing about repeatability but is not flagged here (a
    point measured once has no interval); an unbounded ratio is."""
    if interval.n < 2:
        return None
    if interval.low is None or interval.high is None:
        return f"no interval ({interval.method})"
    reach = (interval.high - interval.low) / 2
    limit = max_reach(metric, interval.estimate)
    if reach <= limit:
        return None
    p = precision_of(metric)
    if p.absolute is not None and limit == p.absolute:
        return (f"interval ±{reach:.3g} over {interval.n} rounds "
                f"(at most ±{p.absolute:g} per request)")
    share = (interval.relative_width() or 0.0) / 2
    return (f"interval ±{share:.0%} of the value over {interval.n} rounds "
            f"(at most ±{p.share:.0%})")


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


# A reason marks only the kinds of metric it affects (issue 26): a client-bound closed loop
# says nothing about the cost of each request it served. Matched on cell_problems' wording; a
# reason not listed here (a failed run, a server that died) marks every metric.
TIMED = ("throughput", "cpu_total", "cpu_split", "latency_median", "latency_tail",
         "ctx_switches")
EVERY_KIND = tuple(PRECISION)


@dataclass(frozen=True)
class Scope:
    """The kinds of metric a run's problem marks; `transient`: a disturbance of the round
    (left out, not held against the server); `symptom`: what a disturbance of the same round
    also causes (the server short of CPU misses the rate or leaves the client idle), so in a
    disturbed round it is left out with the round."""

    pattern: str
    kinds: tuple[str, ...]
    transient: bool
    reason: str
    symptom: bool = False


REASON_SCOPES = [
    Scope(r"^[0-9]+ errors$", EVERY_KIND, False,
          "failed requests change the rate, the latency and every figure per request"),
    Scope(r"^steal ", TIMED, True,
          "time stolen by the hypervisor slows whatever ran (rate, CPU time, latency, "
          "involuntary switches), not what the code path counts (system calls, allocations); "
          "a disturbance of that round, not of the server: the round is left out of the "
          "figures it affects and another round measured in its place"),
    Scope(r"^background load ", TIMED, True,
          "other processes' CPU on the machine preempts the server or the client: as steal"),
    Scope(r"^[0-9]+ listen overflows$", ("throughput", "latency_median", "latency_tail"), False,
          "a dropped SYN is retried a second later: it delays requests and lowers the rate, "
          "the cost of each request served is unchanged"),
    Scope(r"^achieved ", EVERY_KIND, False,
          "the server did not keep up with the offered rate: every figure of the point was "
          "measured under another load than the other servers' (in a round disturbed by "
          "steal or background load, that disturbance's doing: left out with the round)",
          symptom=True),
    Scope(r"^client-bound", ("throughput", "latency_median", "latency_tail"), False,
          "the client, not the server, capped the rate: the rate and the waiting say nothing "
          "of the server; what each request served cost it still does (in a disturbed round, "
          "the server lost its CPU to the disturbance: left out with the round)",
          symptom=True),
]


def scope_of(reason: str) -> Scope | None:
    """The scope of one run's problem ('floor: ' problems are the floor's own), or None for a
    reason that marks every metric."""
    text = reason.removeprefix("floor: ")
    return next((sc for sc in REASON_SCOPES if re.match(sc.pattern, text)), None)


def affects(reason: str, metric: str) -> bool:
    """Whether a run's problem makes `metric` of that run invalid (or, for a transient one,
    leaves that round out of it)."""
    sc = scope_of(reason)
    kind = METRIC_KIND.get(metric)
    return sc is None or kind is None or kind in sc.kinds


def is_transient(reason: str) -> bool:
    sc = scope_of(reason)
    return sc is not None and sc.transient


def is_symptom(reason: str) -> bool:
    sc = scope_of(reason)
    return sc is not None and sc.symptom


@dataclass
class Round:
    """One round (repeat) of a metric: its value (None when the run gave no figure) and the
    run's problems."""

    repeat: int
    value: float | None
    problems: list[str]


def metric_summary(metric: str, rounds: list[Round]) -> dict[str, Any] | None:
    """Mean, 95% interval, validity and reasons of one metric over its rounds; None when no
    round has a figure. The ratio keys are None here: with_ratio fills them.

    A problem marks the metric only when it affects the metric's kind (REASON_SCOPES). A
    transient one (steal, background load) leaves that round out instead, said in "notes" (the
    rounds with a value are all used when every one was disturbed, and then the figure is
    invalid); any other makes the metric invalid, as an interval reaching further than its kind's
    PRECISION does. A symptom of a disturbance (a missed rate, a client-bound point) in a
    disturbed round goes with that round."""
    kept: list[Round] = []
    disturbed: list[Round] = []
    lasting: list[str] = []
    why_disturbed: list[str] = []
    for r in rounds:
        mine = [p for p in r.problems if affects(p, metric)]
        # A missed rate or a client-bound point in a round that steal or other processes
        # disturbed is that disturbance's doing (also for metrics the disturbance spares).
        round_disturbed = any(is_transient(p) for p in r.problems)
        disturbing = [p for p in mine if is_transient(p) or (round_disturbed and is_symptom(p))]
        if r.value is None:
            lasting.append("; ".join(mine))
        elif disturbing:
            lasting.append("; ".join(p for p in mine if p not in disturbing))
            disturbed.append(r)
            why_disturbed.append("; ".join(disturbing))
        else:
            lasting.append("; ".join(mine))
            kept.append(r)
    if not kept and not disturbed:
        return None
    runs = len(rounds)
    reasons = merge_reasons([x for x in lasting if x], runs)
    notes: list[str] = []
    transient = merge_reasons(why_disturbed, runs)
    if not kept:
        kept, disturbed = disturbed, []
        reasons += transient
    elif disturbed:
        notes.append(f"{len(disturbed)} of {runs} rounds left out: {'; '.join(transient)}")
    values = [float(r.value) for r in kept if r.value is not None]
    iv = mean_interval(values)
    imprecise = precision_problem(metric, iv) if metric in METRIC_KIND else None
    if imprecise:
        reasons.append(imprecise)
    elif len(values) < 2 <= len(values) + len(disturbed):
        # Measured more than once, but only one round was undisturbed: no interval to judge.
        reasons.append(f"no interval (1 undisturbed round of {len(values) + len(disturbed)})")
    out: dict[str, Any] = {
        "metric": metric, "mean": iv.estimate, "low": iv.low, "high": iv.high,
        "method": iv.method, "n": iv.n, "values": values,
        "repeats": [r.repeat for r in kept if r.value is not None],
        # Kept for readers of older summaries: the median of the same rounds (not the headline
        # figure) and their spread, (max - min) / mean (no longer a validity rule).
        "median": statistics.median(values),
        "spread": (max(values) - min(values)) / abs(iv.estimate) if iv.estimate else 0.0,
        "ratio": None, "ratio_low": None, "ratio_high": None,
        "valid": not reasons, "reasons": reasons, "why_invalid": reasons, "notes": notes}
    return out


def ratio_of(s: dict[str, Any], base: dict[str, Any]) -> Interval | None:
    """A summary entry's ratio to the baseline's entry of the same metric, over the rounds both
    kept, paired by repeat (the runs interleave the servers within each repeat): the interval
    of the ratio itself (Kalibera and Jones), not two separate spreads. None when they share no
    round or the baseline's mean over them is zero."""
    theirs = dict(zip(base.get("repeats") or [], base.get("values") or []))
    pairs = [(a, theirs[k]) for k, a in zip(s.get("repeats") or [], s.get("values") or [])
             if k in theirs]
    if not pairs or statistics.fmean(b for _, b in pairs) == 0:
        return None
    return ratio_interval([a for a, _ in pairs], [b for _, b in pairs])


def with_ratio(s: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """Fills a summary entry's ratio, ratio_low, ratio_high (and ratio_method, ratio_n) against
    the baseline's entry; they stay None without one."""
    r = ratio_of(s, base) if base is not None else None
    if r is not None:
        s.update(ratio=r.estimate, ratio_low=r.low, ratio_high=r.high, ratio_method=r.method,
                 ratio_n=r.n)
    return s


def _rounds_of_cells(group: list[dict[str, Any]], metric: str) -> list[Round]:
    out: list[Round] = []
    for c in group:
        problems = list(c["invalid"])
        if metric == "server_user_above_floor_us":
            problems += c.get("floor_invalid", [])
        value = c.get(metric)
        if value is not None or problems:
            out.append(Round(c.get("repeat", len(out)), None if value is None else float(value),
                             problems))
    return out


def summarize_cells(cells: list[dict[str, Any]],
                    baseline: str | None = None) -> list[dict[str, Any]]:
    """compare.py: mean, interval, ratio to the baseline and validity per (server, kind,
    metric)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in cells:
        out.setdefault((cell["server"], cell["kind"]), []).append(cell)
    summary = []
    for (server, kind), group in out.items():
        for metric in METRICS[kind]:
            s = metric_summary(metric, _rounds_of_cells(group, metric))
            if s is None:
                continue
            reasons = s["reasons"]
            if kind == "closed" and any(r.startswith("client-bound") for r in reasons):
                reasons = ([r for r in reasons if not r.startswith("client-bound")]
                           + ["client-bound"])
            s.update(reasons=reasons, why_invalid=reasons, valid=not reasons)
            summary.append({"server": server, "kind": kind, **s})
    by_key = {(s["server"], s["kind"], s["metric"]): s for s in summary}
    for s in summary:
        if baseline and s["server"] != baseline:
            with_ratio(s, by_key.get((baseline, s["kind"], s["metric"])))
    return summary


def rounds_of(group: list[dict[str, Any]], get: Callable[[dict[str, Any]], Any]) -> list[Round]:
    """The rounds of one metric (read from a row by `get`) over run.py's rows of one server,
    cell and point: failed rows as rounds without a value, with their reasons."""
    out: list[Round] = []
    for r in group:
        problems = r["invalid_reason"].split("; ") if r["invalid_reason"] else []
        measured = r.get("rps") is not None or r["point"] in ("memory", "cache")
        value = get(r) if measured else None
        if value is None and not problems:
            continue  # a metric this server has no counter for (nginx's system calls)
        out.append(Round(r["repeat"], None if value is None else float(value), problems))
    return out


def summarize_rows(rows: list[dict[str, Any]],
                   baseline: str | None = None) -> list[dict[str, Any]]:
    """run.py: mean, interval, ratio to the baseline's same cell and point, and validity per
    (server, params, point, metric), like summarize_cells."""
    out = []
    for (server, params, point), group in group_rows(rows).items():
        for name in ROW_METRICS:
            s = metric_summary(name, rounds_of(group, ROW_METRICS[name]))
            if s is not None:
                out.append({"server": server, "params": json.loads(params), "point": point,
                            **s})
    by_key = {(s["server"], json.dumps(s["params"], sort_keys=True), s["point"], s["metric"]): s
              for s in out}
    for s in out:
        if baseline and s["server"] != baseline:
            with_ratio(s, by_key.get((baseline, json.dumps(s["params"], sort_keys=True),
                                      s["point"], s["metric"])))
    return out


def is_precision_reason(reason: str) -> bool:
    """Whether a summary's reason is its interval being too wide (precision_problem's)."""
    return reason.startswith("interval ") or reason.startswith("no interval")
