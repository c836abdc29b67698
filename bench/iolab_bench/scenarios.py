"""Scenarios (bench/scenarios/NAME.json): servers, points and a matrix of parameters; the cells
of the matrix, and where each cell's server and client run."""

import itertools
import json
from dataclasses import dataclass
from typing import Any

from . import ROOT, HarnessError

SCENARIOS = ROOT / "bench" / "scenarios"
# A load point of a scenario and the kind of run that measures it.
POINT_KIND = {"fixed_rate": "fixed", "saturation": "saturation", "closed_loop": "closed"}


def load_scenario(name: str) -> dict[str, Any]:
    path = SCENARIOS / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.json")))
        raise HarnessError(f"unknown scenario '{name}' (known: {known})")
    sc: dict[str, Any] = json.loads(path.read_text())
    sc.setdefault("name", name)
    sc.setdefault("points", ["fixed_rate", "saturation", "closed_loop"])
    sc.setdefault("repeats", 3)
    # More rounds, up to max_repeats, for the points whose intervals are still too wide, while
    # the measuring has taken less than budget_s seconds (runner.extra_rounds); none by default.
    sc.setdefault("max_repeats", None)
    sc.setdefault("budget_s", None)
    sc.setdefault("warmup_s", 1)
    sc.setdefault("duration_s", 3)
    sc.setdefault("connections", 64)
    sc.setdefault("pipeline", 16)
    sc.setdefault("path", "/ping")
    sc.setdefault("rate_fraction", 0.5)
    sc.setdefault("matrix", {})
    sc.setdefault("loadgen_args", [])
    sc.setdefault("server_args", [])
    sc.setdefault("arg_map", {})
    sc.setdefault("offered_rate", None)  # a fixed offered rate instead of calibrating one
    # "netns": server and client in two network namespaces (any scenario: --set mode='"netns"')
    sc.setdefault("mode", "local")
    return sc


@dataclass
class Cell:
    """One combination of the matrix: its parameters and what they add to each command."""
    params: dict[str, Any]
    server_args: list[str]
    loadgen_args: list[str]
    path: str


def matrix_cells(sc: dict[str, Any]) -> list[Cell]:
    """Every combination of the matrix."""
    names = list(sc["matrix"])
    combos = itertools.product(*(sc["matrix"][n] for n in names)) if names else [()]
    out = []
    for values in combos:
        params = dict(zip(names, values))

        def fmt(text: str) -> str:
            return text.format(**params)
        server_args = [fmt(a) for a in sc["server_args"]]
        loadgen_args = [fmt(a) for a in sc["loadgen_args"]]
        for name, value in params.items():
            mapped = sc["arg_map"].get(name, {}).get(str(value))
            if mapped:
                loadgen_args += mapped.get("loadgen", [])
                server_args += mapped.get("server", [])
        out.append(Cell(params, server_args, loadgen_args, fmt(sc["path"])))
    return out


def placed(placement: str | None, server_cpu: int | None,
           client_cpu: int | None) -> tuple[int | None, int | None]:
    """CPUs for a cell of the affinity scenario: (server, client); None means unpinned."""
    if placement in (None, "other_cpu"):
        return server_cpu, client_cpu
    if placement == "same_cpu":
        return server_cpu, server_cpu
    if placement == "unpinned":
        return None, None
    raise HarnessError(f"unknown placement '{placement}' (other_cpu, same_cpu, unpinned)")
