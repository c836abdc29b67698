"""claims.py: the claims ledger for a run (make claims).

The project exists to put twenty popular performance claims (C01-C20, bench/claims.json) to
the test on the reader's own machine. bench/claims.json keeps, for each claim, the claimed
figure, where the measured figure comes from (harness rows and micro benchmarks, looked up by
figures.py beside this module) and the verdict rule as a list of checks. This script evaluates
them against a run and prints one row per claim:

  holds               every check holds on valid data: its whole 95% interval passes the rule
  does not hold       a check fails on valid data: its whole interval is on the wrong side (the
                      row says which check, premise or conclusion, and how far off)
  not valid in this run  a source the check needs is marked not valid (errors, client-bound,
                      repeats disagreeing...) and nothing failed on valid data
  no data in this run the run has no row for a source (run the scenario the row names)
  inconclusive        a check's interval straddles the rule's bound: this run cannot decide
  not testable here   the claim cannot be measured by a run; the ledger says why

The interval of a check comes from the rounds of its sources (the harness's repeats in
harness/results.jsonl, Google Benchmark's repetitions, a probe's runs) through intervals.py:
sources measured in the same rounds of one run are paired round by round (a ratio gets the
interval of the ratio itself, Fieller's or a paired bootstrap); otherwise each source gets the
interval of its mean and the expression is evaluated at their corners (the expressions are sums,
products and ratios of positive figures, monotone in each). A figure measured once (the memory
point) has no interval and is judged on its value alone, said so beside it.

RESULTS may be one run folder or a folder of run folders (results/runs/, or
results/reference/<machine>/ from `make bench-full`); each source is taken from the newest run
that has it. A folder of machine folders (results/reference/, or one you gather from several
machines) puts the machines side by side instead: per claim, each machine's figure, interval and
verdict, the committed reference results/reference/amd-epyc-2cpu-vm first (machines.md). Unless
--no-write, it writes ledger.md into that folder and beside it the chart claims.png and .svg
(matplotlib; the machine in the title, units on the axes).

With --readme FILE it instead rewrites the block between <!-- claims-ledger --> and
<!-- /claims-ledger --> in FILE (the top-level README) from the committed reference run,
results/reference/<machine>/ ("what we found on this machine"; make lab-figures).

Usage: bench/claims.py [--results results/latest] [--only C01,C08] [--no-write] [--out DIR]
       bench/claims.py --readme README.md [--reference results/reference] [--machine NAME]
       bench/claims.py --probe startup|descriptors|scheduler [--repeats N]   (probes.py)
"""

import argparse
import ast
import json
import math
import operator
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ROOT, figures, validity
from .intervals import Interval, mean_interval, ratio_interval

LEDGER = ROOT / "bench" / "claims.json"
REFERENCE_MACHINE = ROOT / "results" / "reference" / "amd-epyc-2cpu-vm"
RULES = ("within", "at_least", "at_most")
ROLES = ("premise", "conclusion", "attribution")
# The widest tolerance a `within` rule may state: beyond it the window says nothing (a factor-
# of-2 window is 0.5 below and 1.0 above).
MAX_TOLERANCE = 0.5
HOLDS, FAILS, INVALID, NO_DATA, INCONCLUSIVE, UNTESTABLE = (
    "holds", "does not hold", "not valid in this run", "no data in this run", "inconclusive",
    "not testable here")


# ---- the data file --------------------------------------------------------------------------

class LedgerError(ValueError):
    pass


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}


