"""figures.py: where a figure comes from in a run folder, and its value there.

The claims ledger (bench/claims.py) and the labs' expected figures (labs/fill_figures.py) never
hold a number: they hold a *source*, and this module looks the source up in recorded runs. Two
kinds of source, as JSON objects:

  harness row   {"scenario": "c10k", "server": "select", "point": "fixed_rate",
                 "metric": "server_cpu_us", "params": {"idle_connections": 900}}
                the mean of its rounds from harness/summary.json (validity.summarize_rows():
                metrics rps, server_cpu_us, syscalls_per_req, p99_us, user_kb_per_conn, ...),
                with its 95% interval and validity (the median, in a summary written before
                the summaries had means). "params" must match a cell exactly; without it the
                server and point must have a single cell.
  micro         {"micro": "syscalls", "benchmark": "BM_Getppid", "field": "real_time"}
                a field of one benchmark in micro/<suite>.json (Google Benchmark's JSON);
                real_time and cpu_time are converted to nanoseconds; any other field is a
                user counter (tsc_cycles, ctx_switches, ...). With repetitions the median
                aggregate is used.

Either kind may add "scale": a factor applied to the value (1e9 turns seconds into ns).

A "results" path may be one run folder or a folder of run folders at any depth (results/runs/,
results/reference/<machine>/): a harness source is looked up in the newest finished run of its
scenario, a micro source in the run that repeated its benchmark most (newest among equals).
Standard library only.
"""

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Other processes' CPU during a micro suite above which its figures are not valid: the harness's
# rule for its own cells.
from .validity import MAX_BACKGROUND_CPUS

TIME_TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


@dataclass
class Figure:
    value: float
    valid: bool = True
    why_invalid: list[str] = field(default_factory=list)
    run: Path | None = None      # the run folder it came from
    where: str = ""       # human-readable source
    low: float | None = None    # its 95% interval, where the source has one
    high: float | None = None

    def describe(self) -> str:
        return self.where + ("" if self.valid else f" (not valid: {'; '.join(self.why_invalid)})")


class SourceError(ValueError):
    """A source that is malformed or ambiguous (a mistake in the data file, not a missing run)."""


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.dir = Path(path)
        self.manifest: dict[str, Any] = _read_json(self.dir / "manifest.json") or {}
        self._summary: list[dict[str, Any]] | None = None
        self._micro: dict[str, list[dict[str, Any]] | None] = {}

    @property
    def scenario(self) -> str | None:
        return self.manifest.get("scenario")

    @property
    def finished(self) -> bool:
        return bool(self.manifest.get("finished")) and not self.manifest.get("interrupted")

    @property
    def started(self) -> str:
        return self.manifest.get("started") or ""

    def summary(self) -> list[dict[str, Any]]:
        if self._summary is None:
            self._summary = _read_json(self.dir / "harness" / "summary.json") or []
        return self._summary

    def micro(self, suite: str) -> list[dict[str, Any]] | None:
        if suite not in self._micro:
            doc = _read_json(self.dir / "micro" / f"{suite}.json")
            self._micro[suite] = doc.get("benchmarks") if isinstance(doc, dict) else None
        return self._micro[suite]

    def micro_background_cpus(self, suite: str) -> float | None:
        """Other processes' CPU while the suite ran (run_micro.py), or None where not recorded."""
        doc = self.manifest.get("micro") or _read_json(self.dir / "micro" / "summary.json") or {}
        return ((doc.get("suites") or {}).get(suite) or {}).get("background_cpus")

    def machine(self) -> str:
        """'Intel Xeon Platinum 8375C @ 2.90GHz, 2 CPUs, Linux 6.1.0-27-amd64', as the charts
        (notebooks/iolab_plots.py) name a machine."""
        m = self.manifest
        cpu = re.sub(r"\((R|TM)\)|\bCPU\b", "", m.get("cpu_model") or "unknown CPU")
        cpu = re.sub(r"\s+", " ", cpu).strip()
        return f"{cpu}, {count_cpus(m.get('cpus_online'))} CPUs, Linux {m.get('kernel', '?')}"


def count_cpus(online: object) -> int | str:
    """'0-3,6' (/sys/devices/system/cpu/online) -> 5; '?' when unknown."""
    try:
        total = 0
        for part in str(online).split(","):
            lo, _, hi = part.partition("-")
            total += int(hi or lo) - int(lo) + 1
        return total
    except ValueError:
        return "?"


def _read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_run(path: str | Path) -> bool:
    # Not "has a micro/ folder": a folder of runs may hold a run *named* micro.
    path = Path(path)
    return (path / "manifest.json").exists() or (path / "harness" / "summary.json").exists()


def find_runs(path: str | Path, max_depth: int = 4) -> list[RunFolder]:
    """Run folders at or under `path`, newest first (by start time, then folder name)."""
    path = Path(path)
    found: list[RunFolder] = []

    def walk(p: Path, depth: int) -> None:
        if is_run(p):
            found.append(RunFolder(p))
            return
        if depth == 0 or not p.is_dir():
            return
        for child in sorted(p.iterdir()):
            if child.is_dir() and not child.is_symlink():
                walk(child, depth - 1)

    walk(path, max_depth)
    found.sort(key=lambda r: (r.started, r.dir.name), reverse=True)
    return found


