"""iolab_plots: loads iolab run folders and draws every chart in one style.

Design. A run folder (written by bench/run.py and bench/micro/run_micro.py; results/README.md
has the schema) holds the machine's manifest, one harness row per server, cell, point and
repeat, the summary run.py computed from those rows (means, intervals, validity), and Google
Benchmark JSON. The notebooks each answer one question; this module does the mechanics, so a
notebook only loads, plots and explains:

- load() reads RESULTS, which is either one run folder or a folder of run folders (a reference
  machine, results/reference/<machine>/<scenario>/). NEEDS says what data each notebook wants
  (a scenario, points, micro suites); Results.find() picks the newest run that has it and
  missing() says in one line why a notebook has nothing to draw.
- A chart is always drawn from a tidy table: one row per bar or point with its value (the
  mean of the rounds), its 95% interval (lo, hi), the count, whether it is valid and why not
  (a run folder written before run.py gave intervals: the median and the min and max of the
  repeats). TABLES names the function that builds each chart's table from the run; save() writes
  that table as <chart>.csv beside <chart>.png and <chart>.svg and refuses a table the
  registered function does not reproduce. So every committed chart can be rebuilt from the
  committed rows and checked (tests/harness/regenerate_test.py compares the tables, not
  pixels).
- Validity is run.py's (the run's problems that affect the metric, an interval wider than its
  kind of metric allows: bench/iolab_bench/validity.py): taken from harness/summary.json where
  the metric is there, and worked out with run.py's own rules from the rows for the few
  metrics the summary does not carry (the user/sys split, the parts of memory per connection,
  cache misses). An invalid cell is drawn hatched
  and faded, with a numbered note carrying its reason; a cell without any figure (the server
  failed, or is a reference server without counters, or was not installed) keeps a
  placeholder that says why. Nothing is dropped.
- Titles name the machine (CPU model, CPU count, kernel) and the run (folder, git revision);
  every axis names its unit. SVGs are reproducible: svg.hashsalt is fixed and the metadata
  carries no date, so regenerating a reference chart leaves git clean.
"""

import json
import math
import os
import re
import statistics
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from iolab_bench import validity  # bench/ on PYTHONPATH: the limits and merge_reasons

ROOT = Path(__file__).resolve().parent.parent

COLUMNS = ["run", "x", "series", "value", "lo", "hi", "n", "valid", "reason"]
REFERENCES = ("nginx", "gin", "nethttp")
# The rule of run folders written before run.py gave intervals (issue 26): a metric whose
# repeats spread (max - min) / median over 15% was invalid, latency percentiles exempt.
OLD_MAX_SPREAD = 0.15
MAX_STEAL_PCT = 100.0 * validity.MAX_STEAL
NO_SPREAD_RULE = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")

# One colour per server everywhere, so a reader can follow a model from chart to chart. The
# references are dark and distinct from the hatched grey of invalid cells.
SERVER_COLORS = {
    "threads": "#4c72b0", "select": "#dd8452", "epoll_et": "#55a868", "pooled": "#8172b3",
    "io_uring": "#c44e52", "coro": "#937860", "nginx": "#222222", "gin": "#17becf",
    "nethttp": "#bcbd22",
}
SERIES_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
                 "#8c8c8c", "#ccb974", "#64b5cd"]
INVALID_HATCH = "///"
INVALID_EDGE = "#666666"


def apply_style() -> None:
    """The shared look; fixed svg.hashsalt makes SVG ids the same on every run."""
    plt.rcParams.update({
        "svg.hashsalt": "iolab",
        "svg.fonttype": "none",  # text stays text: smaller files, searchable
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "font.size": 10,
        "axes.titlesize": 12,
        "axes.labelsize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "axes.grid.axis": "y",
        "grid.alpha": 0.35,
        "legend.fontsize": 9,
        "legend.frameon": False,
        "hatch.linewidth": 0.8,
    })


apply_style()


class NoData(Exception):
    """Raised by a notebook's first cell when the results hold nothing it can draw."""


# ---------------------------------------------------------------------------------------------
# Loading