def expr_names(expr: str) -> set[str]:
    """Source names an expression uses; raises LedgerError on anything but + - * / ( ) names
    and numbers."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise LedgerError(f"expression '{expr}': {e}") from e
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _OPS:
                raise LedgerError(f"expression '{expr}': only + - * / are allowed")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub):
                raise LedgerError(f"expression '{expr}': only unary minus is allowed")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float)):
                raise LedgerError(f"expression '{expr}': constants must be numbers")
        elif not isinstance(node, (ast.Expression, ast.Load, ast.operator, ast.unaryop)):
            raise LedgerError(f"expression '{expr}': {type(node).__name__} is not allowed")
    return names


def evaluate(expr: str, values: dict[str, float]) -> float:
    """Arithmetic over named values; ZeroDivisionError propagates."""
    def ev(node: Any) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand)
        return _OPS[type(node.op)](ev(node.left), ev(node.right))
    return ev(ast.parse(expr, mode="eval"))


def claimed_range(check: dict[str, Any]) -> tuple[float, float]:
    c = check.get("claimed")
    if isinstance(c, list):
        return float(c[0]), float(c[1])
    if c is None:
        c = check["threshold"]
    return float(c), float(c)


def load_ledger(path: str | Path = LEDGER) -> list[dict[str, Any]]:
    """The claims, validated; raises LedgerError naming the claim and the problem."""
    doc = json.loads(Path(path).read_text())
    claims = doc["claims"]
    for c in claims:
        cid = c.get("id", "?")
        for key in ("id", "claim", "claimed"):
            if key not in c:
                raise LedgerError(f"{cid}: lacks '{key}'")
        if c.get("testable", True) is False:
            if not c.get("why"):
                raise LedgerError(f"{cid}: not testable, but no 'why'")
            continue
        sources = c.get("sources") or {}
        checks = c.get("checks") or []
        if not sources or not checks:
            raise LedgerError(f"{cid}: a testable claim needs sources and checks")
        for name, src in sources.items():
            try:
                figures.check_source(src)
            except figures.SourceError as e:
                raise LedgerError(f"{cid}: source {name}: {e}") from e
        used = set()
        for check in checks:
            for key in ("what", "expr", "rule"):
                if key not in check:
                    raise LedgerError(f"{cid}: a check lacks '{key}'")
            names = expr_names(check["expr"])
            unknown = names - set(sources)
            if unknown:
                raise LedgerError(
                    f"{cid}: '{check['expr']}' uses unknown {', '.join(sorted(unknown))}")
            used |= names
            rule = check["rule"]
            if rule not in RULES:
                raise LedgerError(f"{cid}: rule '{rule}' is not one of {', '.join(RULES)}")
            if rule == "within":
                tol = check.get("tolerance")
                if "claimed" not in check or not isinstance(tol, (int, float)) \
                        or not 0 <= tol <= MAX_TOLERANCE:
                    raise LedgerError(f"{cid}: within needs 'claimed' and a 'tolerance' "
                                      f"from 0 to {MAX_TOLERANCE:g}")
            elif "threshold" not in check:
                raise LedgerError(f"{cid}: {rule} needs a 'threshold'")
            if check.get("role", "conclusion") not in ROLES:
                raise LedgerError(f"{cid}: role '{check['role']}' is not one of "
                                  f"{', '.join(ROLES)}")
        if set(sources) - used:
            raise LedgerError(
                f"{cid}: sources never used: {', '.join(sorted(set(sources) - used))}")
    return claims


def passing_range(check: dict[str, Any]) -> tuple[float, float]:
    """The figures for which the check holds: [low, high] (either may be infinite)."""
    if check["rule"] == "within":
        lo, hi = claimed_range(check)
        tol = float(check["tolerance"])
        return lo * (1 - tol), hi * (1 + tol)
    if check["rule"] == "at_least":
        return float(check["threshold"]), math.inf
    return -math.inf, float(check["threshold"])


def rule_text(check: dict[str, Any]) -> str:
    fmt = check.get("format")
    show = lambda v: figures.format_value(v, fmt)  # noqa: E731
    if check["rule"] == "within":
        lo, hi = claimed_range(check)
        tol = float(check["tolerance"])
        claimed = show(lo) if lo == hi else f"{show(lo)} to {show(hi)}"
        plo, phi = passing_range(check)
        return f"within {tol:.0%} of {claimed} ({show(plo)} to {show(phi)})"
    op = ">=" if check["rule"] == "at_least" else "<="
    return f"{op} {show(float(check['threshold']))}"


def distance(check: dict[str, Any], value: float) -> str:
    """How far a figure is from the claimed figure or range ('+92% above 1200 cycles'), or from
    the threshold ('2.1x the threshold')."""
    fmt = check.get("format")
    if check["rule"] == "within":
        lo, hi = claimed_range(check)
        if lo <= value <= hi:
            return "inside the claimed range" if lo != hi else "exactly as claimed"
        edge = lo if value < lo else hi
        if edge == 0:
            return f"{figures.format_value(value - edge, fmt)} from 0"
        where = "below" if value < lo else "above"
        return f"{value / edge - 1:+.0%} {where} {figures.format_value(edge, fmt)}"
    threshold = float(check["threshold"])
    if threshold == 0:
        return f"{figures.format_value(value, fmt)} against 0"
    return f"{value / threshold:.3g}x the threshold"


# ---- evaluation -----------------------------------------------------------------------------

@dataclass
class Measured:
    """A source's figure in a run and its rounds (round -> value), scale applied."""

    figure: figures.Figure
    rounds: dict[Any, float]
    paired_key: str | None = None  # sources with the same key were measured in the same rounds


