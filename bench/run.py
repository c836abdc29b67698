#!/usr/bin/python3
"""run.py: runs a scenario and writes one run folder (described in results/README.md).

A scenario (bench/scenarios/NAME.json) names servers, the points to measure and a matrix of
parameters; run.py measures every cell with compare.py's rules (fixed-rate open loop for costs
and latency, pipelined saturation for throughput, closed loop flagged client-bound when it is,
interleaved repeats, validity per metric, windows aligned on loadgen's marks, steal and
listen-overflow gates; both are command lines over bench/iolab_bench/, runner.py here) plus,
where asked, memory per idle connection as a slope split into user and kernel memory, and
instructions per request under callgrind. It writes:

  results/runs/<timestamp>-<scenario>/
    manifest.json           machine, build, pinning, offered rate, schema_version
    harness/results.jsonl   one row per cell, repeat and point, flushed as it is measured
    harness/summary.json    per server, cell, point and metric: the mean of the rounds, its 95%
                            interval, the ratio to the baseline with its interval over the
                            paired rounds, validity and its reasons (validity.py)
  results/latest -> that folder (unless --no-latest; tests never repoint it)

Every process it starts is stopped before it exits, also on Ctrl-C, which leaves a consistent
folder (rows so far, manifest marked interrupted). A server that crashes mid-run or never gets
ready becomes invalid rows with the reason, and the run goes on.

Beyond one machine: --target HOST:PORT measures a server this runner did not
start (`make serve MODEL=x BIND=0.0.0.0` on another machine, or the compose `server` service):
its CPU time, context switches, RSS and system calls come from the server's own /stats
(rusage, statm and its counted syscalls) instead of /proc, and every row says where each figure
came from ("sources"). A scenario with "mode": "netns" (bench/scenarios/netns.json) re-runs this
script inside bench/netns/with_netns.sh: two network namespaces joined by a veth pair, the
server in one, loadgen and this runner in the other, measured the same way as a target.

Usage: bench/run.py [--scenario quick] [--results-dir results] [--quick-repeats N] [--dry-run]
       bench/run.py --target HOST:PORT [--label NAME] [--scenario quick] [--client-cpu N]
       bench/run.py --scenario netns          (root and iproute2's `ip`)
       bench/run.py --list
       bench/run.py --resummarize RUN_FOLDER   (summary.json again from its rows)
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from iolab_bench import ROOT, HarnessError, tables, validity
from iolab_bench.machine import netns_env
from iolab_bench.runner import INTERRUPT_REPORTED, run_scenario
from iolab_bench.scenarios import SCENARIOS, load_scenario
from iolab_bench.servers import NETNS_WRAPPER


def interrupt(*_: Any) -> NoReturn:
    """SIGTERM: stop as Ctrl-C does (servers stopped, rows so far kept)."""
    raise KeyboardInterrupt()


def resummarize(folder: Path) -> None:
    """summary.json of a run folder from its rows, against the baseline its manifest names (the
    committed fixture runs are kept up to date so)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    lines = (folder / "harness" / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    servers = list(dict.fromkeys(r["server"] for r in rows))
    baseline = manifest.get("baseline") or ("nginx" if "nginx" in servers else servers[0])
    summary = validity.summarize_rows(rows, baseline)
    (folder / "harness" / "summary.json").write_text(json.dumps(summary, indent=1))
    tables.print_summary(summary, baseline, manifest.get("cpu_accounting"))
    tables.print_rounds(rows)
    print(f"run: wrote {folder / 'harness' / 'summary.json'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="quick")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--results-dir", default=str(ROOT / "results"))
    p.add_argument("--no-latest", action="store_true", help="do not repoint results/latest")
    p.add_argument("--label", help="run folder suffix instead of the scenario name")
    p.add_argument("--target", metavar="HOST:PORT",
                   help="measure a running iolab server (make serve BIND=0.0.0.0) instead of "
                        "starting the scenario's servers; figures from its /stats")
    p.add_argument("--resume", action="store_true",
                   help="do nothing if a finished run with this label exists (make bench-full)")
    p.add_argument("--repeats", type=int, help="override the scenario's repeats")
    p.add_argument("--server-cpu", type=int)
    p.add_argument("--client-cpu", type=int)
    p.add_argument("--perf", action="store_true", help="cross-check syscalls with perf tracepoints")
    p.add_argument("--recalibrate", action="store_true",
                   help="measure the offered rate again instead of reusing the one an earlier "
                        "run of the scenario calibrated on this machine")
    p.add_argument("--bin-dir", default=str(ROOT / "build/bin"))
    p.add_argument("--resummarize", metavar="RUN_FOLDER",
                   help="write RUN_FOLDER's harness/summary.json again from its results.jsonl "
                        "with this version's statistics, print its table, and measure nothing")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override a scenario field, e.g. --set duration_s=1 "
                        "--set 'servers=[\"threads\"]'")
    opts = p.parse_args(argv)
    if opts.resummarize:
        resummarize(Path(opts.resummarize))
        return 0
    if opts.list:
        for f in sorted(SCENARIOS.glob("*.json")):
            print(f"{f.stem:12} {json.loads(f.read_text()).get('description', '')}")
        return 0
    if opts.target and opts.server_cpu is not None:
        p.error("--server-cpu: a --target runs on its own CPUs (--client-cpu places the client)")
    if not opts.target and (opts.server_cpu is None) != (opts.client_cpu is None):
        p.error("--server-cpu and --client-cpu go together")
    if opts.repeats is not None and not 1 <= opts.repeats <= 50:
        p.error("--repeats must be in 1..50")
    sc = load_scenario(opts.scenario)
    if opts.resume:
        label = opts.label or sc["name"]
        for folder in sorted((Path(opts.results_dir) / "runs").glob(f"*-{label}")):
            try:
                doc = json.loads((folder / "manifest.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if doc.get("finished") and not doc.get("interrupted"):
                print(f"run: {label} already done in {folder} (--resume)")
                return 0
    for item in opts.set:
        key, _, value = item.partition("=")
        if key not in sc:
            p.error(f"--set: the scenario has no field '{key}'")
        try:
            sc[key] = json.loads(value)
        except json.JSONDecodeError:
            p.error(f"--set {key}: value is not JSON: {value}")
    if sc["mode"] not in ("local", "netns"):
        p.error(f"mode '{sc['mode']}': local or netns")
    if sc.get("mode") == "netns" and opts.target:
        p.error("--target and a netns scenario exclude each other (netns starts its own servers)")
    if sc.get("mode") == "netns" and netns_env() is None:
        # Run again inside two fresh namespaces; the wrapper (same pid) removes them whatever
        # happens, and exits 77 with its reason when this machine cannot make them.
        args = list(sys.argv[1:] if argv is None else argv)
        os.execv(str(NETNS_WRAPPER), [str(NETNS_WRAPPER), "--", "/usr/bin/python3",
                                      str(Path(__file__).resolve()), *args])
    signal.signal(signal.SIGTERM, interrupt)
    run_scenario(sc, opts)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"run.py: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        if not INTERRUPT_REPORTED:
            print("\nrun: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