class Run:
    """One run folder: manifest, harness rows and summary, micro JSON (each optional)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.manifest = json.loads((self.path / "manifest.json").read_text())
        self.scenario = self.manifest.get("scenario", "?")
        rows_file = self.path / "harness" / "results.jsonl"
        self.rows = ([json.loads(line) for line in rows_file.read_text().splitlines()
                      if line.strip()] if rows_file.exists() else [])
        summary_file = self.path / "harness" / "summary.json"
        self.summary = json.loads(summary_file.read_text()) if summary_file.exists() else []
        self.micro = {}
        for f in sorted((self.path / "micro").glob("*.json")):
            doc = json.loads(f.read_text())
            if "benchmarks" in doc:  # micro/summary.json is run_micro.py's own record
                self.micro[f.stem] = doc
        micro_summary = self.path / "micro" / "summary.json"
        self.micro_record = (json.loads(micro_summary.read_text()) if micro_summary.exists()
                             else self.manifest.get("micro", {}))

    def points(self) -> set[str]:
        return {r["point"] for r in self.rows}

    def machine(self) -> str:
        """'Intel Xeon Platinum 8375C @ 2.90GHz, 2 CPUs, Linux 6.1.0-27-amd64'."""
        m = self.manifest
        cpu = re.sub(r"\((R|TM)\)|\bCPU\b", "", m.get("cpu_model") or "unknown CPU")
        cpu = re.sub(r"\s+", " ", cpu).strip()
        return f"{cpu}, {count_cpus(m.get('cpus_online', ''))} CPUs, Linux {m.get('kernel', '?')}"

    def label(self) -> str:
        m = self.manifest
        rev = m.get("git_revision") or "?"
        dirty = "+changes" if m.get("git_dirty") else ""
        started = (m.get("started") or "?")[:16].replace("T", " ")
        return f"run {self.name}, started {started} UTC, git {rev}{dirty}"

    def reference_machine(self) -> str | None:
        """The <machine> of results/reference/<machine>/<scenario>/, when this is one."""
        parts = self.path.resolve().parts
        if len(parts) >= 3 and parts[-3] == "reference":
            return parts[-2]
        return None


def count_cpus(online: str) -> int | str:
    """'0-1' -> 2, '0,2-3' -> 3."""
    total = 0
    for part in filter(None, online.split(",")):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total or "?"


class Results:
    """The runs under RESULTS (one run folder, or a folder of run folders, two levels deep)."""

    def __init__(self, root: str | Path) -> None:
        self.given = Path(root)
        self.root = self.given.resolve()
        if (self.root / "manifest.json").exists():
            folders = [self.root]
        else:
            folders = sorted(p.parent for p in self.root.glob("*/manifest.json"))
            folders += sorted(p.parent for p in self.root.glob("*/*/manifest.json"))
        self.runs = [Run(f) for f in folders]
        self.runs.sort(key=lambda r: (r.manifest.get("started") or "", r.name))

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def by_name(self, name: str) -> Run:
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(f"no run '{name}' under {self.root}")

    def find(self, points: Sequence[str] = (), scenarios: Sequence[str] | None = None,
             prefer: Sequence[str] = (), micro: bool = False) -> Run | None:
        """The newest run that has every one of `points` (and micro JSON if asked), among
        `scenarios` if given; runs of the `prefer` scenarios (in that order) come first."""
        fits = [r for r in self.runs
                if set(points) <= r.points() and (not micro or r.micro)
                and (scenarios is None or r.scenario in scenarios)]
        order = list(prefer or scenarios or ())

        def rank(r: Run) -> tuple[int, int]:
            return (order.index(r.scenario) if r.scenario in order else len(order),
                    -self.runs.index(r))
        return min(fits, key=rank) if fits else None

    def charts_dir(self) -> Path:
        return Path(os.environ.get("CHARTS") or self.root / "charts")


def load(results: str | Path | None = None) -> "Results":
    """The runs under `results`, else $RESULTS, else results/latest."""
    path = Path(results or os.environ.get("RESULTS") or ROOT / "results" / "latest")
    if not path.exists():
        raise NoData(f"no results at {path} (make bench writes results/latest)")
    found = Results(path)
    if not found.runs:
        raise NoData(f"no run folder (manifest.json) under {path}")
    return found


# ---------------------------------------------------------------------------------------------
# What each notebook needs


@dataclass
class Need:
    what: str
    points: tuple = ()
    scenarios: tuple | None = None
    prefer: tuple = ()
    micro: bool = False

    def find(self, results: "Results") -> Run | None:
        return results.find(self.points, self.scenarios, self.prefer, self.micro)


NEEDS = {
    "01-io-models": Need("models or quick run (saturation and fixed-rate rows)",
                         ("saturation", "fixed_rate"), ("models", "quick")),
    "02-latency": Need("models or quick run (fixed-rate rows)", ("fixed_rate",),
                       ("models", "quick")),
    "03-c10k": Need("c10k run", ("fixed_rate",), ("c10k",)),
    "04-syscalls-and-switches": Need("run with fixed-rate rows", ("fixed_rate",),
                                     prefer=("models", "quick", "pooling")),
    "05-cache": Need("run with cache points (callgrind: the cache or pooling scenario)", ("cache",),
                     prefer=("cache", "pooling")),
    "06-affinity": Need("affinity run", ("saturation", "fixed_rate"), ("affinity",)),
    "07-pooling": Need("pooling run", ("fixed_rate",), ("pooling",)),
    "08-memory-per-connection": Need("run with memory points (the c10k or pooling scenario)",
                                     ("memory",), prefer=("c10k", "pooling")),
    "09-micro": Need("run with Google Benchmark JSON (micro/*.json: make micro, make bench)",
                     micro=True, prefer=("micro", "quick")),
}


def missing(notebook: str, results: "Results") -> str | None:
    """None when `results` has what `notebook` needs, else the one-line reason."""
    need = NEEDS[notebook]
    if need.find(results) is None:
        return f"no {need.what} in {results.given}"
    return None


def run_for(notebook: str, results: "Results") -> Run:
    """The run a notebook draws from; raises NoData with the reason when there is none."""
    reason = missing(notebook, results)
    if reason:
        raise NoData(f"{notebook}: {reason}")
    run = NEEDS[notebook].find(results)
    if run is None:  # missing() found one: not reached
        raise NoData(f"{notebook}: no run")
    return run


# ---------------------------------------------------------------------------------------------
# Tables


def _cpu(r: dict[str, Any], who: str, part: str) -> float | None:
    c = r.get("cpu_us_per_req")
    if not c or c[who][part] is None:
        return None
    return c[who][part]


def _cpu_total(r: dict[str, Any], who: str) -> float | None:
    user, sys_ = _cpu(r, who, "user"), _cpu(r, who, "sys")
    return None if user is None or sys_ is None else user + sys_


def _lat(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: r["latency_us"][key] if r.get("latency_us") else None


def _mem(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: r["mem_per_conn"].get(key) if r.get("mem_per_conn") else None


# Every metric a chart may plot, read from one row; names match run.py's summary where it has
# them (so the summary's median and validity are used), the rest are worked out here.
METRICS = {
    "rps": lambda r: r.get("rps"),
    "server_cpu_us": lambda r: _cpu_total(r, "server"),
    "server_user_us": lambda r: _cpu(r, "server", "user"),
    "server_sys_us": lambda r: _cpu(r, "server", "sys"),
    "client_cpu_us": lambda r: _cpu_total(r, "client"),
    "syscalls_per_req": lambda r: r.get("syscalls_per_req"),
    "ctx_switches_per_req": lambda r: r.get("ctx_switches_per_req"),
    "allocs_per_req": lambda r: r.get("allocs_per_req"),
    "p50_us": _lat("p50"), "p90_us": _lat("p90"), "p99_us": _lat("p99"),
    "p999_us": _lat("p999"), "max_us": _lat("max"),
    "user_kb_per_conn": _mem("user_kb"),
    "kernel_stack_kb_per_conn": _mem("kernel_stack_kb"),
    "page_tables_kb_per_conn": _mem("page_tables_kb"),
    "pool_reserved_kb_per_conn": _mem("pool_reserved_kb"),
    "slab_kb_per_conn_both_ends": _mem("slab_kb_both_ends"),
    "tcp_mem_kb_per_conn_both_ends": _mem("tcp_mem_kb_both_ends"),
    "instructions_per_req": lambda r: r.get("instructions_per_req"),
    "d1_misses_per_req": lambda r: r.get("d1_misses_per_req"),
    "ll_misses_per_req": lambda r: r.get("ll_misses_per_req"),
}


def params_text(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


def _cells(run: Run, point: str) -> dict[Any, Any]:
    """{(server, params json): [rows]} for one point, in the order the run measured them."""
    cells: dict[Any, Any] = {}
    for r in run.rows:
        if r["point"] == point:
            cells.setdefault((r["server"], json.dumps(r["params"], sort_keys=True)), []).append(r)
    return cells


def _summary_entry(run: Run, server: str, params: dict[str, Any], point: str,
                   metric: str) -> dict[str, Any] | None:
    for s in run.summary:
        if (s["server"] == server and s["params"] == params and s["point"] == point
                and s["metric"] == metric):
            return s
    return None


def _no_figure_reason(server: str, group: list[dict[str, Any]], metric: str) -> str:
    reasons = [r["invalid_reason"] for r in group if r.get("invalid_reason")]
    if reasons:
        return "no measurement: " + "; ".join(validity.merge_reasons(reasons, len(group)))
    if server.partition(":")[0] in REFERENCES:
        return f"not counted: {server} is a reference server (no /stats counters)"
    return f"not measured: the rows carry no {metric}"


def cell_figure(run: Run, server: str, params: dict[str, Any], point: str, metric: str,
                group: list[dict[str, Any]]) -> tuple[float, float, float, int, bool, str]:
    """(value, lo, hi, n, valid, reason) of one cell: the mean, 95% interval and validity that
    run.py's summary gives (validity.metric_summary over the cell's rows, also for the metrics
    summary.json does not carry). A summary written before run.py gave intervals (it has medians,
    no "mean") is read as it was then: its median, the min and max of the repeats, and the
    spread rule for the metrics it does not carry."""
    get = METRICS[metric]
    measured = [r for r in group if r.get("rps") is not None or point in ("memory", "cache")]
    values = [v for v in (get(r) for r in measured) if v is not None]
    if not values:
        return (math.nan, math.nan, math.nan, 0, False, _no_figure_reason(server, group, metric))
    s = _summary_entry(run, server, params, point, metric)
    if any("mean" in e for e in run.summary):
        # run.py's own function over the rows: what summary.json says, and a chart that follows
        # its rows (regenerate_test changes a row under a chart).
        s = validity.metric_summary(metric, validity.rounds_of(group, get))
    if s is not None and "mean" in s:
        def bound(x: Any) -> float:
            return math.nan if x is None else float(x)
        return (s["mean"], bound(s["low"]), bound(s["high"]), s["n"], bool(s["valid"]),
                "; ".join(s["reasons"]))
    lo, hi = min(values), max(values)
    if s is not None:
        return (s["median"], lo, hi, s["n"], bool(s["valid"]), "; ".join(s["why_invalid"]))
    median = statistics.median(values)
    why = validity.merge_reasons(
        [r["invalid_reason"] for r in group if r.get("invalid_reason")], len(group))
    spread = (hi - lo) / median if median else 0.0
    if len(values) >= 2 and spread > OLD_MAX_SPREAD and metric not in NO_SPREAD_RULE:
        why.append(f"spread {spread:.0%}")
    return (median, lo, hi, len(values), not why, "; ".join(why))


def _axis_value(key: str | None, server: str, params: dict[str, Any]) -> Any:
    if key is None:
        return ""
    if key == "server":
        return server
    if key == "cell":
        return server + (f" {params_text(params)}" if params else "")
    return params.get(key, "")


def metric_table(run: Run, point: str, metric: str, x: str | None = "server",
                 series: str | None = None, where: dict[str, Any] | None = None,
                 series_name: str | None = None) -> pd.DataFrame:
    """One row per cell of `point`: x and series are 'server', 'cell' (server and params) or a
    parameter name; `where` keeps cells whose params include those items; `series_name` names
    the series when there is only one (e.g. 'user' in a stacked chart)."""
    rows = []
    for (server, params_json), group in _cells(run, point).items():
        params = json.loads(params_json)
        if where and any(params.get(k) != v for k, v in where.items()):
            continue
        value, lo, hi, n, valid, reason = cell_figure(run, server, params, point, metric, group)
        rows.append({"run": run.name, "x": _axis_value(x, server, params),
                     "series": series_name or _axis_value(series, server, params),
                     "value": value, "lo": lo, "hi": hi, "n": n, "valid": valid, "reason": reason})
    if x in ("server", "cell"):  # servers the run could not start: a placeholder each
        for server, why in skipped_servers(run).items():
            rows.append({"run": run.name, "x": server, "series": series_name or "",
                         "value": math.nan, "lo": math.nan, "hi": math.nan, "n": 0,
                         "valid": False, "reason": "not run: " + why.removeprefix(f"{server}: ")})
    return frame(rows)


# Keys of the manifest's "skipped" that are not servers (run.py --target skips points and
# server arguments it cannot apply).
NOT_SERVERS = ("fixed_rate", "saturation", "closed_loop", "memory", "cache", "server_args")


def skipped_servers(run: Run) -> dict[str, str]:
    return {k: v for k, v in (run.manifest.get("skipped") or {}).items() if k not in NOT_SERVERS}


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True) if tables else frame([])


TIME_UNITS_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def micro_table(run: Run, topic: str) -> pd.DataFrame:
    """One row per benchmark of a suite: wall-clock time per iteration in ns (the median
    aggregate when the suite ran repetitions, lo/hi over the repetitions). Invalid when the
    benchmark reported an error, the suite exited non-zero, or steal time went over the
    harness's limit during the micro run."""
    doc = run.micro[topic]
    record = run.micro_record or {}
    suite = (record.get("suites") or {}).get(topic, {})
    steal = record.get("steal_pct")
    common = []
    if suite.get("exit_status"):
        common.append(f"suite exited {suite['exit_status']}")
    if steal is not None and steal > MAX_STEAL_PCT:
        common.append(f"steal {steal:g}% during the micro run")
    iterations: dict[Any, Any] = {}
    medians: dict[Any, Any] = {}
    order: list[Any] = []
    for b in doc["benchmarks"]:
        name = b.get("run_name") or b["name"]
        if name not in order:
            order.append(name)
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            iterations.setdefault(name, []).append(b)
    rows = []
    for name in order:
        its = iterations.get(name, [])
        first = medians.get(name) or its[0]
        claims = " ".join(re.findall(r"\bC\d\d\b", first.get("label", "")))
        errors = [b.get("error_message", "error") for b in its if b.get("error_occurred")]
        times = [b["real_time"] * TIME_UNITS_NS[b["time_unit"]] for b in its
                 if not b.get("error_occurred")]
        if name in medians:
            value = medians[name]["real_time"] * TIME_UNITS_NS[medians[name]["time_unit"]]
        else:
            value = statistics.median(times) if times else math.nan
        why = common + errors
        rows.append({"run": run.name, "x": name + (f" [{claims}]" if claims else ""), "series": "",
                     "value": value, "lo": min(times) if times else math.nan,
                     "hi": max(times) if times else math.nan, "n": len(times),
                     "valid": not why, "reason": "; ".join(why)})
    return frame(rows)


