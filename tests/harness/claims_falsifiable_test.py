#!/usr/bin/python3
"""Every check of the claims ledger (bench/claims.json) can hold, fail and be inconclusive.

For each check the test derives, from its rule alone, a figure that passes, one that fails and
one on the rule's bound, and solves the check's expression for source rounds that give them
(one source varied, the others at 1, each round solved on its own). Fed through the ledger's
interval and verdict code (claims.expression_interval, claims.judge_interval), the three must
come out holds, does not hold and inconclusive; with one round (no interval) the first two must
still come out right. A check for which no positive source figures make the rule fail cannot
stay: the test names it. A new check is covered without touching this file.

A second test reads the committed reference run (results/reference/amd-epyc-2cpu-vm): a check
that passes there with a margin above MAX_MARGIN (or against a figure of 0) tests nothing on a
real machine either (a ratio to a figure that is 0 by construction, a threshold 100x away).

Standard library plus scipy (the intervals), about 2 s.
"""

import copy
import json
import math
import re
import unittest
from pathlib import Path
from typing import Any

from iolab_bench import claims, figures
from iolab_bench.claims import FAILS, HOLDS, INCONCLUSIVE, Measured
import run_lab  # labs/ on PYTHONPATH (CTest sets it)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results" / "reference" / "amd-epyc-2cpu-vm"
MAX_MARGIN = 50.0
LOW, HIGH = 1e-9, 1e12
# Per-round deviations around the target: tight for holds/fails, wide for inconclusive.
TIGHT = (-0.01, 0.0, 0.01, 0.005, -0.005)
WIDE = (-0.2, 0.2, -0.1, 0.1, 0.0)


def targets(check: dict[str, Any]) -> dict[str, float]:
    """A figure inside the passing range, one outside it, and the bound an interval
    straddles."""
    lo, hi = claims.passing_range(check)
    if check["rule"] == "within":
        clo, chi = claims.claimed_range(check)
        return {HOLDS: (clo + chi) / 2, FAILS: hi * 3 if hi > 0 else hi - 1, INCONCLUSIVE: hi}
    if check["rule"] == "at_least":
        return {HOLDS: lo * 2 if lo > 0 else lo + 1, FAILS: lo / 2 if lo > 0 else lo - 1,
                INCONCLUSIVE: lo}
    return {HOLDS: hi / 2 if hi > 0 else hi - 1, FAILS: hi * 2 if hi > 0 else hi + 1,
            INCONCLUSIVE: hi}


def solve(expr: str, names: list[str], free: str, target: float) -> float | None:
    """A positive value of `free` (the others at 1) for which expr == target, by bisection on a
    log scale; None when the expression does not reach the target over [LOW, HIGH]."""
    def f(x: float) -> float:
        values = {n: 1.0 for n in names}
        values[free] = x
        try:
            return claims.evaluate(expr, values) - target
        except ZeroDivisionError:
            return math.nan
    a, b = math.log(LOW), math.log(HIGH)
    fa, fb = f(LOW), f(HIGH)
    if math.isnan(fa) or math.isnan(fb) or fa * fb > 0:
        return None
    for _ in range(200):
        m = (a + b) / 2
        fm = f(math.exp(m))
        if fm == 0 or math.isnan(fm):
            return math.exp(m)
        if (fm < 0) == (fa < 0):
            a, fa = m, fm
        else:
            b = m
    return math.exp((a + b) / 2)


def measured_for(check: dict[str, Any], target: float,
                 deviations: tuple[float, ...]) -> dict[str, Measured] | None:
    """Source rounds, paired, whose expression is target * (1 + d) in round d (None when no
    single source can move the expression there)."""
    names = sorted(claims.expr_names(check["expr"]))
    for free in names:
        rounds: dict[str, dict[Any, float]] = {n: {} for n in names}
        ok = True
        for i, d in enumerate(deviations):
            x = solve(check["expr"], names, free, target + abs(target) * d)
            if x is None:
                ok = False
                break
            for n in names:
                rounds[n][(i, 0)] = x if n == free else 1.0
        if ok:
            return {n: Measured(figures.Figure(rounds[n][(0, 0)]), rounds[n], "synthetic")
                    for n in names}
    return None


def outcome(check: dict[str, Any], measured: dict[str, Measured]) -> str:
    return claims.judge_interval(check, claims.expression_interval(check["expr"], measured))


def single_round(measured: dict[str, Measured]) -> dict[str, Measured]:
    return {n: Measured(m.figure, {(0, 0): m.rounds[(0, 0)]}, None) for n, m in measured.items()}


def problems_of(check: dict[str, Any]) -> list[str]:
    """What keeps a check from holding, failing or being inconclusive on synthetic figures."""
    out = []
    for want, target in targets(check).items():
        deviations = WIDE if want == INCONCLUSIVE else TIGHT
        measured = measured_for(check, target, deviations)
        if measured is None:
            out.append(f"no positive source figures make it {want} (expression at {target:g})"
                       + (": it cannot fail" if want == FAILS else ""))
            continue
        got = outcome(check, measured)
        if got != want:
            out.append(f"figures around {target:g} should make it {want}, got {got}")
        if want != INCONCLUSIVE:
            got = outcome(check, single_round(measured))
            if got != want:
                out.append(f"one round at {target:g} should make it {want}, got {got}")
    return out


def ledger_problems(ledger: list[dict[str, Any]]) -> list[str]:
    out = []
    for c in ledger:
        if c.get("testable", True) is False:
            out.append(f"{c['id']}: not testable (every claim must have checks)")
            continue
        for i, check in enumerate(c["checks"]):
            for p in problems_of(check):
                out.append(f"{c['id']} check {i + 1} ({check['what']}): {p}")
    return out


