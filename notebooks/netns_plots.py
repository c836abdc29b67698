#!/usr/bin/python3
"""netns_plots: the chart of the netns scenario, in iolab_plots' style.

  /usr/bin/python3 notebooks/netns_plots.py [RUN_DIR]     (default: $RESULTS, else results/latest)

A netns run (bench/run.py --scenario netns) sweeps the connection count at each emulated round
trip and writes harness/connections_to_peak.jsonl: per model and round trip, the fewest
connections whose throughput reaches 90% of the best of the sweep. This module turns those rows
into iolab_plots' tidy table (x = the round trip, series = the model, value = connections) and
draws it as lines on a log axis, with the same validity marks as every other chart: a row that
is not valid (errors, failed runs, a peak still rising at the end of the sweep) keeps its point,
hollow, with its reason in a numbered note. The table is registered in iolab_plots.TABLES under
CHART, so iolab_plots.save() checks it like the notebooks' charts; a notebook can call draw().
"""

import json
import math
import sys
from pathlib import Path
from typing import Any

import iolab_plots as ip  # beside this file; it needs bench/ on PYTHONPATH (iolab_bench)

HERE = Path(__file__).resolve().parent

CHART = "netns-connections-to-peak"
NEED = ip.Need("a netns run (bench/run.py --scenario netns)", ("closed_loop",), ("netns",))


def netns_run(results: ip.Results) -> ip.Run:
    run = NEED.find(results)
    if run is None:
        raise ip.NoData(f"{CHART}: no run with {NEED.what} in {results.given}")
    return run


def peak_rows(run: ip.Run) -> list[dict[str, Any]]:
    path = run.path / "harness" / "connections_to_peak.jsonl"
    if not path.exists():
        raise ip.NoData(f"{CHART}: {path} is missing (the run stopped before its end?)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def connections_to_peak_table(results: ip.Results) -> Any:
    """One row per model and round trip; x is the emulated round trip in ms (think time)."""
    run = netns_run(results)
    rows = []
    for p in sorted(peak_rows(run), key=lambda p: (p["think_ms"], p["server"])):
        value = p.get("connections_to_peak")
        rows.append({"run": run.name, "x": p["think_ms"], "series": p["server"],
                     "value": math.nan if value is None else float(value),
                     "lo": math.nan, "hi": math.nan, "n": len(p.get("points") or []),
                     "valid": bool(p["valid"]), "reason": p.get("invalid_reason") or ""})
    return ip.frame(rows)


ip.TABLES[CHART] = (None, connections_to_peak_table)


def draw(results: ip.Results, show: bool | None = None) -> Path:
    """Draws and saves the chart into the run's charts/ folder; returns the PNG's path."""
    ip.apply_style()
    t = connections_to_peak_table(results)
    fig = ip.lines(t, results, "Connections needed to reach the peak, as the round trip grows",
                   f"connections for {ip.fmt(90)}% of peak req/s (log)",
                   "emulated round trip, ms (loadgen --think-ms; two network namespaces, veth)",
                   logy=True,
                   notes_extra=["Closed loop, one request in flight per connection: a connection "
                                "carries at most 1/round-trip requests/s, so the count needed "
                                "grows with the round trip until the server's own cost is the "
                                "limit."])
    ip.describe(t, "connections to reach 90% of peak")
    return ip.save(fig, t, CHART, results, show)


if __name__ == "__main__":
    try:
        print(draw(ip.load(sys.argv[1] if len(sys.argv) > 1 else None), show=False))
    except ip.NoData as e:
        print(f"netns_plots: {e}", file=sys.stderr)
        sys.exit(1)