# The chart registry: name -> (notebook, function(results) -> table). Notebooks build their
# tables through table(), and save() checks the table against the registered function.

def _t_by_server(notebook: str, point: str, metric: str,
                 series_name: str | None = None) -> Callable[["Results"], pd.DataFrame]:
    return lambda res: metric_table(run_for(notebook, res), point, metric, series_name=series_name)


def _t_stacked(notebook: str, point: str,
               parts: Sequence[tuple[str, str]]) -> Callable[["Results"], pd.DataFrame]:
    return lambda res: concat([metric_table(run_for(notebook, res), point, metric, series_name=name)
                               for name, metric in parts])


def _t_latency(res: "Results") -> pd.DataFrame:
    run = run_for("02-latency", res)
    tables = []
    for label, metric in (("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"),
                          ("p99.9", "p999_us"), ("max", "max_us")):
        t = metric_table(run, "fixed_rate", metric, x=None, series="cell")
        t["x"] = label
        tables.append(t)
    return concat(tables)


def memory_params(run: Run) -> dict[str, Any]:
    """The cell whose memory points a chart shows. A run measures memory per connection once
    per server and cell (c10k repeats it in every idle_connections cell, with the same two
    connection counts each time): the first cell stands for the run, and the chart says which."""
    first = next(r for r in run.rows if r["point"] == "memory")
    return first["params"]


