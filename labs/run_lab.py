#!/usr/bin/python3
"""run_lab.py: runs a lab's measurement into a results run (make lab-NN).

A lab says what to measure in labs/NN-topic/scenario.json, through the public command lines of
the harness (so a lab never depends on the harness's insides):

  {"scenario": "c10k",                        an existing bench/scenarios/<name>.json (or a list:
                                              one run folder each)
   "set": {"servers": ["select", "epoll_et"],  fields overridden with bench/run.py --set
           "repeats": 1},
   "micro": {"suites": ["syscalls"],           optional: bench/micro/run_micro.py suites and a
             "filter": "Getppid|Vdso"},        --benchmark_filter, written into the same run
   "claims": ["C08", "C14"]}                   optional: ledger rows printed after the run

A lab with only "micro" gets a run folder of its own from run_micro.py. A lab may instead ship
an executable `run` script (called with --build-dir DIR --results-dir DIR) for a measurement the
harness does not make. Either way the run folder is labelled lab-NN
(results/runs/<stamp>-lab-NN/); results/latest points at it, like any run, and the line
`run_lab: ... results in DIR` names it.

Usage: labs/run_lab.py NN [--build-dir build] [--results-dir results] [--dry-run]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fill_figures  # beside this file (and through it iolab_bench.figures)
from run_check import find_lab  # beside this file

LABS = Path(__file__).resolve().parent
ROOT = LABS.parent

PREDICTIONS = "predictions.md"


def newest_run(results_dir: Path, suffix: str) -> Path | None:
    runs = sorted((Path(results_dir) / "runs").glob(f"*-{suffix}"))
    return runs[-1] if runs else None


def scenario_names(spec: dict[str, Any]) -> list[str]:
    """The scenarios a scenario.json names: one ("c10k"), a list, or none (micro suites only)."""
    names = spec.get("scenario", [])
    return [names] if isinstance(names, str) else list(names)


def commands(lab: Path, spec: dict[str, Any], build_dir: Path,
             results_dir: Path) -> list[tuple[list[str], str]]:
    """The commands a scenario.json asks for, in order: [(argv, what)]."""
    label = f"lab-{lab.name[:2]}"
    bin_dir = str(Path(build_dir) / "bin")
    out = []
    for name in scenario_names(spec):
        argv = ["/usr/bin/python3", str(ROOT / "bench" / "run.py"), "--scenario", name,
                "--label", label, "--results-dir", str(results_dir), "--bin-dir", bin_dir]
        for key, value in spec.get("set", {}).items():
            argv += ["--set", f"{key}={json.dumps(value)}"]
        out.append((argv, "harness"))
    if "micro" in spec:
        micro = spec["micro"]
        argv = ["/usr/bin/python3", str(ROOT / "bench" / "micro" / "run_micro.py"),
                "--bin-dir", bin_dir, "--results-dir", str(results_dir)]
        if micro.get("suites"):
            argv += ["--suites", ",".join(micro["suites"])]
        if micro.get("filter"):
            argv += ["--filter", micro["filter"]]
        if micro.get("min_time") is not None:
            argv += ["--min-time", str(micro["min_time"])]
        if "scenario" not in spec:  # a run folder of its own, named after the lab
            argv += ["--label", label]
        out.append((argv, "micro"))
    return out


def read_predictions(path: Path) -> dict[str, str]:
    """`key: value` lines of a predictions.md, in order ('' when unfilled); {} when absent.
    Lines starting with '#', blank lines and lines without a colon are prose."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def prediction_template(lab: Path) -> str:
    """The predictions.md a lab ships: one empty `key:` line per figure of its figures.json."""
    nn = lab.name[:2]
    lines = [f"# Lab {nn}: your predictions, written before `make lab-{nn}`. One figure per",
             "# line after the colon, with its unit (`2 MB`, `1.5 us`, `x3`); leave a line empty",
             f"# if you have no guess. `make lab-{nn}` prints each beside this machine's figure",
             "# and the reference machine's. The questions are in the README's Predict section."]
    for key, source in fill_figures.load_sources(lab).items():
        lines += [f"# {describe_source(source)}", f"{key}:"]
    return "\n".join(lines) + "\n"


def describe_source(source: dict) -> str:
    """What a figures.json source measures, in one line, for the predictions template."""
    unit = (source.get("format") or "").replace("{", "").split("}")[-1].strip()
    unit = f" ({unit})" if unit else ""
    if "micro" in source:
        return f"micro {source['micro']}: {source['benchmark']} {source['field']}{unit}"
    params = ", ".join(f"{k}={v}" for k, v in (source.get("params") or {}).items())
    return (f"{source['scenario']}: server_{source['server']}, {source['metric']} at "
            f"{source['point']}{' ' + params if params else ''}{unit}")


def announce_predictions(lab: Path, path: Path) -> dict[str, str]:
    """Before the run: the filled predictions, or (missing or unfilled) the template to fill.
    Never waits for input (CI has none): the run goes on either way."""
    preds = read_predictions(path)
    if not any(preds.values()):
        print(f"run_lab: no predictions in {path} yet. Before you look at the results, write "
              f"your guess after each key (the README's Predict section asks the questions):")
        sys.stdout.write(prediction_template(lab))
        print("run_lab: running anyway; without predictions there is nothing to compare with.")
        return {}
    filled = sum(1 for v in preds.values() if v)
    print(f"run_lab: {filled} of {len(preds)} predictions read from {path}")
    return preds


