"""claims.py: the claims ledger for a run (make claims).

The project exists to put twenty popular performance claims (C01-C20, bench/claims.json) to
the test on the reader's own machine. bench/claims.json keeps, for each claim, the claimed
figure, where the measured figure comes from (harness rows and micro benchmarks, looked up by
figures.py beside this module) and the verdict rule as a list of checks. This script evaluates
them against a run and prints one row per claim:

  holds               every check holds on valid data
  does not hold       a check fails on valid data (the row says which)
  not valid in this run  a source the check needs is marked not valid (errors, client-bound,
                      repeats disagreeing...) and nothing failed on valid data
  no data in this run the run has no row for a source (run the scenario the row names)
  not testable here   the claim cannot be measured by a run; the ledger says why

RESULTS may be one run folder or a folder of run folders (results/runs/, or
results/reference/<machine>/ from `make bench-full`); each source is taken from the newest run
that has it. Unless --no-write, it writes ledger.md into that folder and beside it the chart
claims.png and .svg (matplotlib; the machine in the title, units on the axes).

With --readme FILE it instead rewrites the block between <!-- claims-ledger --> and
<!-- /claims-ledger --> in FILE (the top-level README) from the committed reference run,
results/reference/<machine>/ ("what we found on this machine"; make lab-figures).

Usage: bench/claims.py [--results results/latest] [--only C01,C08] [--no-write] [--out DIR]
       bench/claims.py --readme README.md [--reference results/reference] [--machine NAME]
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

from . import ROOT, figures

LEDGER = ROOT / "bench" / "claims.json"
RULES = ("within_factor", "at_least", "at_most")
HOLDS, FAILS, INVALID, NO_DATA, UNTESTABLE = (
    "holds", "does not hold", "not valid in this run", "no data in this run", "not testable here")


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
            if rule == "within_factor":
                if "claimed" not in check or float(check.get("factor", 0)) <= 1:
                    raise LedgerError(f"{cid}: within_factor needs 'claimed' and a 'factor' > 1")
            elif "threshold" not in check:
                raise LedgerError(f"{cid}: {rule} needs a 'threshold'")
        if set(sources) - used:
            raise LedgerError(
                f"{cid}: sources never used: {', '.join(sorted(set(sources) - used))}")
    return claims


def rule_text(check: dict[str, Any]) -> str:
    fmt = check.get("format")
    show = lambda v: figures.format_value(v, fmt)  # noqa: E731
    if check["rule"] == "within_factor":
        lo, hi = claimed_range(check)
        f = float(check["factor"])
        claimed = show(lo) if lo == hi else f"{show(lo)} to {show(hi)}"
        return f"within {f:g}x of {claimed} ({show(lo / f)} to {show(hi * f)})"
    op = ">=" if check["rule"] == "at_least" else "<="
    return f"{op} {show(float(check['threshold']))}"


# ---- evaluation -----------------------------------------------------------------------------

@dataclass
class CheckResult:
    check: dict[str, Any]
    status: str                  # HOLDS, FAILS, INVALID, NO_DATA
    value: float | None = None
    missing: list[str] = field(default_factory=list)
    why_invalid: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)

    def shown(self) -> str:
        if self.value is None:
            return "-"
        return figures.format_value(self.value, self.check.get("format")) + \
            (" !" if self.status == INVALID else "")


@dataclass
class ClaimResult:
    claim: dict[str, Any]
    verdict: str
    checks: list[CheckResult]
    detail: str = ""

    def measured(self) -> str:
        shown = [c.shown() for c in self.checks if c.value is not None]
        return "; ".join(shown) if shown else "-"


def judge(check: dict[str, Any], value: float) -> bool:
    lo, hi = claimed_range(check)
    if check["rule"] == "within_factor":
        f = float(check["factor"])
        return lo / f <= value <= hi * f
    if check["rule"] == "at_least":
        return value >= float(check["threshold"])
    return value <= float(check["threshold"])


def evaluate_check(check: dict[str, Any], sources: dict[str, Any],
                   runs: list[figures.RunFolder]) -> CheckResult:
    names = expr_names(check["expr"])
    values, missing, why, where = {}, [], [], []
    for name in sorted(names):
        fig = figures.figure(runs, sources[name])
        if fig is None:
            missing.append(name)
            continue
        values[name] = fig.value
        where.append(f"{name} = {figures.format_value(fig.value)} from {fig.where}")
        if not fig.valid:
            why.append(f"{name}: {'; '.join(fig.why_invalid)}")
    if missing:
        return CheckResult(check, NO_DATA, missing=missing, where=where)
    try:
        value = evaluate(check["expr"], values)
    except ZeroDivisionError:
        return CheckResult(check, INVALID, why_invalid=why + ["division by zero"], where=where)
    if why:
        return CheckResult(check, INVALID, value, why_invalid=why, where=where)
    return CheckResult(check, HOLDS if judge(check, value) else FAILS, value, where=where)


def evaluate_claim(claim: dict[str, Any], runs: list[figures.RunFolder]) -> ClaimResult:
    if claim.get("testable", True) is False:
        return ClaimResult(claim, UNTESTABLE, [], claim["why"])
    results = [evaluate_check(c, claim["sources"], runs) for c in claim["checks"]]
    statuses = [r.status for r in results]
    if FAILS in statuses:
        failed = [r for r in results if r.status == FAILS]
        detail = "; ".join(
            f"{r.check['what']}: {r.shown()}, rule {rule_text(r.check)}" for r in failed)
        return ClaimResult(claim, FAILS, results, detail)
    if INVALID in statuses:
        detail = "; ".join(dict.fromkeys(w for r in results for w in r.why_invalid))
        return ClaimResult(claim, INVALID, results, detail)
    if NO_DATA in statuses:
        scenarios = sorted({claim["sources"][m].get("scenario")
                            or f"micro {claim['sources'][m]['micro']}"
                            for r in results for m in r.missing})
        return ClaimResult(claim, NO_DATA, results, "needs " + ", ".join(scenarios))
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
    widths = [min(max(len(row[i]) for row in rows), cap) for i, cap in enumerate((4, 34, 40, 24))]
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
           "Each claim is put to the test by the rule in `bench/claims.json`; '!' marks a figure "
           "the harness does not stand behind (the reason follows).", ""]
    if chart_name:
        out += [f"![claims ledger](charts/{chart_name}.png)", ""]
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
            out.append(f"- {cr.check['what']}: `{cr.check['expr']}` = {cr.shown()}; holds if "
                       f"{rule_text(cr.check)}: **{cr.status}**")
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
          UNTESTABLE: "#9e9e9e"}


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
        if rule == "within_factor":
            f = float(cr.check["factor"])
            span = (lo / f / ref, hi * f / ref)
        elif rule == "at_least":
            span = (float(cr.check["threshold"]) / ref, hi_x)
        else:
            span = (lo_x, float(cr.check["threshold"]) / ref)
        ax.barh(y, span[1] - span[0], left=span[0], height=0.7, color="#c8e6c9", zorder=1)
        if cr.value is None:
            ax.text(1, y, "no data in this run", va="center",
                    ha="center", fontsize=7, color="#616161")
            continue
        x = cr.value / ref if ref else cr.value
        clipped = min(max(x, lo_x), hi_x)
        hollow = status == INVALID
        ax.plot(clipped, y, "o", ms=7, zorder=3, color=COLORS[status],
                markerfacecolor="white" if hollow else COLORS[status])
        note = (cr.shown() + (" (clipped)" if clipped != x else "")
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
                 f"range; filled = valid, hollow = not valid", fontsize=9)
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
    opts = p.parse_args(argv)

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