def memory_note(run: Run) -> str:
    """Where the memory figures were measured, for the chart's notes."""
    params = memory_params(run)
    rows = [r for r in run.rows if r["point"] == "memory" and r["params"] == params
            and r.get("mem_per_conn")]
    counts = sorted({(r["mem_per_conn"]["idle_from"], r["mem_per_conn"]["idle_to"]) for r in rows})
    between = ", ".join(f"{a} and {b}" for a, b in counts) or "?"
    cell = f" in the cell {params_text(params)}" if params else ""
    return f"slope between {between} idle keep-alive connections{cell}"


def _t_memory(res: "Results", parts: Sequence[tuple[str, str]]) -> pd.DataFrame:
    run = run_for("08-memory-per-connection", res)
    where = memory_params(run)
    return concat([metric_table(run, "memory", metric, where=where, series_name=name)
                   for name, metric in parts])


CPU_PARTS = (("user", "server_user_us"), ("system", "server_sys_us"))
MEMORY_OWN = (("user RSS", "user_kb_per_conn"), ("pool reserved", "pool_reserved_kb_per_conn"),
              ("kernel stack", "kernel_stack_kb_per_conn"),
              ("page tables", "page_tables_kb_per_conn"))
MEMORY_BOTH = (("slab", "slab_kb_per_conn_both_ends"),
               ("TCP buffers", "tcp_mem_kb_per_conn_both_ends"))
