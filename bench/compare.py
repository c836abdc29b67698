#!/usr/bin/python3
"""compare.py: the measuring stick. Puts servers side by side, pinned, under the same load.

Every performance claim about a server in iolab is made with this tool, against nginx, in one
run. For each server it takes two kinds of measurement:

  fixed rate   open loop at one offered rate, the same for every server (a fraction of the
               client's closed-loop maximum against nginx, calibrated at the start and recorded):
               CPU per request (server user/system, client), system calls and context switches
               per request, latency percentiles. Valid when there were no errors, the achieved
               rate is within 2% of the offered one, steal is low and no SYN was dropped.
  saturation   closed loop, pipelined (16 deep) so the server is the bottleneck: requests/s.
               Valid only when the server's CPU was the saturated one. Closed loop without
               pipelining is recorded too and flagged client-bound when it is.

Repeats are interleaved (A B C, A B C, ...). Each figure is the mean of its repeats with a 95%
interval, and each ratio to the baseline comes with the interval of the ratio over the paired
repeats (bench/iolab_bench/intervals.py); a figure whose interval is wider than its kind of
metric allows (validity.PRECISION, each share with its reason) is marked invalid, as is one that
a run's problem affects (validity.REASON_SCOPES: a client-bound closed loop marks its rate, not
its cost per request). A repeat disturbed by steal or other processes' load is left out of the
figures it affects, and said so. Server counters are read at the moments loadgen marks the start
and end of its window; the cost of reading /stats itself is measured and subtracted. CPU comes
from /proc (user and system over all threads) or, for iolab servers, from their own rusage.

That user/system split is the kernel's billing, and some VMs bill part of every kernel round
trip as user time. So before the fixed-rate runs the tool measures what one bare system call
(getppid, a few user instructions) is billed on the server CPU (build/bin/micro_syscalls), and
prints it. With --perf, which counts every server's system calls (nginx's included), the table
adds "user beyond syscalls": user CPU per request minus that billing times the system calls per
request, an estimate of the server's own user-space work that a per-crossing charge does not
swamp. It errs high, never low: a call that blocks and switches is billed more user time than
getppid (on the reference VM a blocking pipe read on one CPU was billed about a third more).
The raw user column stays the measured figure.

The reference "floor" (servers/reference/floor, build/bin/server_floor) shows the same thing
without estimates: it makes the system calls a keep-alive server must make and does nothing else
in user space. Its user CPU per request is what this machine bills for the calls alone, the floor
no server goes below; when it runs, the table adds "user above floor": each server's user CPU per
request less the floor's from the same repeat.

Usage:
  bench/compare.py --servers epoll_et,threads,nginx [--repeats 5] [--duration 3] [--warmup 1]
                   [--connections 64] [--pipeline 16] [--rate-fraction 0.5 | --rate R]
                   [--path /ping] [--server-cpu N --client-cpu N] [--perf] [--json FILE]

Servers: any iolab model with a binary build/bin/server_<model> (options after a colon, e.g.
'epoll_et:--threads=2'), the references nginx, gin, nethttp (skipped with a note when not
installed), and floor. Loads go to 127.0.0.1 only, every run is bounded, and every process this
tool starts is stopped before it exits, also on Ctrl-C.
"""

import argparse
import json
import sys
from pathlib import Path

