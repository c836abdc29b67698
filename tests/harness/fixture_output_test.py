#!/usr/bin/python3
"""The harness's summaries and tables over committed fixture runs, byte for byte.

Renders what run.py and compare.py print and write after their measurements (summary.json,
the summary table, failures, connections to the peak; compare's summary and table with the
"user beyond syscalls" and "user above floor" columns and the floor note) and what claims.py
prints, over tests/harness/fixture-run, and compares the text with
tests/harness/expected/fixture-output.txt. It was captured before the harness became a package
(issue 24): a refactor that changes a figure or a format fails here.

The compare.py cells are made from the fixture's rows (one cell per row and kind; 'select'
plays the floor), so the table code sees every column it can print.

Run by CTest (label tools) as: /usr/bin/python3 fixture_output_test.py
Regenerate (only for an intended change of output): fixture_output_test.py --regenerate
"""

import copy
import io
import json
import os
import sys
import unittest
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Dict, List

from iolab_bench import claims, measure, scenarios, sweeps, tables, validity

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "harness" / "fixture-run"
EXPECTED = Path(__file__).resolve().parent / "expected" / "fixture-output.txt"
RUNS = ("quick", "affinity", "c10k", "cache", "pooling")


def fixture_rows(run: str) -> List[Dict[str, Any]]:
    lines = (FIXTURE / run / "harness" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def compare_cells(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """compare.py's cells from run.py's rows: the keys its summary and table read."""
    cells = []
    for r in rows:
        kind = scenarios.POINT_KIND.get(r["point"])
        if kind is None or r.get("rps") is None:
            continue
        cpu = r["cpu_us_per_req"]
        cell = {"server": "floor" if r["server"] == "select" else r["server"], "kind": kind,
                "repeat": r["repeat"], "rps": r["rps"],
                "server_user_us": cpu["server"]["user"], "server_sys_us": cpu["server"]["sys"],
                "server_total_us": cpu["server"]["user"] + cpu["server"]["sys"],
                "client_user_us": cpu["client"]["user"], "client_sys_us": cpu["client"]["sys"],
                "ctx_per_request": r["ctx_switches_per_req"],
                "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"],
                "invalid": r["invalid_reason"].split("; ") if r["invalid_reason"] else []}
        if r.get("syscalls_per_req") is not None and cell["server"] != "floor":
            cell["syscalls_per_request"] = r["syscalls_per_req"]
            cell["perf_syscalls_per_request"] = r["syscalls_per_req"] * 1.05
        if kind == "fixed":
            measure.add_user_beyond_syscalls(cell, {"user_us": 0.05, "sys_us": 0.3})
        cells.append(cell)
    return measure.add_user_above_floor(cells)


def sweep_rows(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A closed-loop sweep over connection counts from the fixture's closed-loop rows."""
    out = []
    for r in rows:
        if r["point"] != "saturation":
            continue
        r = dict(r, point="closed_loop")
        for think, scale in ((0, 1.0), (5, 0.25)):
            for conns, share in ((1, 0.2), (4, 0.7), (16, 0.95), (64, 1.0)):
                row = copy.deepcopy(r)
                row["params"] = dict(r["params"], think_ms=think, connections=conns)
                row["rps"] = r["rps"] * share * scale
                out.append(row)
    return out


def print_entries(summary: List[Dict[str, Any]]) -> None:
    """A summary, one entry per line (its lists of rounds would take a line per number)."""
    for entry in summary:
        print(json.dumps(entry, default=str))


def render() -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        for run in RUNS:
            rows = fixture_rows(run)
            print(f"==== run.py summary: {run}")
            baseline = ("nginx" if any(r["server"] == "nginx" for r in rows)
                        else rows[0]["server"])
            summary = validity.summarize_rows(rows, baseline)
            print_entries(summary)
            tables.print_summary(summary, baseline, "tick-sampled (a stand-in line)")
            tables.print_failures(rows, summary)
            tables.print_rounds(rows)
        # Without a fixed rate (the pipelining scenario's table) and with a server that failed.
        print("==== run.py summary: quick, saturation only, one server failed")
        rows = [r for r in fixture_rows("quick") if r["point"] == "saturation"]
        rows += [{"server": "gin", "scenario": "quick", "params": {}, "point": "saturation",
                  "repeat": i, "valid": False, "invalid_reason": f"gin: exited at start: {i}"}
                 for i in range(2)]
        summary = validity.summarize_rows(rows, "epoll_et")
        tables.print_summary(summary, "epoll_et")
        tables.print_failures(rows, summary)
        print("==== run.py connections to the peak")
        peaks = sweeps.connections_to_peak(sweep_rows(fixture_rows("quick")))
        print(json.dumps(peaks, indent=1, sort_keys=True))
        tables.print_peaks(peaks)
        for run in ("quick", "c10k"):
            print(f"==== compare.py summary: {run}")
            cells = compare_cells(fixture_rows(run))
            summary = validity.summarize_cells(cells, "epoll_et")
            print_entries(summary)
            for baseline in ("epoll_et", "floor"):
                tables.print_table(summary, baseline)
                tables.print_floor_note(summary, baseline)
        print("==== claims.py")
        os.chdir(ROOT)  # the ledger names the folder as given
        claims.main(["--results", str(FIXTURE.relative_to(ROOT)), "--no-write"])
    return out.getvalue()


class FixtureOutput(unittest.TestCase):
    def test_output_is_unchanged(self) -> None:
        got = render()
        expected = EXPECTED.read_text()
        if got != expected:
            actual = Path("/tmp") / f"fixture-output.actual.{os.getpid()}.txt"
            actual.write_text(got)
            self.fail(f"output differs from {EXPECTED}: diff it against {actual}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate"]:
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(render())
        print(f"wrote {EXPECTED}")
    else:
        unittest.main(verbosity=2)