MICRO_TOPICS = ("syscalls", "switch", "coro_switch", "cache", "ipc", "alloc", "http")

TABLES: dict[str, tuple[str | None, Any]] = {
    "01-saturation-rps": ("01-io-models", _t_by_server("01-io-models", "saturation", "rps")),
    "01-cpu-per-request": ("01-io-models", _t_stacked("01-io-models", "fixed_rate", CPU_PARTS)),
    "02-latency-percentiles": ("02-latency", _t_latency),
    "03-cpu-vs-idle": ("03-c10k", lambda res: metric_table(
        run_for("03-c10k", res), "fixed_rate", "server_cpu_us", x="idle_connections",
        series="server")),
    "03-p99-vs-idle": ("03-c10k", lambda res: metric_table(
        run_for("03-c10k", res), "fixed_rate", "p99_us", x="idle_connections", series="server")),
    "04-syscalls-per-request": ("04-syscalls-and-switches", lambda res: metric_table(
        run_for("04-syscalls-and-switches", res), "fixed_rate", "syscalls_per_req", x="cell")),
    "04-ctx-switches-per-request": ("04-syscalls-and-switches", lambda res: metric_table(
        run_for("04-syscalls-and-switches", res), "fixed_rate", "ctx_switches_per_req", x="cell")),
    "05-instructions-per-request": ("05-cache", lambda res: metric_table(
        run_for("05-cache", res), "cache", "instructions_per_req", x="cell")),
    "05-cache-misses-per-request": ("05-cache", lambda res: concat([metric_table(
        run_for("05-cache", res), "cache", metric, x="cell", series_name=name)
        for name, metric in (("D1 misses (data)", "d1_misses_per_req"),
                             ("LL misses (data and instructions)", "ll_misses_per_req"))])),
    "06-affinity-rps": ("06-affinity", lambda res: metric_table(
        run_for("06-affinity", res), "saturation", "rps", x="placement", series="server")),
    "06-affinity-cpu": ("06-affinity", lambda res: metric_table(
        run_for("06-affinity", res), "fixed_rate", "server_cpu_us", x="placement",
        series="server")),
    "07-allocs-per-request": ("07-pooling",
                              _t_by_server("07-pooling", "fixed_rate", "allocs_per_req")),
    "07-cpu-per-request": ("07-pooling", _t_stacked("07-pooling", "fixed_rate", CPU_PARTS)),
    "08-memory-own": ("08-memory-per-connection", lambda res: _t_memory(res, MEMORY_OWN)),
    "08-memory-both-ends": ("08-memory-per-connection", lambda res: _t_memory(res, MEMORY_BOTH)),
}
for _topic in MICRO_TOPICS:
    TABLES[f"09-micro-{_topic}"] = (
        "09-micro", lambda res, t=_topic: micro_table(run_for("09-micro", res), t))


def micro_topics(results: "Results") -> list[str]:
    """The suites of the run 09-micro draws from that have a registered chart."""
    run = run_for("09-micro", results)
    return [t for t in MICRO_TOPICS if t in run.micro]


def table(name: str, results: "Results") -> pd.DataFrame:
    """The tidy table behind chart `name` (see TABLES)."""
    if name not in TABLES:
        raise KeyError(f"no chart '{name}' in iolab_plots.TABLES")
    return TABLES[name][1](results)


def table_csv(t: pd.DataFrame) -> str:
    """The CSV text a table is saved as (and compared as): fixed precision, fixed order."""
    return t[COLUMNS].to_csv(index=False, float_format="%.10g", lineterminator="\n")


