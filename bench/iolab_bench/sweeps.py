"""Connections needed to reach the peak, per model and round trip (a closed-loop sweep over
connection counts: the netns and rtt scenarios)."""

import json
import statistics
from typing import Any

from .validity import SATURATED_CPU, merge_reasons

PEAK_FRACTION = 0.9


def connections_to_peak(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each server and each setting of the other parameters, the fewest connections whose
    median throughput reaches PEAK_FRACTION of the sweep's best. With a round trip of T per
    request, one connection carries at most 1/T requests/s, so the count needed grows with T
    until the server's own cost caps the rate: the chart of this against T is the lesson."""
    groups: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for r in rows:
        if r["point"] != "closed_loop" or "connections" not in r["params"]:
            continue
        rest = {k: v for k, v in r["params"].items() if k != "connections"}
        key = (r["server"], json.dumps(rest, sort_keys=True))
        groups.setdefault(key, {}).setdefault(int(r["params"]["connections"]), []).append(r)
    out = []
    # By server, then by the other parameters' values (numbers as numbers: 5 before 20).
    for (server, rest_text), by_conns in sorted(
            groups.items(), key=lambda kv: (kv[0][0], sorted(json.loads(kv[0][1]).items()))):
        rest = json.loads(rest_text)
        reasons: list[str] = []
        points: list[dict[str, Any]] = []
        noise: list[str] = []
        runs = 0
        for conns, group in sorted(by_conns.items()):
            measured = [r for r in group if r.get("rps") is not None]
            runs += len(measured)
            # A sweep is client-bound below its peak by design; what else made a run invalid
            # (steal, other processes' CPU, listen overflows) invalidates the curve.
            noise += ["; ".join(part for part in (r["invalid_reason"] or "").split("; ")
                                if part and not part.startswith("client-bound")
                                and not part.endswith(" errors")) for r in measured]
            if len(measured) < len(group):
                reasons.append(f"{len(group) - len(measured)} failed runs at {conns} connections")
            errors = sum(sum((r.get("errors") or {}).values()) for r in measured)
            if errors:
                reasons.append(f"{errors} errors at {conns} connections")
            if measured:
                points.append({
                    "connections": conns,
                    "rps": statistics.median(r["rps"] for r in measured),
                    "server_cpu_util": statistics.median(r["server_cpu_util"] for r in measured),
                    "p50_us": statistics.median(r["latency_us"]["p50"] for r in measured)})
        row = {"server": server, "params": rest, "think_ms": rest.get("think_ms"),
               "threshold": PEAK_FRACTION, "points": points}
        if len(points) < 2:
            row.update(valid=False, invalid_reason="fewer than two connection counts measured",
                       peak_rps=None, connections_to_peak=None)
            out.append(row)
            continue
        reasons += merge_reasons([n for n in noise if n], runs)
        best = max(points, key=lambda p: p["rps"])
        reach = next(p for p in points if p["rps"] >= PEAK_FRACTION * best["rps"])
        if reach is points[-1] and points[-1]["rps"] > 1.1 * points[-2]["rps"]:
            reasons.append(f"still rising at {reach['connections']} connections: the peak is "
                           f"beyond the sweep")
        row.update(peak_rps=best["rps"], peak_connections=best["connections"],
                   connections_to_peak=reach["connections"],
                   peak_bound="server" if best["server_cpu_util"] >= SATURATED_CPU else "client",
                   peak_server_cpu_util=best["server_cpu_util"],
                   # What one connection really waited per request at the fewest connections
                   # (think time + response time + timer wake-up): the round trip it saw.
                   cycle_ms_fewest_connections=points[0]["connections"] * 1000 / points[0]["rps"]
                   if points[0]["rps"] else None,
                   latency_p50_us_fewest_connections=points[0]["p50_us"],
                   valid=not reasons, invalid_reason="; ".join(reasons) or None)
        out.append(row)
    return out