def _harness_rounds(fig: figures.Figure, source: dict[str, Any]) -> tuple[dict[Any, float], str]:
    """The rounds of a harness source: its metric per repeat in results.jsonl of the run the
    figure came from (probe rows keep their figures under "metrics")."""
    path = (fig.run or Path(".")) / "harness" / "results.jsonl"
    getter = validity.ROW_METRICS.get(source["metric"])
    rounds: dict[Any, float] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return rounds, str(fig.run)
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("server") != source["server"] or row.get("point") != source["point"]:
            continue
        if "params" in source and row.get("params") != source["params"]:
            continue
        if getter is not None:
            if row.get("rps") is None and row["point"] not in ("memory", "cache"):
                continue  # a failed measurement: no figures
            value = getter(row)
        else:
            value = (row.get("metrics") or {}).get(source["metric"])
        if value is None:
            continue
        key = (row.get("repeat", 0), row.get("round", 0))
        rounds[key] = float(value) * float(source.get("scale", 1.0))
    return rounds, str(fig.run)


def _micro_rounds(fig: figures.Figure, source: dict[str, Any]) -> dict[Any, float]:
    """The repetitions of a micro benchmark (Google Benchmark's iteration rows)."""
    rounds: dict[Any, float] = {}
    benchmarks = figures.RunFolder(fig.run).micro(source["micro"]) if fig.run else None
    for b in benchmarks or []:
        if b.get("run_type", "iteration") != "iteration":
            continue
        if source["benchmark"] not in (b.get("run_name"), b.get("name")):
            continue
        if source["field"] not in b:
            continue
        v = float(b[source["field"]])
        if source["field"] in ("real_time", "cpu_time"):
            v *= figures.TIME_TO_NS.get(b.get("time_unit", "ns"), 1.0)
        rounds[b.get("repetition_index", len(rounds))] = v * float(source.get("scale", 1.0))
    return rounds


def measure_source(runs: list[figures.RunFolder], source: dict[str, Any]) -> Measured | None:
    fig = figures.figure(runs, source)
    if fig is None:
        return None
    if figures.kind(source) == "micro":
        return Measured(fig, _micro_rounds(fig, source))
    rounds, key = _harness_rounds(fig, source)
    return Measured(fig, rounds, key)


def _split_ratio(expr: str) -> tuple[str, str] | None:
    """'a / (b + c)' -> ('a', '(b + c)') when the expression's top is a division."""
    tree = ast.parse(expr, mode="eval").body
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Div):
        return ast.unparse(tree.left), ast.unparse(tree.right)
    return None


def expression_interval(expr: str, measured: dict[str, Measured]) -> Interval:
    """The expression's estimate and 95% interval from its sources' rounds (module docstring).
    Raises ZeroDivisionError when the estimate divides by zero."""
    names = sorted(measured)
    keys = {measured[n].paired_key for n in names}
    common = set.intersection(*(set(measured[n].rounds) for n in names)) if names else set()
    paired = (len(keys) == 1 and None not in keys and len(common) >= 2
              and all(set(measured[n].rounds) == common for n in names))
    if paired:
        rounds = sorted(common, key=str)
        per = [{n: measured[n].rounds[k] for n in names} for k in rounds]
        split = _split_ratio(expr)
        if split is not None:
            num = [evaluate(split[0], v) for v in per]
            den = [evaluate(split[1], v) for v in per]
            if sum(den) == 0:
                raise ZeroDivisionError("the denominator's rounds sum to zero")
            return ratio_interval(num, den)
        return mean_interval([evaluate(expr, v) for v in per])
    singles: dict[str, Interval] = {}
    for n in names:
        rounds_ = list(measured[n].rounds.values())
        singles[n] = (mean_interval(rounds_) if rounds_ else
                      Interval(measured[n].figure.value, None, None, 1, "too few rounds"))
    estimate = evaluate(expr, {n: i.estimate for n, i in singles.items()})
    n_min = min((i.n for i in singles.values()), default=1)
    if not all(i.bounded for i in singles.values()):
        return Interval(estimate, None, None, n_min, "too few rounds")
    corners = []
    for bits in range(2 ** len(names)):
        point = {n: (singles[n].high if bits >> i & 1 else singles[n].low)
                 for i, n in enumerate(names)}
        try:
            corners.append(evaluate(expr, point))  # type: ignore[arg-type]
        except ZeroDivisionError:
            return Interval(estimate, None, None, n_min, "unbounded")
    methods = sorted({i.method for i in singles.values()})
    return Interval(estimate, min(corners), max(corners), n_min,
                    "corners of " + "/".join(methods))