# ---------------------------------------------------------------------------------------------
# Drawing


def runs_of(t: pd.DataFrame, results: "Results") -> list[Run]:
    names = list(dict.fromkeys(t["run"]))
    return [results.by_name(n) for n in names]


def subtitle(t: pd.DataFrame, results: "Results") -> str:
    runs = runs_of(t, results)
    if not runs:
        return ""
    machines = list(dict.fromkeys(r.machine() for r in runs))
    ref = runs[0].reference_machine()
    head = f"machine {ref}: " if ref else "machine: "
    return head + "; ".join(machines) + "\n" + "; ".join(r.label() for r in runs)


def fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def fmt_ns(v: float) -> str:
    """A time in nanoseconds with its unit: 3.49 ns, 15.8 µs, 232 ms."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} ns"


def _series_color(key: str, index: int) -> str:
    """A server's own colour when `key` names a server (or a cell of one), else the palette's."""
    base = str(key).split(" ")[0].partition(":")[0]
    return SERVER_COLORS.get(base, SERIES_COLORS[index % len(SERIES_COLORS)])


class Notes:
    """Numbered notes under a chart: one per invalid cell and reason."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, who: str, reason: str) -> int:
        text = f"{who}: {reason}"
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1

    def draw(self, ax: Any, extra: Sequence[str] = (), offset_pt: float = 42,
             width: int = 125) -> None:
        lines_ = []
        for i, text in enumerate(self.items, 1):
            lines_ += textwrap.wrap(f"[{i}] {text}", width, subsequent_indent="     ")
        lines_ += [line for e in extra for line in textwrap.wrap(e, width)]
        if lines_:
            ax.annotate("\n".join(lines_), xy=(0, 0), xycoords="axes fraction",
                        xytext=(0, -offset_pt), textcoords="offset points", va="top", ha="left",
                        fontsize=8.5, color="#333333", annotation_clip=False)


def _figure(title: str, t: pd.DataFrame, results: "Results",
            size: tuple[float, float]) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=size)
    sub = subtitle(t, results)
    ax.set_title(title, loc="left", fontweight="bold", pad=12 + 11 * (sub.count("\n") + 1))
    ax.annotate(sub, xy=(0, 1), xycoords="axes fraction", xytext=(0, 6), textcoords="offset points",
                fontsize=8.5, color="#333333", va="bottom", ha="left", annotation_clip=False)
    return fig, ax


INVALID_LEGEND = "hatched, faded: not valid\n(reason in the numbered note)"


def _legend(ax: Any, handles: list[Any]) -> None:
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _log_axis(axis: Any, fine: bool = False, formatter: Any = None) -> None:
    """Log scale with plain labels (200, 1000, 50k) instead of powers of ten."""
    from matplotlib.ticker import LogLocator, NullFormatter
    axis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if fine else (1,)))
    axis.set_major_formatter(plt.FuncFormatter(lambda v, _: (formatter or fmt)(v)))
    axis.set_minor_formatter(NullFormatter())


def _is_server(name: str, runs: Iterable[Run]) -> bool:
    base = str(name).split(" ")[0].partition(":")[0]
    return base in SERVER_COLORS or any(base == r["server"].partition(":")[0]
                                        for run in runs for r in run.rows)


def not_run_notes(t: pd.DataFrame, results: "Results") -> list[str]:
    """'not run: nginx (why)' for servers a run skipped that the table has no placeholder for,
    in charts whose bars or lines are servers."""
    runs = runs_of(t, results)
    shown = {str(v).split(" ")[0] for v in list(t["x"]) + list(t["series"])}
    if not any(_is_server(v, runs) for v in shown):
        return []
    return [f"not run: {s} ({why.removeprefix(f'{s}: ')})" for run in runs
            for s, why in skipped_servers(run).items() if s not in shown]


