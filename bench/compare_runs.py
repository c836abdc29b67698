#!/usr/bin/python3
"""compare_runs.py: two run folders side by side (`make compare A=run1 B=run2`).

A run folder is what bench/run.py or `make micro` writes (results/runs/<ts>-<name>/). The harness
part pairs the figures of harness/summary.json by (server, params, point, metric) and prints
A and B (each the mean of its rounds ±half its 95% interval), B/A, and whether the two runs
agree: "yes" when their 95% intervals overlap, "NO" when they do not (the difference is larger
than both runs' own round-to-round variation), "?" when a run has no interval (one round, or a
summary written before run.py gave intervals: its median is used). A metric that is not valid
in either run keeps its '!' and the reason is listed below the table, so a ratio between an
invalid and a valid figure is never shown bare. The last lines count the cells that agree, and
those within 10% of each other (issue 26's test-retest target; a small count such as context
switches per request, judged on its absolute precision, within that: validity.agrees).

Run it on two runs of the same scenario on your machine before trusting a difference between
two other runs: a difference smaller than what two runs of the same code show is noise. The micro
part hands each micro/<topic>.json present in both runs to Google Benchmark's own compare.py
(Debian's libbenchmark-tools), which adds a Mann-Whitney U test when there are repetitions.

Runs from different machines are compared as asked, but the machine lines are printed first and
a difference in CPU model, kernel or core count is called out: a ratio across machines measures
the machines as much as the change.

    bench/compare_runs.py A B [--metric rps --metric server_cpu_us] [--no-micro]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from iolab_bench import validity

GBENCH_COMPARE = Path("/usr/share/benchmark/compare.py")
DEFAULT_METRICS = ["rps", "server_cpu_us", "server_user_us", "syscalls_per_req",
                   "ctx_switches_per_req", "allocs_per_req", "p50_us", "p99_us", "user_kb_per_conn",
                   "instructions_per_req"]
MACHINE_KEYS = [("cpu_model", "CPU"), ("cpus_online", "CPUs"), ("kernel", "kernel"),
                ("git_revision", "revision"), ("scenario", "scenario")]


class CompareError(Exception):
    pass


def resolve_run(text: str) -> Path:
    """A run folder given as a path, or as a name under results/runs/ (suffix match allowed)."""
    path = Path(text)
    if path.is_dir():
        return path.resolve()
    runs = Path(__file__).resolve().parents[1] / "results" / "runs"
    matches = sorted(p for p in runs.glob(f"*{text}*") if p.is_dir()) if runs.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CompareError(f"'{text}' matches {len(matches)} runs: "
                           + ", ".join(p.name for p in matches[:5]))
    raise CompareError(f"no run folder '{text}' (a path, or a name under results/runs/)")


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        raise CompareError(f"{path}: not valid JSON ({e})") from e


def flatten_manifest(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The few machine facts worth printing, wherever the manifest keeps them."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in dict(MACHINE_KEYS) and k not in found and not isinstance(v, (dict, list)):
                    found[k] = v
                walk(v)

    walk(doc or {})
    return found


def machine_lines(a_dir: Path, b_dir: Path) -> list[str]:
    a = flatten_manifest(load_json(a_dir / "manifest.json"))
    b = flatten_manifest(load_json(b_dir / "manifest.json"))
    lines = [f"A = {a_dir}", f"B = {b_dir}"]
    differs = []
    for key, label in MACHINE_KEYS:
        va, vb = a.get(key, "?"), b.get(key, "?")
        lines.append(f"  {label:9} A: {va}" + ("" if va == vb else f"   B: {vb}"))
        if va != vb and key in ("cpu_model", "cpus_online", "kernel"):
            differs.append(label)
    if differs:
        lines.append(
            f"  note: the runs differ in {', '.join(differs)}: ratios compare machines too")
    return lines


def key_of(s: dict[str, Any]) -> tuple[str, str, str, str]:
    return (s["server"], json.dumps(s["params"], sort_keys=True), s["point"], s["metric"])


def value_of(s: dict[str, Any]) -> float:
    """The headline figure: the mean of the rounds (the median in an older summary)."""
    return float(s["mean"] if "mean" in s else s["median"])


def interval_of(s: dict[str, Any]) -> tuple[float, float] | None:
    if s.get("low") is None or s.get("high") is None:
        return None
    return float(s["low"]), float(s["high"])


def agreement(sa: dict[str, Any], sb: dict[str, Any]) -> str:
    """'yes' when the two runs' 95% intervals overlap, 'NO' when they do not, '?' when either
    has no interval."""
    ia, ib = interval_of(sa), interval_of(sb)
    if ia is None or ib is None:
        return "?"
    return "yes" if ia[0] <= ib[1] and ib[0] <= ia[1] else "NO"


def shown(s: dict[str, Any]) -> str:
    text = fmt(value_of(s))
    iv = interval_of(s)
    if iv is not None and value_of(s):
        text += f" ±{(iv[1] - iv[0]) / 2 / abs(value_of(s)):.0%}"
    return text + (" !" if not s["valid"] else "")


def harness_table(a_summary: list[dict[str, Any]], b_summary: list[dict[str, Any]],
                  metrics: list[str]
                  ) -> tuple[list[list[str]], list[str], list[Any], list[tuple[Any, str, bool]]]:
    """The table's rows, the reasons below it, the cells in one run only, and per row (whether
    the two figures agree within the test-retest target, validity.agrees; agreement of the
    intervals; valid in both)."""
    a = {key_of(s): s for s in a_summary}
    b = {key_of(s): s for s in b_summary}
    keys = [k for k in a if k in b and k[3] in metrics]
    keys.sort(key=lambda k: (k[0], k[1], k[2], metrics.index(k[3])))
    rows = [["server", "params", "point", "metric", "A", "B", "B/A", "agree"]]
    reasons = []
    stats: list[tuple[Any, str, bool]] = []
    for k in keys:
        sa, sb = a[k], b[k]
        marks = []
        for tag, s in (("A", sa), ("B", sb)):
            if not s["valid"]:
                marks.append(tag)
                why = s.get("reasons", s.get("why_invalid")) or []
                reasons.append(f"  ! {tag} {k[0]} {k[2]} {k[3]}: {'; '.join(why)}")
        va, vb = value_of(sa), value_of(sb)
        ratio = f"{vb / va:.2f}x" if va else "-"
        params = ",".join(f"{p}={v}" for p, v in json.loads(k[1]).items()) or "-"
        rows.append([k[0], params, k[2], k[3], shown(sa), shown(sb),
                     ratio + (" !" if marks else ""), agreement(sa, sb)])
        stats.append((validity.agrees(k[3], va, vb), agreement(sa, sb), not marks))
    only = sorted({(k[0], k[2]) for k in set(a) ^ set(b) if k[3] in metrics})
    return rows, reasons, only, stats


def validity_lines(summaries: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    """Per run, how many of its metric rows are valid, per load point and over the fixed-rate
    and saturation points (issue 26's measure of a table that is not flagged for nothing)."""
    lines = []
    for tag, summary in summaries:
        counts: dict[str, list[int]] = {}
        for s in summary:
            c = counts.setdefault(s["point"], [0, 0])
            c[0] += bool(s["valid"])
            c[1] += 1
        core = [counts[p] for p in ("fixed_rate", "saturation") if p in counts]
        parts = [f"{p} {v} of {n}" for p, (v, n) in counts.items()]
        if core:
            v, n = sum(c[0] for c in core), sum(c[1] for c in core)
            parts.append(f"fixed-rate and saturation together {v} of {n} ({v / n:.0%})")
        lines.append(f"valid metric rows in {tag}: " + ", ".join(parts))
    return lines


def agreement_lines(stats: list[tuple[Any, str, bool]]) -> list[str]:
    """How many cells agree within their intervals and within 10% (or, for a small count, within
    its absolute precision: validity.agrees), over all and over the cells valid in both runs."""
    both_valid = [r for r in stats if r[2]]
    lines = []
    for label, chosen in (("all cells", stats), ("cells valid in both runs", both_valid)):
        if not chosen:
            continue
        overlap = sum(r[1] == "yes" for r in chosen)
        known = sum(r[1] != "?" for r in chosen)
        near = sum(bool(r[0]) for r in chosen)
        lines.append(f"{label}: {overlap} of {known} agree within their 95% intervals; "
                     f"{near} of {len(chosen)} within 10%")
    return lines


def fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def compare_micro(a_dir: Path, b_dir: Path) -> int:
    topics = sorted(p.name for p in (a_dir / "micro").glob("*.json") if p.name != "summary.json"
                    and (b_dir / "micro" / p.name).exists()) if (a_dir / "micro").is_dir() else []
    if not topics:
        print("micro: no micro/<topic>.json present in both runs")
        return 0
    if not GBENCH_COMPARE.exists():
        print(f"micro: {GBENCH_COMPARE} missing (Debian package libbenchmark-tools; make deps)")
        return 1
    status = 0
    for name in topics:
        print(f"\nmicro/{name} (Google Benchmark compare.py: time columns are (B-A)/A)")
        sys.stdout.flush()
        proc = subprocess.run(["/usr/bin/python3", str(GBENCH_COMPARE), "--no-color", "benchmarks",
                               str(a_dir / "micro" / name), str(b_dir / "micro" / name)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"  compare.py failed (exit {proc.returncode}): "
                  f"{proc.stderr.strip().splitlines()[-1:]}")
            status = 1
        else:
            print(proc.stdout.rstrip())
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="the first run folder (path or name under results/runs/)")
    ap.add_argument("b", help="the second run folder")
    ap.add_argument("--metric", action="append", choices=DEFAULT_METRICS,
                    help="metrics to show (repeatable; default: all)")
    ap.add_argument("--no-micro", action="store_true", help="skip the micro comparison")
    opts = ap.parse_args(argv)
    try:
        a_dir, b_dir = resolve_run(opts.a), resolve_run(opts.b)
        for line in machine_lines(a_dir, b_dir):
            print(line)
        a_summary = load_json(a_dir / "harness" / "summary.json")
        b_summary = load_json(b_dir / "harness" / "summary.json")
        status = 0
        if a_summary is None or b_summary is None:
            missing = [str(d) for d, s in ((a_dir, a_summary), (b_dir, b_summary)) if s is None]
            print(f"\nharness: no harness/summary.json in {', '.join(missing)}")
        else:
            rows, reasons, only, stats = harness_table(
                a_summary, b_summary, opts.metric or DEFAULT_METRICS)
            print()
            if len(rows) == 1:
                print("harness: the two runs share no (server, params, point, metric) cell")
                status = 1
            else:
                print_table(rows)
                print("(mean of the rounds ±half its 95% interval; agree: the two runs' 95% "
                      "intervals overlap; '!' = not valid in that run, reasons below)")
                for r in reasons:
                    print(r)
                for line in validity_lines([("A", a_summary), ("B", b_summary)]):
                    print(line)
                for line in agreement_lines(stats):
                    print(line)
            if only:
                print("in one run only: " + ", ".join(f"{s} {p}" for s, p in only))
        if not opts.no_micro:
            status = max(status, compare_micro(a_dir, b_dir))
        return status
    except CompareError as e:
        print(f"compare_runs.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
