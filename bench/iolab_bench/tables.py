"""The printed tables and notes: compare.py's table of servers (with ratios to the baseline and
the floor note), run.py's summary table, its failures and the connections to the peak."""

import json
from typing import Any

from .sweeps import PEAK_FRACTION
from .validity import group_rows, merge_reasons

Summary = list[dict[str, Any]]


def fixed(value: float, digits: int) -> str:
    """value with `digits` decimals; 0.00, not -0.00, for a count less its measured overhead that
    lands a hair below zero."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


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


def print_table(summary: Summary, baseline: str | None) -> Summary:
    """compare.py's table: one line per server, median ±half-spread, '!' where not valid."""
    def get(server: str | None, kind: str, metric: str) -> dict[str, Any] | None:
        for row in summary:
            if row["server"] == server and row["kind"] == kind and row["metric"] == metric:
                return row
        return None

    def fmt(row: dict[str, Any] | None, digits: int = 1,
            ratio_to: dict[str, Any] | None = None) -> str:
        if row is None:
            return "-"
        text = fixed(row["median"], digits)
        if ratio_to is not None and ratio_to["median"]:
            text += f" ({row['median'] / ratio_to['median']:.2f}x)"
        text += f" ±{row['spread'] * 50:.0f}%"
        return text + ("" if row["valid"] else " !")

    servers = list(dict.fromkeys(r["server"] for r in summary))
    # A column no server has a figure for (user beyond syscalls without --perf) is left out.
    cols = [c for c in COMPARE_COLUMNS
            if any(r["kind"] == c[1] and r["metric"] == c[2] for r in summary)]
    rows = [["server"] + [c[0] for c in cols]]
    for s in servers:
        row = [s]
        for _, kind, metric, digits, ratio in cols:
            base = get(baseline, kind, metric) if ratio and baseline and s != baseline else None
            row.append(fmt(get(s, kind, metric), digits, base))
        rows.append(row)
    print_columns(rows)
    print(f"(median ±half-spread; ratios against {baseline}; '!' = invalid: see below)")
    client_cpu = [r for r in summary if r["metric"] == "client_user_us"]
    for r in summary:
        if not r["valid"]:
            print(f"  ! {r['server']} {r['kind']} {r['metric']}: {'; '.join(r['why_invalid'])}")
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
    if base_row is not None and base_row["median"] > 0:
        valid = floor_row["valid"] and base_row["valid"]
        ratio = (f", {floor_row['median'] / base_row['median']:.2f}x {baseline}'s"
                 f"{'' if valid else ' (! not valid: see above)'}: no server's user CPU ratio to "
                 f"{baseline} can measure below that on this machine")
    else:  # a run too short for the kernel to have billed the baseline any user time
        ratio = "" if floor_row["valid"] else " (! not valid: see above)"
    print(f"floor: a responder that makes the system calls and nothing else was billed "
          f"{fixed(floor_row['median'], 2)} us user per request here{ratio}; "
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


def print_summary(summary: Summary, baseline: str | None) -> None:
    """run.py's table: one line per server and cell parameters, medians over the repeats, ratios
    of throughput and CPU to the baseline, '!' where not valid and the reasons below."""
    def get(server: str | None, params: dict[str, Any], point: str,
            metric: str) -> dict[str, Any] | None:
        for s in summary:
            if (s["server"] == server and s["params"] == params and s["point"] == point
                    and s["metric"] == metric):
                return s
        return None

    columns = list(RUN_COLUMNS)
    keys = list(dict.fromkeys((s["server"], json.dumps(s["params"], sort_keys=True))
                              for s in summary))
    if not any(s["point"] == "fixed_rate" for s in summary):
        # No fixed rate (the pipelining scenario): the closed loop's per-request counts instead.
        columns[2:2] = [("syscalls/req", "closed_loop", "syscalls_per_req", 2),
                        ("ctx/req", "closed_loop", "ctx_switches_per_req", 3)]
    present = [c for c in columns
               if any(s["point"] == c[1] and s["metric"] == c[2] for s in summary)]
    table = [["server", "params"] + [c[0] for c in present]]
    for server, params_json in keys:
        params = json.loads(params_json)
        line = [server, params_text(params) or "-"]
        for _, point, metric, digits in present:
            s = get(server, params, point, metric)
            if s is None:
                line.append("-")
                continue
            text = fixed(s["median"], digits)
            base = get(baseline, params, point, metric) if baseline and server != baseline else None
            if base and base["median"] and metric in ("rps", "server_cpu_us"):
                text += f" ({s['median'] / base['median']:.2f}x)"
            line.append(text + ("" if s["valid"] else " !"))
        table.append(line)
    print_columns(table)
    print(f"(medians over repeats; ratios against {baseline}; '!' = not valid, reasons below)")
    reasons: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    for s in summary:
        if not s["valid"]:
            key = (s["server"], params_text(s["params"]), s["point"])
            reasons.setdefault(key, {})
            for w in s["why_invalid"]:
                reasons[key].setdefault(w, []).append(s["metric"])
    for (server, params_shown, point), whys in reasons.items():
        run_reasons = [w for w in whys if not w.startswith("spread")]
        spreads = [f"{m} {w.split()[1]}" for w, metrics in whys.items() if w.startswith("spread")
                   for m in metrics]
        text = "; ".join(run_reasons
                         + ([f"repeats disagree: {', '.join(spreads)}"] if spreads else []))
        print(f"  ! {server} {params_shown + ' ' if params_shown else ''}{point}: {text}")


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