def _shown(fig, source: dict, notes: list[str], where: str) -> str:  # type: ignore[no-untyped-def]
    """A figure as a cell: the value with '!' when not valid (the reason goes in `notes`)."""
    if fig is None:
        return "-"
    text = fill_figures.figures.format_value(fig.value, source.get("format"))
    if not fig.valid:
        notes.append(f"{where}: {'; '.join(fig.why_invalid)}")
        text += f" !{len(notes)}"
    return text


def print_side_by_side(lab: Path, preds: dict[str, str], run_dir: Path | list[Path],
                       reference: Path, machine: str | None = None) -> None:
    """Per figure key: the prediction, this run's figure (or these runs') and the reference's."""
    figures = fill_figures.figures
    sources = fill_figures.load_sources(lab)
    if not sources:
        return
    here = [r for d in ([run_dir] if isinstance(run_dir, Path) else run_dir)
            for r in figures.find_runs(d)]
    try:
        ref_dir, ref = figures.reference_runs(reference, machine)
    except figures.SourceError as e:
        ref_dir, ref = None, []
        print(f"run_lab: reference: {e}")
    ref_name = f"{ref_dir.name}: {ref[0].machine()}" if ref else "none committed"
    this = here[0].machine() if here else "no run"
    print(f"\nrun_lab: lab-{lab.name[:2]}: prediction, this machine ({this}), the reference "
          f"machine ({ref_name})")
    notes: list[str] = []
    rows = [("figure", "prediction", "this machine", "reference")]
    for key, source in sources.items():
        rows.append((key, preds.get(key) or "-",
                     _shown(figures.figure(here, source) if here else None, source, notes,
                            f"{key}, this machine"),
                     _shown(figures.figure(ref, source) if ref else None, source, notes,
                            f"{key}, reference")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    for i, note in enumerate(notes, 1):
        print(f"  !{i} not valid: {note}")
    if not any(preds.values()):
        print(f"run_lab: next time, fill {lab.relative_to(ROOT)}/{PREDICTIONS} first")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lab", help="NN or NN-topic")
    p.add_argument("--build-dir", default=str(ROOT / "build"))
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--charts", action="store_true", help="then `make charts RESULTS=<run>`")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--reference", default=str(ROOT / "results" / "reference"),
                   help="the reference runs the figures are compared with")
    p.add_argument("--machine", help="the machine folder of --reference (make: REFERENCE_MACHINE)")
    opts = p.parse_args(argv)
    lab = find_lab(opts.lab)
    label = f"lab-{lab.name[:2]}"
    scenario_file = lab / "scenario.json"
    run_script = lab / "run"

    if scenario_file.exists():
        spec = json.loads(scenario_file.read_text())
        todo = commands(lab, spec, opts.build_dir, opts.results_dir)
        if not todo:
            raise SystemExit(f"run_lab: {scenario_file} names neither a scenario nor micro suites")
    elif run_script.exists():
        spec = {}
        todo = [([str(run_script), "--build-dir", opts.build_dir, "--results-dir",
                  opts.results_dir], "script")]
    else:
        print(f"run_lab: {lab.name} has nothing to measure (no scenario.json or run script): "
              f"its README says what to do by hand")
        return 0

    preds = {} if opts.dry_run else announce_predictions(lab, lab / PREDICTIONS)
    run_dirs: list[Path] = []
    for argv_, what in todo:
        if what == "micro" and run_dirs:
            argv_ += ["--run-dir", str(run_dirs[0])]  # next to the harness results of this run
        print("run_lab: " + " ".join(argv_), flush=True)
        if opts.dry_run:
            continue
        rc = subprocess.run(argv_, cwd=ROOT).returncode
        if rc != 0:
            print(f"run_lab: {what} step failed (exit {rc})", file=sys.stderr)
            return rc
        if what == "harness" or not run_dirs:
            run_dirs += [d for d in [newest_run(opts.results_dir, label)] if d]
    if opts.dry_run:
        return 0
    run_dirs = run_dirs or [Path(opts.results_dir) / "latest"]
    print(f"run_lab: {lab.name}: results in {', '.join(map(str, run_dirs))}")

    for run_dir in run_dirs if opts.charts else []:
        subprocess.run(["make", "--no-print-directory", "charts", f"RESULTS={run_dir}"], cwd=ROOT)
    print_side_by_side(lab, preds, run_dirs, Path(opts.reference), opts.machine)
    claims = spec.get("claims")
    for run_dir in run_dirs if claims and (ROOT / "bench" / "claims.py").exists() else []:
        subprocess.run(["/usr/bin/python3", str(ROOT / "bench" / "claims.py"), "--results",
                        str(run_dir), "--only", ",".join(claims), "--no-write"], cwd=ROOT)
    print(
        f"run_lab: now read the Observe and Explain sections of {lab.relative_to(ROOT)}/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