from iolab_bench import ROOT, HarnessError
from iolab_bench.machine import choose_cpus, cpu_accounting, syscall_billing
from iolab_bench.measure import Load, add_user_above_floor, add_user_beyond_syscalls, measure
from iolab_bench.servers import Server, stats_overhead
from iolab_bench.tables import print_floor_note, print_table
from iolab_bench.validity import METRICS, summarize_cells


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="epoll_et,threads,nginx",
                   help="comma-separated: iolab models (model:ARGS) and nginx, gin, nethttp, "
                        "floor")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--rate", type=float, help="offered rate for the fixed-rate runs")
    p.add_argument("--rate-fraction", type=float, default=0.5,
                   help="offered rate as a fraction of the client's closed-loop maximum")
    p.add_argument("--path", default="/ping")
    p.add_argument("--server-cpu", type=int)
    p.add_argument("--client-cpu", type=int)
    p.add_argument("--kinds", default="saturation,closed,fixed")
    p.add_argument("--perf", action="store_true",
                   help="cross-check syscalls with perf tracepoints")
    p.add_argument("--bin-dir", default=str(ROOT / "build/bin"))
    p.add_argument("--json", help="write cells and summary here")
    opts = p.parse_args(argv)
    if not 1 <= opts.repeats <= 50:
        p.error("--repeats must be in 1..50")
    if not 0.1 <= opts.duration <= 120 or not 0 <= opts.warmup <= 60:
        p.error("--duration must be in 0.1..120 s and --warmup in 0..60 s")
    if (opts.server_cpu is None) != (opts.client_cpu is None):
        p.error("--server-cpu and --client-cpu go together")
    opts.kinds = [k for k in opts.kinds.split(",") if k]
    for k in opts.kinds:
        if k not in METRICS:
            p.error(f"--kinds: unknown kind '{k}' (saturation, closed, fixed)")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv if argv is not None else sys.argv[1:])
    load = Load(duration=opts.duration, warmup=opts.warmup, connections=opts.connections,
                pipeline=opts.pipeline, path=opts.path)
    loadgen = Path(opts.bin_dir) / "loadgen"
    if not loadgen.exists():
        print(f"compare.py: {loadgen} not built (make build)", file=sys.stderr)
        return 1
    server_cpu, client_cpu, placement = choose_cpus(opts.server_cpu, opts.client_cpu)
    specs = [s for s in opts.servers.split(",") if s]
    print(f"compare: servers {', '.join(specs)}; server CPU {server_cpu}, client CPU {client_cpu} "
          f"({placement}); {opts.repeats} repeats x {opts.warmup:g}+{opts.duration:g} s")

    # Which servers can run here: a reference that is not installed is skipped, visibly.
    runnable: list[str] = []
    skipped: dict[str, str] = {}
    for spec in specs:
        try:
            with Server(spec, server_cpu, opts.bin_dir):
                runnable.append(spec)
        except HarnessError as e:
            skipped[spec] = str(e)
            print(f"compare: skipping {spec}: {e}", file=sys.stderr)
    if not runnable:
        print("compare.py: no server could start", file=sys.stderr)
        return 1
    baseline = "nginx" if "nginx" in runnable else runnable[0]

    offered = opts.rate
    calibration = None
    if "fixed" in opts.kinds and offered is None:
        with Server(baseline, server_cpu, opts.bin_dir) as s:
            s.overhead = stats_overhead(s)
            cal = measure(s, loadgen, client_cpu, "closed", load)
        if not cal["rps"] > 0:
            raise HarnessError(f"calibration on {baseline} failed: no request succeeded "
                               f"({cal['errors']} errors: {cal['errors_by_kind']})")
        offered = cal["rps"] * opts.rate_fraction
        calibration = {"server": baseline, "closed_rps": cal["rps"],
                       "fraction": opts.rate_fraction}
        print(f"compare: calibrated on {baseline}: closed loop {cal['rps']:.0f} req/s, "
              f"offered rate {offered:.0f} req/s")

    billing: dict[str, float] | str | None = None
    accounting: str | None = None
    if "fixed" in opts.kinds:
        billing = syscall_billing(opts.bin_dir, server_cpu)
        if isinstance(billing, dict):
            print(f"compare: CPU {server_cpu} bills a bare system call (getppid) "
                  f"{billing['user_us']:.3f} us user + {billing['sys_us']:.3f} us system"
                  + (" (--perf subtracts the user part per system call)" if opts.perf else ""))
        else:
            print(f"compare: system call billing not measured: {billing}", file=sys.stderr)
        accounting = cpu_accounting()
        print(f"compare: user/system split on this kernel: {accounting}")

    cells = []
    total_runs = opts.repeats * len(runnable) * len(opts.kinds)
    done = 0
    for repeat in range(opts.repeats):
        for spec in runnable:
            with Server(spec, server_cpu, opts.bin_dir) as s:
                s.overhead = stats_overhead(s)
                for kind in opts.kinds:
                    done += 1
                    cell = measure(s, loadgen, client_cpu, kind, load, offered, opts.perf)
                    if kind == "fixed":
                        add_user_beyond_syscalls(cell, billing)
                    cell["repeat"] = repeat
                    cells.append(cell)
                    print(f"[{done}/{total_runs}] {spec} {kind}: {cell['rps']:.0f} req/s, "
                          f"server {cell['server_total_us']:.2f} us/req"
                          + (f"  ({'; '.join(cell['invalid'])})" if cell["invalid"] else ""),
                          flush=True)
    summary = summarize_cells(add_user_above_floor(cells), baseline)
    print()
    print_table(summary, baseline, accounting)
    print_floor_note(summary, baseline)
    for spec, why in skipped.items():
        print(f"  skipped {spec}: {why}")
    if opts.json:
        doc = {"schema_version": 1, "servers": runnable, "skipped": skipped,
               "server_cpu": server_cpu, "client_cpu": client_cpu, "placement": placement,
               "offered_rate": offered, "calibration": calibration, "syscall_billing": billing,
               "cpu_accounting": accounting, "options": vars(opts),
               "cells": cells, "summary": summary}
        Path(opts.json).write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"compare.py: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("compare.py: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
