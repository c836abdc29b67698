#!/usr/bin/python3
"""run_micro.py: runs every Google Benchmark suite (build/bin/micro_*) into a run folder.

`make micro` calls it. Each suite writes Google Benchmark's own JSON (its `context` names the
machine and the CPUs chosen for same_core / cross_core), so `compare.py` from libbenchmark-tools
reads two runs directly. It writes:

  results/runs/<timestamp>-micro/
    manifest.json        machine facts (iolab_bench.runfolder's manifest()), settings, steal
                         during the run
    micro/<topic>.json   one file per suite: micro_syscalls -> micro/syscalls.json
  results/latest -> that folder (unless --no-latest)

With --run-dir DIR it writes into DIR/micro/ instead and leaves DIR's manifest and
results/latest alone (that is how `make bench` puts micro results next to the harness's).

Quick by default (every benchmark runs for at least --min-time seconds, once); --full runs
longer with repetitions, for figures worth keeping. A suite that fails is recorded in the
manifest and makes the exit status 1; the others still run.

Usage: bench/micro/run_micro.py [--full] [--bin-dir build/bin] [--results-dir results]
                                [--run-dir DIR] [--no-latest] [--suites syscalls,switch]
                                [--filter REGEX]
"""

import argparse
import datetime
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from iolab_bench import ROOT, machine, runfolder  # bench/ on PYTHONPATH (make micro sets it)

QUICK = {"min_time": 0.1, "repetitions": 1}
FULL = {"min_time": 0.5, "repetitions": 3}


def suites(bin_dir: Path, only: list[str] | None = None) -> dict[str, Path]:
    """{topic: binary} for build/bin/micro_<topic>, optionally restricted to `only`."""
    found = {p.name[len("micro_"):]: p for p in sorted(Path(bin_dir).glob("micro_*"))
             if p.is_file() and p.stat().st_mode & 0o111}
    if only:
        missing = [s for s in only if s not in found]
        if missing:
            raise SystemExit(f"run_micro: no suite {', '.join(missing)} in {bin_dir} "
                             f"(have: {', '.join(found) or 'none; build first'})")
        found = {s: found[s] for s in only}
    return found


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    (t0, s0), (t1, s1) = before, after
    return round(100.0 * (s1 - s0) / max(t1 - t0, 1), 2)


def run_suite(binary: Path, out_file: Path, settings: dict[str, Any],
              bench_filter: str | None = None) -> dict[str, Any]:
    cmd = [str(binary), f"--benchmark_out={out_file}", "--benchmark_out_format=json",
           f"--benchmark_min_time={settings['min_time']}"]
    if settings["repetitions"] > 1:
        cmd += [f"--benchmark_repetitions={settings['repetitions']}",
                "--benchmark_display_aggregates_only=true"]
    if bench_filter:
        cmd.append(f"--benchmark_filter={bench_filter}")
    start = time.monotonic()
    busy_before = machine.read_busy_s()
    own_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rc = subprocess.run(cmd).returncode
    wall = time.monotonic() - start
    own_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (own_after.ru_utime - own_before.ru_utime) + (own_after.ru_stime - own_before.ru_stime)
    # Other processes' CPU while the suite ran, in CPUs: a build or a fuzzer on a 2-CPU machine
    # takes the CPU a benchmark thread wanted without showing as steal (figures.py marks the
    # suite's figures not valid above iolab_bench.validity.MAX_BACKGROUND_CPUS).
    background = max(0.0, machine.read_busy_s() - busy_before - own) / max(wall, 1e-9)
    return {"command": cmd, "exit_status": rc, "seconds": round(wall, 1),
            "background_cpus": round(background, 2)}


def point_latest(results_dir: Path, run_dir: Path) -> None:
    latest = results_dir / "latest"
    tmp = results_dir / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.resolve().relative_to(results_dir.resolve()))
    tmp.replace(latest)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="longer runs with 3 repetitions")
    p.add_argument("--bin-dir", default=str(ROOT / "build" / "bin"))
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--run-dir", help="write into this existing run folder's micro/")
    p.add_argument("--no-latest", action="store_true", help="do not repoint results/latest")
    p.add_argument("--label", default="micro", help="run folder suffix (a lab passes lab-NN)")
    p.add_argument("--suites", help="comma-separated topics (default: every build/bin/micro_*)")
    p.add_argument("--filter", help="--benchmark_filter for every suite")
    p.add_argument("--min-time", type=float, help="override the per-benchmark minimum time")
    opts = p.parse_args(argv)

    settings = dict(FULL if opts.full else QUICK)
    if opts.min_time is not None:
        settings["min_time"] = opts.min_time
    todo = suites(opts.bin_dir, opts.suites.split(",") if opts.suites else None)
    if not todo:
        raise SystemExit(f"run_micro: no micro_* binaries in {opts.bin_dir} (make build first)")

    results_dir = Path(opts.results_dir)
    own_run = opts.run_dir is None
    if own_run:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", opts.label):
            raise SystemExit(
                f"run_micro: --label '{opts.label}': letters, digits, '.', '_', '-' only")
        run_dir = results_dir / "runs" / f"{stamp}-{opts.label}"
    else:
        run_dir = Path(opts.run_dir)
    (run_dir / "micro").mkdir(parents=True, exist_ok=not own_run)

    doc = None
    if own_run:
        sc = {"name": "micro", "repeats": settings["repetitions"], "warmup_s": None,
              "duration_s": None, "connections": None, "pipeline": None, "path": None,
              "rate_fraction": None}
        doc = runfolder.manifest(sc, None, None, "micro: per benchmark, see each suite's context")
    steal_before = machine.read_steal()
    started = time.monotonic()
    report = {}
    for topic, binary in todo.items():
        print(f"== micro_{topic} ({'full' if opts.full else 'quick'})", flush=True)
        report[topic] = run_suite(binary, run_dir / "micro" / f"{topic}.json", settings,
                                  opts.filter)
    micro_doc = {"mode": "full" if opts.full else "quick", "settings": settings,
                 "suites": report, "seconds": round(time.monotonic() - started, 1),
                 "steal_pct": steal_pct(steal_before, machine.read_steal())}
    if own_run and doc is not None:
        doc["micro"] = micro_doc
        (run_dir / "manifest.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
        if not opts.no_latest:
            point_latest(results_dir, run_dir)
    else:
        (run_dir / "micro" / "summary.json").write_text(json.dumps(micro_doc, indent=1,
                                                                   sort_keys=True))
    failed = [t for t, r in report.items() if r["exit_status"] != 0]
    print(f"micro: {len(report)} suites in {micro_doc['seconds']} s, steal "
          f"{micro_doc['steal_pct']}%, written to {run_dir / 'micro'}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
