"""The printed tables and notes: compare.py's table of servers (with ratios to the baseline and
the floor note), run.py's summary table, its failures and the connections to the peak."""

import json
import re
from typing import Any

from .sweeps import PEAK_FRACTION
from . import validity
from .validity import group_rows, merge_reasons

Summary = list[dict[str, Any]]


def fixed(value: float, digits: int) -> str:
    """value with `digits` decimals; 0.00, not -0.00, for a count less its measured overhead that
    lands a hair below zero."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def half_width(s: dict[str, Any]) -> str:
    """'±4%': half the 95% interval as a share of the mean; '' for one round, '±?' when there is
    no interval."""
    if s.get("n", 0) < 2:
        return ""
    if s.get("low") is None or s.get("high") is None:
        return " ±?"
    if s["mean"] == 0:
        return f" ±{(s['high'] - s['low']) / 2:.2g}"
    return f" ±{(s['high'] - s['low']) / 2 / abs(s['mean']):.0%}"


def ratio_text(s: dict[str, Any]) -> str:
    """' (0.95x 0.91-0.99)': the ratio to the baseline and its 95% interval over the paired
    rounds; '' without a ratio."""
    if s.get("ratio") is None:
        return ""
    if s.get("ratio_low") is None or s.get("ratio_high") is None:
        return f" ({s['ratio']:.2f}x)"
    return f" ({s['ratio']:.2f}x {s['ratio_low']:.2f}..{s['ratio_high']:.2f})"


def figure_text(s: dict[str, Any], digits: int, ratio: bool = False) -> str:
    """A summary entry as a table cell: mean ±half-interval, the ratio when asked, '!' when not
    valid."""
    text = fixed(s["mean"], digits) + half_width(s) + (ratio_text(s) if ratio else "")
    return text + ("" if s["valid"] else " !")


INTERVAL_NOTE = ("mean of the rounds ±half its 95% interval; (ratio to {baseline} and its 95% "
                 "interval over the paired rounds); '!' = not valid, reasons below")


def print_accounting(accounting: str | None) -> None:
    """The user/system split's status, once for the whole table."""
    if accounting:
        print(f"CPU per request: the total (user + system) is the scheduler's own run time; "
              f"the user/system split is the kernel's accounting: {accounting}")


def print_columns(rows: list[list[str]]) -> None:
    """Rows of cells, each column left-aligned to its widest cell, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


# compare.py's columns: (title, kind, metric, decimals, ratio to the baseline)
COMPARE_COLUMNS = [
    ("saturation req/s", "saturation", "rps", 0, True),
    ("closed req/s", "closed", "rps", 0, True),
    ("user us/req", "fixed", "server_user_us", 2, True),
    ("user beyond syscalls", "fixed", "server_user_net_us", 2, True),
    ("user above floor", "fixed", "server_user_above_floor_us", 2, True),
    ("sys us/req", "fixed", "server_sys_us", 2, False),
    ("total us/req", "fixed", "server_total_us", 2, True),
    ("client us/req", "fixed", "client_user_us", 2, False),
    ("syscalls/req", "fixed", "syscalls_per_request", 2, False),
    ("perf syscalls/req", "fixed", "perf_syscalls_per_request", 2, False),
    ("ctx sw/req", "fixed", "ctx_per_request", 3, False),
    ("p50 us", "fixed", "p50_us", 0, False),
    ("p99 us", "fixed", "p99_us", 0, False)]


def print_table(summary: Summary, baseline: str | None, accounting: str | None = None) -> Summary:
    """compare.py's table: one line per server, mean ±half its 95% interval, the ratio to the
    baseline with its interval over the paired rounds, '!' where not valid."""
    def get(server: str | None, kind: str, metric: str) -> dict[str, Any] | None:
        for row in summary:
            if row["server"] == server and row["kind"] == kind and row["metric"] == metric:
                return row
        return None

    def fmt(row: dict[str, Any] | None, digits: int = 1, ratio: bool = False) -> str:
        if row is None:
            return "-"
        shown = dict(row)
        if ratio and baseline is not None:
            base = get(baseline, row["kind"], row["metric"])
            validity.with_ratio(shown, base if base is not row else None)
        return figure_text(shown, digits, ratio and shown.get("ratio") is not None)

    servers = list(dict.fromkeys(r["server"] for r in summary))
    # A column no server has a figure for (user beyond syscalls without --perf) is left out.
    cols = [c for c in COMPARE_COLUMNS
            if any(r["kind"] == c[1] and r["metric"] == c[2] for r in summary)]
    rows = [["server"] + [c[0] for c in cols]]
    for s in servers:
        row = [s]
        for _, kind, metric, digits, ratio in cols:
            row.append(fmt(get(s, kind, metric), digits, ratio and s != baseline))
        rows.append(row)
    print_columns(rows)
    print("(" + INTERVAL_NOTE.format(baseline=baseline) + ")")
    print_accounting(accounting)
    client_cpu = [r for r in summary if r["metric"] == "client_user_us"]
    print_reasons([dict(r, point=r["kind"], params={}) for r in summary])
    return client_cpu


def print_floor_note(summary: Summary, baseline: str | None) -> None:
    """One sentence on what the floor's figure means for the user column, when the floor ran."""
    def row_of(server: str | None, metric: str) -> dict[str, Any] | None:
        return next((r for r in summary if r["server"] == server and r["kind"] == "fixed"
                     and r["metric"] == metric), None)
    floor_row = row_of("floor", "server_user_us")
    base_row = row_of(baseline, "server_user_us")
    if floor_row is None or baseline == "floor":
        return
    if base_row is not None and base_row["mean"] > 0:
        valid = floor_row["valid"] and base_row["valid"]
        shown = validity.with_ratio(dict(floor_row, ratio=None), base_row)
        times = (ratio_text(shown).strip(" ()") if shown["ratio"] is not None
                 else f"{floor_row['mean'] / base_row['mean']:.2f}x")
        ratio = (f", {times} {baseline}'s"
                 f"{'' if valid else ' (! not valid: see above)'}: no server's user CPU ratio to "
                 f"{baseline} can measure below that on this machine")
    else:  # a run too short for the kernel to have billed the baseline any user time
        ratio = "" if floor_row["valid"] else " (! not valid: see above)"
    print(f"floor: a responder that makes the system calls and nothing else was billed "
          f"{fixed(floor_row['mean'], 2)} us user per request here{ratio}; "
          f"'user above floor' compares the user-space work")