class FalsifiableTest(unittest.TestCase):
    def test_every_check_can_hold_fail_and_be_inconclusive(self) -> None:
        ledger = claims.load_ledger()
        self.assertEqual(len(ledger), 20)
        problems = ledger_problems(ledger)
        self.assertEqual(problems, [], "\n".join(problems))

    def test_a_rule_that_cannot_fail_is_caught(self) -> None:
        # The shape of a rule that cannot fail: a ratio of positive figures held to >= 0 (or a
        # ratio to a figure that is 0 by construction, as C10's arena bytes were).
        ledger = copy.deepcopy(claims.load_ledger())
        c04 = next(c for c in ledger if c["id"] == "C04")
        c04["checks"][0].update(rule="at_least", threshold=0)
        problems = ledger_problems(ledger)
        self.assertTrue(problems)
        self.assertTrue(all(p.startswith("C04 check 1") for p in problems), problems)
        self.assertTrue(any(p.endswith("it cannot fail") for p in problems), problems)

    def test_an_interval_across_the_bound_is_inconclusive(self) -> None:
        check = {"rule": "at_least", "threshold": 10, "expr": "a"}
        i = claims.Interval(11.0, 9.0, 13.0, 3, "t")
        self.assertEqual(claims.judge_interval(check, i), INCONCLUSIVE)
        self.assertEqual(claims.judge_interval(check, claims.Interval(11, 10.5, 12, 3, "t")),
                         HOLDS)
        self.assertEqual(claims.judge_interval(check, claims.Interval(8, 7, 9.9, 3, "t")), FAILS)
        self.assertEqual(claims.judge_interval(check, claims.Interval(11, None, None, 1,
                                                                      "too few rounds")), HOLDS)
        self.assertEqual(claims.judge_interval(check, claims.Interval(11, None, None, 3,
                                                                      "unbounded")), INCONCLUSIVE)
        within = {"rule": "within", "claimed": [800, 1200], "tolerance": 0.1, "expr": "a"}
        self.assertEqual(claims.passing_range(within), (720.0, 1320.0))
        self.assertEqual(claims.distance(within, 2400), "+100% above 1200")
        self.assertEqual(claims.distance(within, 400), "-50% below 800")
        self.assertEqual(claims.distance(within, 1000), "inside the claimed range")


def lab_coverage_problems(lab_dir: Path, ledger: dict[str, dict[str, Any]]) -> list[str]:
    """What a lab's scenario.json lacks for the claims it lists (make lab-NN prints them)."""
    spec = json.loads((lab_dir / "scenario.json").read_text())
    out = []
    scenarios: dict[str, dict[str, Any]] = {}
    for name in run_lab.scenario_names(spec):  # one scenario, or a list run one after another
        scenarios[name] = json.loads((ROOT / "bench" / "scenarios" / f"{name}.json").read_text())
        scenarios[name].update(spec.get("set", {}))
    micro = spec.get("micro")
    for cid in spec.get("claims", []):
        for name, src in ledger[cid].get("sources", {}).items():
            where = f"{lab_dir.name}: {cid}.{name}"
            if "micro" in src:
                if micro is None:
                    out.append(f"{where}: runs no micro suite")
                elif micro.get("suites") and src["micro"] not in micro["suites"]:
                    out.append(f"{where}: micro suite {src['micro']} not run")
                elif micro.get("filter") and not re.search(micro["filter"], src["benchmark"]):
                    out.append(f"{where}: {src['benchmark']} not in the filter")
                continue
            if src["scenario"] not in scenarios:
                out.append(f"{where}: needs scenario {src['scenario']}, the lab runs "
                           f"{', '.join(scenarios) or 'none'}")
                continue
            sc = scenarios[src["scenario"]]
            if src["server"] not in sc["servers"]:
                out.append(f"{where}: server {src['server']} not run")
            if src["point"] not in sc.get("points", ["fixed_rate", "saturation", "closed_loop"]):
                out.append(f"{where}: point {src['point']} not run")
            for key, value in src.get("params", {}).items():
                if value not in sc.get("matrix", {}).get(key, []):
                    out.append(f"{where}: cell {key}={value} not run")
    return out


class LabCoverageTest(unittest.TestCase):
    def test_each_lab_measures_every_source_of_its_claims(self) -> None:
        ledger = {c["id"]: c for c in claims.load_ledger()}
        labs = sorted(p.parent for p in (ROOT / "labs").glob("*/scenario.json"))
        self.assertTrue(labs)
        problems = [p for lab in labs for p in lab_coverage_problems(lab, ledger)]
        self.assertEqual(problems, [], "\n".join(problems))


class ReferenceMarginTest(unittest.TestCase):
    @unittest.skipUnless(figures.is_run(REFERENCE / "quick") or REFERENCE.is_dir(),
                         "no committed reference run")
    def test_no_check_passes_the_reference_by_a_margin_that_tests_nothing(self) -> None:
        runs = figures.find_runs(REFERENCE)
        problems = []
        for c in claims.load_ledger():
            if c.get("testable", True) is False:
                continue
            for i, r in enumerate(claims.evaluate_claim(c, runs).checks):
                if r.value is None or r.status == claims.INVALID or r.check["rule"] == "within":
                    continue
                t = float(r.check["threshold"])
                v = r.value
                if r.check["rule"] == "at_least":
                    margin = v / t if t > 0 else math.inf
                else:
                    margin = t / v if v > 0 else math.inf
                if margin > MAX_MARGIN:
                    problems.append(f"{c['id']} check {i + 1}: {r.shown(False)} against "
                                    f"{claims.rule_text(r.check)} ({margin:.3g}x margin)")
        self.assertEqual(problems, [], "\n".join(problems))


if __name__ == "__main__":
    unittest.main(verbosity=2)