def bars(t: pd.DataFrame, results: "Results", title: str, ylabel: str, xlabel: str = "server",
         stacked: bool = False, log: bool = False, horizontal: bool = False,
         notes_extra: Sequence[str] = (), value_format: Callable[[float], str] = fmt) -> Any:
    """Bars per x; several series side by side, or stacked. An invalid cell is hatched and
    faded with a numbered note; a missing figure is an empty hatched stub marked 'n/a'; the
    whiskers span the repeats (min..max). In a stack, a negative part (a memory slope below
    zero is noise) is drawn as zero height with a note giving its value."""
    from matplotlib.patches import Patch
    xs = list(dict.fromkeys(t["x"]))
    series = list(dict.fromkeys(t["series"]))
    grouped = len(series) > 1 and not stacked
    slots = len(series) if grouped else 1
    if horizontal:
        size: tuple[float, float] = (10, 1.8 + 0.3 * len(xs) * slots)
    else:
        size = (max(7.5, 1.5 + 0.75 * len(xs) * (0.6 * slots if grouped else 1)), 5.0)
    fig, ax = _figure(title, t, results, size)
    notes = Notes()
    width = 0.8 / slots
    finite = t["value"][t["value"].notna() & (t["value"] > 0)]
    stub = (finite.min() if log else finite.max() * 0.02) if len(finite) else 1.0
    bottoms = {x: 0.0 for x in xs}
    # Notes are numbered in reading order (by x, then series); a missing figure's reason is the
    # same for all series of its x, so it gets one note.
    note_of: dict[tuple, Any] = {}
    for x in xs:
        for s in series:
            sel = t[(t["x"] == x) & (t["series"] == s)]
            if not sel.empty and not sel.iloc[0]["valid"]:
                r = sel.iloc[0]
                who = str(x) if pd.isna(r["value"]) or not s else f"{x} {s}"
                note_of[(x, s)] = notes.add(who, r["reason"])
            if stacked and not sel.empty and sel.iloc[0]["value"] < 0:
                note_of[(x, s, "negative")] = notes.add(
                    f"{x} {s}", f"negative ({fmt(sel.iloc[0]['value'])}), drawn as 0")
    marks: dict[Any, list[Any]] = {x: [] for x in xs}
    flagged = bool(note_of)
    draw = ax.barh if horizontal else ax.bar

    def label_at(value: float, pos: float, text: str, rotate: bool = False) -> None:
        if horizontal:
            ax.annotate(text, xy=(value, pos), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)
        else:
            ax.annotate(text, xy=(pos, value), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8, rotation=90 if rotate else 0)

    for si, s in enumerate(series):
        for xi, x in enumerate(xs):
            sel = t[(t["x"] == x) & (t["series"] == s)]
            if sel.empty:
                continue
            r = sel.iloc[0]
            color = _series_color(s, si) if (s or grouped) else _series_color(x, 0)
            pos = xi + ((si - (slots - 1) / 2) * width if grouped else 0)
            absent = pd.isna(r["value"])
            value = stub if absent else float(r["value"])
            if stacked and value < 0:
                value = 0.0
            base = bottoms[x] if stacked else 0.0
            span = {"left": base, "height": width} if horizontal else {
                "bottom": base, "width": width}
            if absent:
                style = dict(color="white", edgecolor=INVALID_EDGE,
                             hatch=INVALID_HATCH, linewidth=0.8)
            elif not r["valid"]:
                style = dict(color=color, alpha=0.35, edgecolor=INVALID_EDGE, hatch=INVALID_HATCH,
                             linewidth=0.8)
            else:
                style = dict(color=color, edgecolor="#333333", linewidth=0.6)
            draw(pos, value, **span, **style)
            note = note_of.get((x, s))
            mark = f" [{note}]" if note else ""
            if stacked:
                if (x, s, "negative") in note_of:
                    note = note_of[(x, s, "negative")]
                bottoms[x] = base + (0.0 if absent else value)
                if note and note not in marks[x]:
                    marks[x].append(note)
                continue
            if not absent and r["n"] > 1 and pd.notna(r["lo"]):
                err = [[value - r["lo"]], [r["hi"] - value]]
                if horizontal:
                    ax.errorbar(value, pos, xerr=err, fmt="none",
                                ecolor="#222222", elinewidth=0.8, capsize=2)
                else:
                    ax.errorbar(pos, value, yerr=err, fmt="none",
                                ecolor="#222222", elinewidth=0.8, capsize=2)
            top = max(value, r["hi"]) if pd.notna(r["hi"]) else value
            label_at(top, pos, ("n/a" if absent else value_format(value)) + mark, rotate=slots > 2)
    if stacked:
        for xi, x in enumerate(xs):
            total = bottoms[x]
            mark = f" [{','.join(map(str, marks[x]))}]" if marks[x] else ""
            label_at(total if total else stub, xi, (value_format(total) if total else "n/a") + mark)
    labels = [str(x) for x in xs]
    # Slanted when the names would run into each other: many of them, or one long server spec
    # (io_uring:--recv-multishot=0) wider than its bar.
    long_labels = not horizontal and (sum(len(s) for s in labels) > 90
                                      or max(map(len, labels), default=0) > 16)
    if horizontal:
        ax.set_yticks(range(len(xs)), labels, fontsize=8.5)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        ax.set_ylabel(xlabel)
        ax.grid(axis="x", alpha=0.35)
        ax.grid(axis="y", visible=False)
        if log:
            ax.set_xscale("log")
            low = 10 ** math.floor(math.log10(stub))  # bars grow from the decade below the smallest
            decades = math.log10(max(float(finite.max()), low * 10) / low) if len(finite) else 1
            ax.set_xlim(left=low, right=float(finite.max()) * 3 if len(finite) else None)
            _log_axis(ax.xaxis, fine=decades <= 3, formatter=value_format)
        else:
            ax.margins(x=0.15)
            ax.xaxis.set_major_formatter(plt.FuncFormatter(
                lambda v, _: value_format(v) if v else "0"))
    else:
        ax.set_xticks(range(len(xs)), labels, rotation=25 if long_labels else 0,
                      ha="right" if long_labels else "center")
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        if log:
            ax.set_yscale("log")
            _log_axis(ax.yaxis, formatter=value_format)
        else:
            ax.yaxis.set_major_formatter(plt.FuncFormatter(
                lambda v, _: value_format(v) if v else "0"))
        ax.margins(y=0.15)
    handles = [Patch(facecolor=_series_color(s, si), edgecolor="#333333", label=str(s))
               for si, s in enumerate(series) if s]
    if flagged:
        handles.append(Patch(facecolor="white", edgecolor=INVALID_EDGE, hatch=INVALID_HATCH,
                             label=INVALID_LEGEND))
    _legend(ax, handles)
    notes.draw(ax, list(notes_extra) + not_run_notes(t, results),
               offset_pt=80 if long_labels else 42)
    return fig