def params_text(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


# run.py's columns: (title, point, metric, decimals)
RUN_COLUMNS = [
    ("sat req/s", "saturation", "rps", 0), ("closed req/s", "closed_loop", "rps", 0),
    ("CPU us/req", "fixed_rate", "server_cpu_us", 2),
    ("user us/req", "fixed_rate", "server_user_us", 2),
    ("client us/req", "fixed_rate", "client_cpu_us", 2),
    ("syscalls/req", "fixed_rate", "syscalls_per_req", 2),
    ("ctx/req", "fixed_rate", "ctx_switches_per_req", 3),
    ("allocs/req", "fixed_rate", "allocs_per_req", 2),
    ("p50 us", "fixed_rate", "p50_us", 0), ("p99 us", "fixed_rate", "p99_us", 0),
    ("user KB/conn", "memory", "user_kb_per_conn", 2),
    ("kstack KB/conn", "memory", "kernel_stack_kb_per_conn", 2),
    ("instr/req", "cache", "instructions_per_req", 0)]


def run_columns(summary: Summary) -> list[tuple[str, str, str, int]]:
    """The columns of run.py's table that have a figure in this summary."""
    columns = list(RUN_COLUMNS)
    if not any(s["point"] == "fixed_rate" for s in summary):
        # No fixed rate (the pipelining scenario): the closed loop's per-request counts instead.
        columns[2:2] = [("syscalls/req", "closed_loop", "syscalls_per_req", 2),
                        ("ctx/req", "closed_loop", "ctx_switches_per_req", 3)]
    return [c for c in columns
            if any(s["point"] == c[1] and s["metric"] == c[2] for s in summary)]


def print_summary(summary: Summary, baseline: str | None, accounting: str | None = None) -> None:
    """run.py's table: one line per server and cell parameters, the mean of the rounds ±half its
    95% interval, ratios of throughput and CPU to the baseline with their intervals over the
    paired rounds, '!' where not valid, and below each reason with the metrics it marks."""
    def get(server: str | None, params: dict[str, Any], point: str,
            metric: str) -> dict[str, Any] | None:
        for s in summary:
            if (s["server"] == server and s["params"] == params and s["point"] == point
                    and s["metric"] == metric):
                return s
        return None

    keys = list(dict.fromkeys((s["server"], json.dumps(s["params"], sort_keys=True))
                              for s in summary))
    present = run_columns(summary)
    table = [["server", "params"] + [c[0] for c in present]]
    for server, params_json in keys:
        params = json.loads(params_json)
        line = [server, params_text(params) or "-"]
        for _, point, metric, digits in present:
            s = get(server, params, point, metric)
            if s is None:
                line.append("-")
                continue
            shown = dict(s)
            base = get(baseline, params, point, metric) if baseline and server != baseline else None
            ratio = base is not None and metric in ("rps", "server_cpu_us")
            if ratio:
                validity.with_ratio(shown, base)
            line.append(figure_text(shown, digits, ratio))
        table.append(line)
    print_columns(table)
    print("(" + INTERVAL_NOTE.format(baseline=baseline) + ")")
    print_accounting(accounting)
    print_reasons(summary)


def print_reasons(summary: Summary) -> None:
    """Per server, cell and point: each reason once, with the metrics it marks (an interval too
    wide names its metric and width; 'no interval' is one reason, listed once with its metrics),
    then the rounds left out of some figures."""
    reasons: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    notes: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    for s in summary:
        key = (s["server"], params_text(s["params"]), s["point"])
        for w in s["reasons"] if not s["valid"] else []:
            reasons.setdefault(key, {}).setdefault(w, []).append(s["metric"])
        for w in s.get("notes") or []:
            notes.setdefault(key, {}).setdefault(w, []).append(s["metric"])
    for mark, table in (("!", reasons), (".", notes)):
        for (server, params_shown, point), whys in table.items():
            parts, wide = [], []
            for w, metrics in whys.items():
                m = PRECISION_REASON.match(w)
                if m:  # "interval ±79% of the value over 3 rounds (at most ±10%)"
                    wide += [f"{metric} {m['width']} (at most {m['limit']})" for metric in metrics]
                else:
                    parts.append(f"{w} [{', '.join(metrics)}]")
            if wide:
                parts.append("interval too wide: " + ", ".join(wide))
            print(f"  {mark} {server} {params_shown + ' ' if params_shown else ''}{point}: "
                  + "; ".join(parts))


PRECISION_REASON = re.compile(r"interval (?P<width>±\S+)(?: of the value)? over [0-9]+ rounds "
                              r"\(at most (?P<limit>[^)]+)\)")


def print_rounds(rows: list[dict[str, Any]]) -> None:
    """How many rounds each server and cell got, per point (the runner gives more rounds to
    the cells whose intervals were still wide)."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        if r["point"] in ("memory", "cache"):
            continue
        key = (r["server"], params_text(r["params"]))
        counts.setdefault(key, {}).setdefault(r["point"], 0)
        counts[key][r["point"]] += 1
    if not counts:
        return
    points = list(dict.fromkeys(p for c in counts.values() for p in c))
    print("rounds per cell (" + "/".join(points) + "): " + ", ".join(
        f"{server}{' ' + params if params else ''} "
        + "/".join(str(c.get(p, "-")) for p in points)
        for (server, params), c in counts.items()))


def print_failures(rows: list[dict[str, Any]], summary: Summary) -> int:
    """Cells that produced no figure in any repeat (a server that crashed or never got ready):
    the summary table has no line for them, so they are listed here with their reasons."""
    measured = {(s["server"], json.dumps(s["params"], sort_keys=True), s["point"])
                for s in summary}
    failed = [(key, group) for key, group in group_rows(rows).items() if key not in measured]
    for (server, params_json, point), group in failed:
        params = params_text(json.loads(params_json))
        reasons = [r["invalid_reason"] for r in group if r["invalid_reason"]]
        why = "; ".join(merge_reasons(reasons, len(group))) or "no figures"
        print(f"  x {server} {params + ' ' if params else ''}{point}: FAILED, no figures: {why}")
    return len(failed)


def print_peaks(peaks: list[dict[str, Any]]) -> None:
    print("\nconnections to reach the peak (closed loop, >= "
          f"{PEAK_FRACTION:.0%} of the best of the sweep):")
    for p in peaks:
        params = params_text(p["params"]) or "-"
        if p["peak_rps"] is None:
            print(f"  {p['server']:10} {params:14} ! {p['invalid_reason']}")
            continue
        print(f"  {p['server']:10} {params:14} {p['connections_to_peak']:>5} connections "
              f"(peak {p['peak_rps']:.0f} req/s at {p['peak_connections']}, "
              f"{p['peak_bound']}-bound)"
              + ("" if p["valid"] else f" ! {p['invalid_reason']}"))