def judge_interval(check: dict[str, Any], interval: Interval) -> str:
    """HOLDS when the whole interval passes the rule, FAILS when none of it does, INCONCLUSIVE
    when it straddles a bound. Without an interval (one round) the estimate alone decides; an
    unbounded interval (a ratio to a figure not clearly away from zero) decides nothing."""
    lo, hi = passing_range(check)
    if interval.method == "unbounded" or math.isnan(interval.estimate):
        return INCONCLUSIVE
    if interval.low is None or interval.high is None:
        return HOLDS if lo <= interval.estimate <= hi else FAILS
    if lo <= interval.low and interval.high <= hi:
        return HOLDS
    if interval.high < lo or interval.low > hi:
        return FAILS
    return INCONCLUSIVE


def judge(check: dict[str, Any], value: float) -> bool:
    """One figure without an interval against the rule."""
    lo, hi = passing_range(check)
    return lo <= value <= hi


@dataclass
class CheckResult:
    check: dict[str, Any]
    status: str                  # HOLDS, FAILS, INVALID, NO_DATA, INCONCLUSIVE
    value: float | None = None
    interval: Interval | None = None
    missing: list[str] = field(default_factory=list)
    why_invalid: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)

    @property
    def role(self) -> str:
        return str(self.check.get("role", "conclusion"))

    def interval_text(self) -> str:
        """'[2078, 2650]' (the bounds in the figure's format without its unit), or why there is
        none."""
        i = self.interval
        if i is None:
            return ""
        if i.low is None or i.high is None:
            return f"(no interval: {'1 round' if i.n == 1 else i.method})"
        match = re.match(r"([^{]*\{[^}]*\})", self.check.get("format") or "")
        fmt = match.group(1) if match else None
        return f"[{figures.format_value(i.low, fmt)}, {figures.format_value(i.high, fmt)}]"

    def shown(self, with_interval: bool = True) -> str:
        if self.value is None:
            return "-"
        text = figures.format_value(self.value, self.check.get("format"))
        if with_interval and self.interval is not None:
            text += " " + self.interval_text()
        return text + (" !" if self.status == INVALID else "")


@dataclass
class ClaimResult:
    claim: dict[str, Any]
    verdict: str
    checks: list[CheckResult]
    detail: str = ""

    def measured(self, with_interval: bool = True) -> str:
        shown = [c.shown(with_interval) for c in self.checks if c.value is not None]
        return "; ".join(shown) if shown else "-"


def evaluate_check(check: dict[str, Any], sources: dict[str, Any],
                   runs: list[figures.RunFolder]) -> CheckResult:
    names = expr_names(check["expr"])
    measured, missing, why, where = {}, [], [], []
    for name in sorted(names):
        m = measure_source(runs, sources[name])
        if m is None:
            missing.append(name)
            continue
        measured[name] = m
        fig = m.figure
        values = list(m.rounds.values())
        shown = (f"{figures.format_value(sum(values) / len(values))} (mean of {len(values)} "
                 f"rounds: {', '.join(figures.format_value(v) for v in values[:10])}"
                 f"{'...' if len(values) > 10 else ''})" if values else
                 f"{figures.format_value(fig.value)} (no rounds found; the summary's median)")
        where.append(f"{name} = {shown} from {fig.where}")
        if not fig.valid:
            why.append(f"{name}: {'; '.join(fig.why_invalid)}")
    if missing:
        return CheckResult(check, NO_DATA, missing=missing, where=where)
    try:
        interval = expression_interval(check["expr"], measured)
    except ZeroDivisionError:
        return CheckResult(check, INVALID, why_invalid=why + ["division by zero"], where=where)
    value = interval.estimate
    if why:
        return CheckResult(check, INVALID, value, interval, why_invalid=why, where=where)
    return CheckResult(check, judge_interval(check, interval), value, interval, where=where)


