#!/usr/bin/python3
"""run_lab.py: runs a lab's measurement into a results run (make lab-NN).

A lab says what to measure in labs/NN-topic/scenario.json, through the public command lines of
the harness (so a lab never depends on the harness's insides):

  {"scenario": "c10k",                        an existing bench/scenarios/<name>.json
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

from run_check import find_lab  # beside this file

LABS = Path(__file__).resolve().parent
ROOT = LABS.parent


def newest_run(results_dir: Path, suffix: str) -> Path | None:
    runs = sorted((Path(results_dir) / "runs").glob(f"*-{suffix}"))
    return runs[-1] if runs else None


def commands(lab: Path, spec: dict[str, Any], build_dir: Path,
             results_dir: Path) -> list[tuple[list[str], str]]:
    """The commands a scenario.json asks for, in order: [(argv, what)]."""
    label = f"lab-{lab.name[:2]}"
    bin_dir = str(Path(build_dir) / "bin")
    out = []
    if "scenario" in spec:
        argv = ["/usr/bin/python3", str(ROOT / "bench" / "run.py"), "--scenario", spec["scenario"],
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lab", help="NN or NN-topic")
    p.add_argument("--build-dir", default=str(ROOT / "build"))
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--charts", action="store_true", help="then `make charts RESULTS=<run>`")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
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

    run_dir = None
    for argv_, what in todo:
        if what == "micro" and run_dir is not None:
            argv_ += ["--run-dir", str(run_dir)]  # next to the harness results of this run
        print("run_lab: " + " ".join(argv_), flush=True)
        if opts.dry_run:
            continue
        rc = subprocess.run(argv_, cwd=ROOT).returncode
        if rc != 0:
            print(f"run_lab: {what} step failed (exit {rc})", file=sys.stderr)
            return rc
        if what == "harness":
            run_dir = newest_run(opts.results_dir, label)
        elif what == "micro" and run_dir is None:
            run_dir = newest_run(opts.results_dir, label)
    if opts.dry_run:
        return 0
    if run_dir is None:
        run_dir = Path(opts.results_dir) / "latest"
    print(f"run_lab: {lab.name}: results in {run_dir}")

    if opts.charts:
        subprocess.run(["make", "--no-print-directory", "charts", f"RESULTS={run_dir}"], cwd=ROOT)
    claims = spec.get("claims")
    if claims and (ROOT / "bench" / "claims.py").exists():
        subprocess.run(["/usr/bin/python3", str(ROOT / "bench" / "claims.py"), "--results",
                        str(run_dir), "--only", ",".join(claims), "--no-write"], cwd=ROOT)
    print(
        f"run_lab: now read the Observe and Explain sections of {lab.relative_to(ROOT)}/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