def lines(t: pd.DataFrame, results: "Results", title: str, ylabel: str, xlabel: str,
          logy: bool = False, notes_extra: Sequence[str] = ()) -> Any:
    """One line per series over categorical x (in table order); whiskers over the repeats;
    an invalid point is a hollow grey-edged marker with its note number, a missing figure a
    grey 'x' on the axis with its note number."""
    xs = list(dict.fromkeys(t["x"]))
    pos_of = {x: i for i, x in enumerate(xs)}
    series = list(dict.fromkeys(t["series"]))
    fig, ax = _figure(title, t, results, (9, 5.2))
    notes = Notes()
    note_of: dict[tuple, Any] = {}
    for x in xs:  # numbered in reading order: along x, then by series
        for _, r in t[(t["x"] == x) & ~t["valid"]].iterrows():
            note_of[(x, r["series"])] = notes.add(f"{r['series']} at {x}", r["reason"])
    any_invalid = bool(note_of)
    from matplotlib.lines import Line2D
    handles = []
    for si, s in enumerate(series):
        sel = t[t["series"] == s]
        color = _series_color(s, si)
        have = sel[sel["value"].notna()]
        ax.plot([pos_of[x] for x in have["x"]], have["value"], "-", color=color, linewidth=1.6,
                zorder=2)
        handles.append(Line2D([], [], color=color, marker="o", markersize=5, label=str(s)))
        for _, r in sel.iterrows():
            p = pos_of[r["x"]]
            mark = f"[{note_of[(r['x'], s)]}]" if not r["valid"] else ""
            if pd.isna(r["value"]):
                ax.plot([p], [0], marker="x", color=INVALID_EDGE, markersize=9, clip_on=False,
                        transform=ax.get_xaxis_transform(), zorder=3)
                ax.annotate(f"{s}: n/a {mark}", xy=(p, 0), xycoords=("data", "axes fraction"),
                            xytext=(4, 6 + 10 * si), textcoords="offset points", fontsize=7.5,
                            color=color)
                continue
            if r["n"] > 1 and pd.notna(r["lo"]):
                ax.errorbar(p, r["value"], yerr=[[r["value"] - r["lo"]], [r["hi"] - r["value"]]],
                            fmt="none", ecolor=color, elinewidth=0.8, capsize=2, zorder=2)
            if r["valid"]:
                ax.plot([p], [r["value"]], "o", color=color, markersize=5, zorder=3)
            else:
                ax.plot([p], [r["value"]], "o", markerfacecolor="white", markeredgecolor=color,
                        markeredgewidth=1.4, markersize=8, zorder=3)
                ax.annotate(mark, xy=(p, r["value"]), xytext=(5, 3), textcoords="offset points",
                            fontsize=7.5, color="#333333")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
        _log_axis(ax.yaxis, fine=True)
    else:
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: fmt(v) if v else "0"))
    ax.set_xlim(-0.3, len(xs) - 0.7)
    if any_invalid:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                              markeredgecolor=INVALID_EDGE, markersize=8,
                              label="hollow: not valid\n(reason in the numbered note)"))
    _legend(ax, handles)
    notes.draw(ax, list(notes_extra) + not_run_notes(t, results))
    return fig


def describe(t: pd.DataFrame, unit: str) -> None:
    """Prints a chart's table as lines a reader can hold against the chart: per series, the
    valid cells from highest to lowest, then the cells that are not valid and why."""
    for s in dict.fromkeys(t["series"]):
        sel = t[t["series"] == s]
        good = sel[sel["valid"]].sort_values("value", ascending=False)
        head = f"{s} ({unit})" if s else unit
        print(f"{head}, valid: " +
              (", ".join(f"{r.x} {fmt(r.value)}" for r in good.itertuples()) or "none"))
        for r in sel[~sel["valid"]].itertuples():
            print(f"    not valid: {r.x} {fmt(r.value)}: {r.reason}")


# ---------------------------------------------------------------------------------------------
# Saving


def save(fig: Any, t: pd.DataFrame, name: str, results: "Results",
         show: bool | None = None) -> Path:
    """Writes <name>.png, <name>.svg (reproducible) and <name>.csv (the table) into the charts
    folder, after checking the table is the one TABLES[name] builds from the rows. In a
    notebook the figure is also shown."""
    expected = table_csv(table(name, results))
    actual = table_csv(t)
    if actual != expected:
        raise ValueError(f"{name}: the table to save is not what iolab_plots.TABLES['{name}'] "
                         f"builds from the run's rows; draw charts from iolab_plots.table()")
    out = results.charts_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.csv").write_text(actual)
    fig.savefig(out / f"{name}.png", bbox_inches="tight")
    fig.savefig(out / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
    if show if show is not None else "ipykernel" in sys.modules:
        from IPython.display import display
        display(fig)
    plt.close(fig)
    return out / f"{name}.png"