def _check_detail(r: CheckResult) -> str:
    role = "" if r.role == "conclusion" else f"{r.role}: "
    dist = f", {distance(r.check, r.value)}" if r.value is not None else ""
    return f"{role}{r.check['what']}: {r.shown()}{dist}; rule {rule_text(r.check)}"


def evaluate_claim(claim: dict[str, Any], runs: list[figures.RunFolder]) -> ClaimResult:
    if claim.get("testable", True) is False:
        return ClaimResult(claim, UNTESTABLE, [], claim["why"])
    results = [evaluate_check(c, claim["sources"], runs) for c in claim["checks"]]
    statuses = [r.status for r in results]
    if FAILS in statuses:
        detail = "; ".join(_check_detail(r) for r in results if r.status == FAILS)
        return ClaimResult(claim, FAILS, results, detail)
    if INVALID in statuses:
        detail = "; ".join(dict.fromkeys(w for r in results for w in r.why_invalid))
        return ClaimResult(claim, INVALID, results, detail)
    if NO_DATA in statuses:
        scenarios = sorted({claim["sources"][m].get("scenario")
                            or f"micro {claim['sources'][m]['micro']}"
                            for r in results for m in r.missing})
        return ClaimResult(claim, NO_DATA, results, "needs " + ", ".join(scenarios))
    if INCONCLUSIVE in statuses:
        detail = "; ".join(_check_detail(r) for r in results if r.status == INCONCLUSIVE)
        return ClaimResult(claim, INCONCLUSIVE, results, "the interval straddles: " + detail)
    return ClaimResult(claim, HOLDS, results, "")


# ---- output ---------------------------------------------------------------------------------

def machine_of(runs: list[figures.RunFolder]) -> str:
    return runs[0].machine() if runs else "no run"