def kind(source: dict[str, Any]) -> str:
    if "micro" in source:
        return "micro"
    if "scenario" in source:
        return "harness"
    return "none"


def check_source(source: dict[str, Any]) -> None:
    """Raises SourceError when a source object is malformed."""
    k = kind(source)
    if k == "harness":
        missing = [f for f in ("scenario", "server", "point", "metric") if f not in source]
        if missing:
            raise SourceError(f"harness source lacks {', '.join(missing)}: {source}")
    elif k == "micro":
        missing = [f for f in ("micro", "benchmark", "field") if f not in source]
        if missing:
            raise SourceError(f"micro source lacks {', '.join(missing)}: {source}")
    else:
        raise SourceError(f"a source names a harness row (scenario, server, point, metric) or a "
                          f"micro benchmark (micro, benchmark, field): {source}")


def harness_figure(runs: list[RunFolder], source: dict[str, Any]) -> Figure | None:
    check_source(source)
    candidates = [r for r in runs if r.scenario == source["scenario"] and r.summary()]
    # Finished runs first; an interrupted one is used only when nothing else has the row.
    candidates.sort(key=lambda r: not r.finished)
    for run in candidates:
        rows = [s for s in run.summary()
                if s["server"] == source["server"] and s["point"] == source["point"]
                and s["metric"] == source["metric"]]
        if "params" in source:
            rows = [s for s in rows if s["params"] == source["params"]]
        elif len({json.dumps(s["params"], sort_keys=True) for s in rows}) > 1:
            cells = sorted({json.dumps(s["params"], sort_keys=True) for s in rows})
            raise SourceError(f"{source}: several cells in {run.dir} ({', '.join(cells)}); "
                              f"say which with \"params\"")
        if not rows:
            continue
        s = rows[0]
        params = ",".join(f"{k}={v}" for k, v in s["params"].items())
        where = (f"{run.dir.name}: {source['scenario']} {source['server']} "
                 f"{params + ' ' if params else ''}{source['point']} {source['metric']}")
        why = list(s.get("why_invalid") or [])
        if not run.finished:
            why.append("run not finished")
        value = float(s["mean"] if "mean" in s else s["median"])
        return Figure(value, not why, why, run.dir, where, s.get("low"), s.get("high"))
    return None


def micro_figure(runs: list[RunFolder], source: dict[str, Any]) -> Figure | None:
    """The benchmark's figure from the run that repeated it most (a `make micro MICRO_FULL=1`
    run over the quick suites `make bench` adds to its own run folder, whichever is newer), the
    newest among equals."""
    check_source(source)
    found: list[tuple[int, Figure]] = []
    for run in runs:
        benchmarks = run.micro(source["micro"])
        if not benchmarks:
            continue
        name = source["benchmark"]
        rows = [b for b in benchmarks if b.get("run_name", b.get("name")) == name
                or b.get("name") == name]
        medians = [b for b in rows if b.get("run_type") == "aggregate"
                   and b.get("aggregate_name") == "median"]
        iterations = [b for b in rows if b.get("run_type", "iteration") == "iteration"]
        chosen = medians or iterations
        if not chosen:
            continue
        fld = source["field"]
        values = []
        for b in chosen:
            if fld not in b:
                raise SourceError(f"{source}: {name} in {run.dir}/micro/{source['micro']}.json "
                                  f"has no field '{fld}' (has: {', '.join(sorted(b))})")
            v = float(b[fld])
            if fld in ("real_time", "cpu_time"):
                v *= TIME_TO_NS.get(b.get("time_unit", "ns"), 1.0)
            values.append(v)
        why = [b["error_message"] for b in chosen if b.get("error_occurred")]
        background = run.micro_background_cpus(source["micro"])
        if background is not None and background > MAX_BACKGROUND_CPUS:
            why.append(f"background load {background:.2f} CPUs during micro_{source['micro']}")
        where = f"{run.dir.name}: micro_{source['micro']} {name} {fld}"
        found.append((len(iterations), Figure(statistics.median(values), not why, why, run.dir,
                                              where)))
    # max() keeps the first of equals: runs are newest first.
    return max(found, key=lambda f: f[0])[1] if found else None


def figure(runs: list[RunFolder], source: dict[str, Any]) -> Figure | None:
    """The figure a source names in these runs, or None when no run has it."""
    fig = micro_figure(runs, source) if kind(source) == "micro" else harness_figure(runs, source)
    if fig is not None and "scale" in source:
        fig.value *= float(source["scale"])
    return fig


def format_value(value: float, fmt: str | None = None) -> str:
    """'{:.0f} ns'-style format strings; by default three significant digits."""
    if fmt:
        return fmt.format(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
        return f"{value:.3g}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def reference_runs(reference: str | Path,
                   machine: str | None) -> tuple[Path | None, list[RunFolder]]:
    """(machine folder, runs) of the reference, or (None, []) when there is none."""
    reference = Path(reference)
    if not reference.is_dir():
        return None, []
    machines = sorted(p for p in reference.iterdir() if p.is_dir() and find_runs(p))
    if machine:
        machines = [m for m in machines if m.name == machine]
        if not machines:
            raise SourceError(f"no reference run for machine '{machine}' in {reference}")
    if not machines:
        return None, []
    if len(machines) > 1:
        names = ", ".join(m.name for m in machines)
        raise SourceError(f"several reference machines ({names}); choose with --machine")
    return machines[0], find_runs(machines[0])