def print_ledger(results: list[ClaimResult], results_path: str | Path,
                 runs: list[figures.RunFolder]) -> None:
    print(f"claims ledger for {results_path} ({len(runs)} run folders; {machine_of(runs)})")
    rows = [("id", "claimed", "measured", "verdict")]
    for r in results:
        rows.append((r.claim["id"], r.claim["claimed"], r.measured(), r.verdict))
    widths = [min(max(len(row[i]) for row in rows), cap) for i, cap in enumerate((4, 30, 60, 24))]
    for row in rows:
        cells = [textwrap.shorten(v, w, placeholder="...") if len(v) > w else v
                 for v, w in zip(row, widths)]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    for r in results:
        if r.detail:
            print(f"  {r.claim['id']} {r.verdict}: {r.detail}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    print("(" + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")")
    if counts.get(NO_DATA, 0) > len(results) // 2:
        hint = "" if len(runs) > 1 else "; RESULTS=results/runs looks across all your runs"
        print(f"(most claims have no data here: `make bench-full` runs every scenario{hint})")


def ledger_markdown(results: list[ClaimResult], results_path: str | Path,
                    runs: list[figures.RunFolder], chart_name: str | None = None) -> str:
    out = ["# Claims ledger", "",
           f"Run: `{results_path}` ({len(runs)} run folders). Machine: {machine_of(runs)}.", "",
           "Each claim is put to the test by the rule in `bench/claims.json`; each figure is the "
           "mean of its rounds with its 95% interval in brackets; '!' marks a figure the harness "
           "does not stand behind (the reason follows).", ""]
    if chart_name:
        out += [f"![claims ledger]({chart_name}.png)", ""]
    out += ["| id | claim | claimed | measured | verdict |", "|---|---|---|---|---|"]
    for r in results:
        c = r.claim
        out.append(
            f"| {c['id']} | {c['claim']} | {c['claimed']} | {r.measured()} | **{r.verdict}** |")
    out += ["", "## How each verdict was reached", ""]
    for r in results:
        c = r.claim
        out.append(f"**{c['id']}** ({r.verdict}). {c['claim']}.")
        if r.verdict == UNTESTABLE:
            out.append(f"Why: {c['why']}.")
        for cr in r.checks:
            role = "" if cr.role == "conclusion" else f"({cr.role}) "
            dist = f" ({distance(cr.check, cr.value)})" if cr.value is not None else ""
            out.append(f"- {role}{cr.check['what']}: `{cr.check['expr']}` = {cr.shown()}{dist}; "
                       f"holds if {rule_text(cr.check)}: **{cr.status}**")
            for w in cr.where:
                out.append(f"  - {w}")
            for m in cr.missing:
                src = c["sources"][m]
                out.append(f"  - {m}: no such row ({json.dumps(src, sort_keys=True)})")
            for w in cr.why_invalid:
                out.append(f"  - not valid: {w}")
        if c.get("note"):
            out.append(f"Note: {c['note']}.")
        if c.get("lab"):
            out.append(f"Lab: labs/{c['lab']}-*.")
        out.append("")
    return "\n".join(out)


COLORS = {HOLDS: "#2e7d32", FAILS: "#c62828", INVALID: "#9e9e9e", NO_DATA: "#9e9e9e",
          INCONCLUSIVE: "#ef6c00", UNTESTABLE: "#9e9e9e"}


def draw_chart(results: list[ClaimResult], runs: list[figures.RunFolder], results_path: str | Path,
               out_dir: Path, name: str = "claims") -> Path:
    """One row per check: measured / claimed on a log axis, the passing region shaded."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import iolab_plots  # notebooks/ (PYTHONPATH): the project's chart style
    iolab_plots.apply_style()
    if not runs:
        raise figures.SourceError("no run to draw the ledger of")
    newest = iolab_plots.Run(runs[0].dir)

    rows: list[tuple[str, CheckResult | None, ClaimResult | None, str]] = []
    for claim_result in results:
        claim_id = claim_result.claim["id"]
        if claim_result.verdict == UNTESTABLE:
            rows.append((claim_id, None, None, UNTESTABLE))
            continue
        checks = claim_result.checks
        for i, check in enumerate(checks):
            label = claim_id + (f" {chr(ord('a') + i)}" if len(checks) > 1 else "")
            rows.append((label, check, claim_result, check.status))
    lo_x, hi_x = 1e-3, 1e3
    height = max(3.0, 0.32 * len(rows) + 1.6)
    fig, ax = plt.subplots(figsize=(9, height))
    for y, (label, cr, r, status) in enumerate(rows):
        if cr is None:
            ax.text(1, y, "not testable here", va="center",
                    ha="center", fontsize=7, color="#616161")
            continue
        lo, hi = claimed_range(cr.check)
        ref = math.sqrt(lo * hi) if lo > 0 and hi > 0 else 1.0
        rule = cr.check["rule"]
        plo, phi = passing_range(cr.check)
        if rule == "within":
            span = (plo / ref, phi / ref)
        elif rule == "at_least":
            span = (plo / ref, hi_x)
        else:
            span = (lo_x, phi / ref)
        ax.barh(y, span[1] - span[0], left=span[0], height=0.7, color="#c8e6c9", zorder=1)
        if cr.value is None:
            ax.text(1, y, "no data in this run", va="center",
                    ha="center", fontsize=7, color="#616161")
            continue
        x = cr.value / ref if ref else cr.value
        clipped = min(max(x, lo_x), hi_x)
        hollow = status == INVALID
        iv = cr.interval
        if iv is not None and iv.low is not None and iv.high is not None and ref:
            ends = [min(max(v / ref, lo_x), hi_x) for v in (iv.low, iv.high)]
            ax.plot(ends, [y, y], "-", lw=2, zorder=3, color=COLORS[status], alpha=0.6)
        ax.plot(clipped, y, "o", ms=7, zorder=3, color=COLORS[status],
                markerfacecolor="white" if hollow else COLORS[status])
        note = (cr.shown(False) + (" (clipped)" if clipped != x else "")
                + ("  not valid" if hollow else ""))
        ax.text(clipped * 1.25, y, note, va="center", fontsize=7, zorder=4)
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ax.axvline(1.0, color="#424242", lw=0.8, ls="--", zorder=2)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("measured / claimed figure (ratio, log scale; 1 = exactly as claimed)")
    ax.set_ylabel("claim and check (bench/claims.json)")
    where = (newest.label() if len(runs) == 1 else
             f"{len(runs)} runs in {Path(results_path).resolve().name}/, newest {newest.name}")
    ax.set_title(f"Claims ledger: {newest.machine()}\n{where}\ngreen band = the rule's passing "
                 f"range; bar = 95% interval; filled = valid, hollow = not valid; "
                 f"orange = inconclusive", fontsize=9)
    ax.grid(axis="x", alpha=0.35)
    fig.tight_layout()
    # Beside ledger.md, the table it draws; charts/ holds the notebooks' charts, each with the
    # CSV its figures are checked against (tests/harness/regenerate_test.py).
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=110)
    fig.savefig(out / f"{name}.svg", metadata={"Date": None})
    plt.close(fig)
    return out / f"{name}.png"


README_BLOCK = re.compile(r"(<!-- claims-ledger -->\n)(.*?)(<!-- /claims-ledger -->)", re.S)


def readme_block(results: list[ClaimResult], machine_dir: Path | None,
                 runs: list[figures.RunFolder]) -> str:
    """The ledger table for the top-level README, from the reference run (or a placeholder)."""
    if not runs or machine_dir is None:
        return ("No reference run is committed yet. Once `results/reference/<machine>/` holds one "
                "(`make bench-full`), `make lab-figures` fills this table from it.\n")
    rel = machine_dir.resolve()
    if rel.is_relative_to(ROOT):
        rel = rel.relative_to(ROOT)
    out = [f"What we found on {machine_of(runs)} (`make claims RESULTS={rel}`; the rules are in "
           f"`bench/claims.json`, '!' marks a figure the harness does not stand behind):", "",
           "| id | claim | claimed | measured here | verdict |", "|---|---|---|---|---|"]
    for r in results:
        c = r.claim
        claim = textwrap.shorten(c["claim"], 90, placeholder="...")
        out.append(f"| {c['id']} | {claim} | {c['claimed']} | {r.measured()} | {r.verdict} |")
    return "\n".join(out) + "\n"


def write_readme(path: str | Path, claims: list[dict[str, Any]], reference: str | Path,
                 machine: str | None) -> int:
    try:
        machine_dir, runs = figures.reference_runs(reference, machine)
    except figures.SourceError as e:
        print(f"claims: {e}", file=sys.stderr)
        return 2
    results = [evaluate_claim(c, runs) for c in claims] if runs else []
    text = Path(path).read_text()
    if not README_BLOCK.search(text):
        print(f"claims: {path} has no <!-- claims-ledger --> ... <!-- /claims-ledger --> block",
              file=sys.stderr)
        return 2
    block = readme_block(results, machine_dir, runs)
    new = README_BLOCK.sub(lambda m: m.group(1) + block + m.group(3), text)
    if new != text:
        Path(path).write_text(new)
    print(f"claims: {path}: ledger block {'written' if new != text else 'unchanged'} "
          f"({'from ' + str(machine_dir) if runs else 'no reference run'})")
    return 0


# ---- machines side by side ------------------------------------------------------------------

def machine_folders(path: str | Path) -> list[Path]:
    """The machine folders of a folder of machine folders: its subfolders that are not run
    folders but hold some ([] when `path` is a run or a folder of runs, one machine)."""
    path = Path(path)
    if figures.is_run(path) or not path.is_dir():
        return []
    return [c for c in sorted(path.iterdir())
            if c.is_dir() and not c.is_symlink() and not figures.is_run(c) and figures.find_runs(c)]


def side_by_side_order(machines: list[Path], reference: Path | None = REFERENCE_MACHINE
                       ) -> list[Path]:
    """The committed reference first (added when it is not among them), then the others by
    name."""
    out = sorted(machines, key=lambda m: m.name)
    if reference is not None and reference.is_dir() and figures.find_runs(reference):
        out = [reference] + [m for m in out if m.resolve() != reference.resolve()]
    return out


def print_side_by_side(claims: list[dict[str, Any]], columns: list[tuple[str, str,
                       list[ClaimResult]]]) -> str:
    """Per claim, one line per machine: figure with interval and verdict. Returns markdown."""
    md = ["# Claims ledger, machines side by side", "",
          "Each figure is the mean of its rounds with its 95% interval in brackets; '!' marks a "
          "figure the harness does not stand behind. Machines:", ""]
    for name, desc, _ in columns:
        md.append(f"- `{name}`: {desc}")
    md += ["", "| id | claimed | " + " | ".join(n for n, _, _ in columns) + " |",
           "|---|---|" + "---|" * len(columns)]
    width = max(len(n) for n, _, _ in columns)
    print("claims ledger, machines side by side (" + "; ".join(
        f"{n}: {d}" for n, d, _ in columns) + ")")
    for i, claim in enumerate(claims):
        print(f"{claim['id']}  {textwrap.shorten(claim['claim'], 90, placeholder='...')} "
              f"(claimed {claim['claimed']})")
        cells = []
        for name, _, results in columns:
            r = results[i]
            print(f"    {name.ljust(width)}  {r.measured()}  -> {r.verdict}")
            cells.append(f"{r.measured()} **{r.verdict}**")
        md.append(f"| {claim['id']} | {claim['claimed']} | " + " | ".join(cells) + " |")
    counts = []
    for name, _, results in columns:
        tally: dict[str, int] = {}
        for r in results:
            tally[r.verdict] = tally.get(r.verdict, 0) + 1
        counts.append(f"{name}: " + ", ".join(f"{n} {v}" for v, n in tally.items()))
    print("(" + "; ".join(counts) + ")")
    return "\n".join(md) + "\n"


def side_by_side(claims: list[dict[str, Any]], machines: list[Path]) -> tuple[int, str]:
    columns = []
    for m in machines:
        runs = figures.find_runs(m)
        columns.append((m.name, machine_of(runs), [evaluate_claim(c, runs) for c in claims]))
    return 0, print_side_by_side(claims, columns)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(ROOT / "results" / "latest"),
                   help="a run folder or a folder of run folders")
    p.add_argument("--ledger", default=str(LEDGER), help=argparse.SUPPRESS)
    p.add_argument("--only", help="comma-separated claim ids")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument(
        "--out", help="write ledger.md and claims.png/.svg here instead of the results folder")
    p.add_argument("--readme", help="rewrite the <!-- claims-ledger --> block of this file from "
                                    "the reference run (--reference, --machine) instead")
    p.add_argument("--reference", default=str(ROOT / "results" / "reference"))
    p.add_argument("--machine")
    p.add_argument("--probe", help="run a probe of bench/probes/ (startup, descriptors, "
                                   "scheduler) into a new run folder under --results-dir instead")
    p.add_argument("--results-dir", default=str(ROOT / "results"), help=argparse.SUPPRESS)
    p.add_argument("--bin-dir", default=str(ROOT / "build" / "bin"), help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, help="a probe's repeats (runs for startup)")
    p.add_argument("--no-reference", action="store_true",
                   help="side by side: do not add the committed reference as the first column")
    opts = p.parse_args(argv)
    if opts.probe:
        from . import HarnessError, probes
        try:
            probes.run_probe(opts.probe, Path(opts.results_dir), Path(opts.bin_dir),
                             opts.repeats)
        except HarnessError as e:
            print(f"claims: probe {opts.probe}: {e}", file=sys.stderr)
            return 1
        return 0

    try:
        claims = load_ledger(opts.ledger)
    except (LedgerError, OSError, json.JSONDecodeError, KeyError) as e:
        print(f"claims: {opts.ledger}: {e}", file=sys.stderr)
        return 2
    if opts.only:
        wanted = [c.strip().upper() for c in opts.only.split(",")]
        unknown = set(wanted) - {c["id"] for c in claims}
        if unknown:
            print(f"claims: no claim {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        claims = [c for c in claims if c["id"] in wanted]
    if opts.readme:
        return write_readme(opts.readme, claims, opts.reference, opts.machine)
    results_path = Path(opts.results)
    if not results_path.exists():
        print(f"claims: {results_path} does not exist (make bench, or RESULTS=<run folder>)",
              file=sys.stderr)
        return 2
    machines = machine_folders(results_path)
    if machines:
        order = side_by_side_order(machines, None if opts.no_reference else REFERENCE_MACHINE)
        try:
            rc, md = side_by_side(claims, order)
        except figures.SourceError as e:
            print(f"claims: {e}", file=sys.stderr)
            return 2
        if not opts.no_write:
            out_dir = Path(opts.out) if opts.out else results_path.resolve()
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "machines.md").write_text(md)
            print(f"claims: wrote {out_dir / 'machines.md'}")
        return rc
    runs = figures.find_runs(results_path)
    if not runs:
        print(f"claims: no run folder at or under {results_path}", file=sys.stderr)
        return 2
    try:
        results = [evaluate_claim(c, runs) for c in claims]
    except figures.SourceError as e:
        print(f"claims: {e}", file=sys.stderr)
        return 2
    print_ledger(results, results_path, runs)
    if opts.no_write:
        return 0
    out_dir = Path(opts.out) if opts.out else results_path.resolve()
    chart = draw_chart(results, runs, results_path, out_dir)
    (out_dir / "ledger.md").write_text(ledger_markdown(results, results_path, runs, "claims"))
    print(f"claims: wrote {out_dir / 'ledger.md'} and {chart} (+ .svg)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
