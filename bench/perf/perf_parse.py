#!/usr/bin/python3
"""perf_parse.py: turns the text output of perf and strace into tables and JSON.

The bench/perf/*.sh scripts run the tools; this module reads what they wrote, so the parsing is
tested on fixtures (tests/harness/perf_tools_test.py) and the scripts stay short.

  perf_parse.py syscalls perf-trace  FILE [--json]   `perf trace -s` summary (all threads summed)
  perf_parse.py syscalls strace      FILE [--json]   `strace -c` summary
  perf_parse.py stat     perf        FILE [--json]   `perf stat -x,` output
  perf_parse.py stat     proc        BEFORE AFTER SECONDS [--json]   /proc snapshots (see below)
  perf_parse.py snapshot PID                          one snapshot of PID (all its threads)
  perf_parse.py stat     rusage      [--json] -- COMMAND...   runs it, reports its rusage
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NO_HW_NOTE = ("hardware counters are not available here (usual in VMs): use "
              "bench/perf/cachegrind.sh for instructions and cache misses per request")


def perf_trace_summary(text: str) -> dict[str, int]:
    """{syscall: calls}, summed over the per-thread tables of `perf trace -s`."""
    calls: dict[str, int] = {}
    row = re.compile(r"^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+[\d.]+\s")
    for line in text.splitlines():
        m = row.match(line)
        if m and m.group(1) != "syscall":
            calls[m.group(1)] = calls.get(m.group(1), 0) + int(m.group(2))
    return calls


def strace_summary(text: str) -> dict[str, int]:
    """{syscall: calls} from `strace -c` (columns: % time, seconds, usecs/call, calls, [errors],
    syscall)."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        tok = line.split()
        if len(tok) in (5, 6) and re.fullmatch(r"[\d.]+", tok[0]) and tok[-1] != "total":
            if tok[3].isdigit():
                calls[tok[-1]] = calls.get(tok[-1], 0) + int(tok[3])
    return calls


def perf_stat_csv(text: str) -> list[dict[str, Any]]:
    """[{event, value (float or None), unit, status}] from `perf stat -x,`; status is "counted",
    "not supported" or "not counted"."""
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split(",")
        if len(f) < 3:
            continue
        raw, unit, event = f[0], f[1], f[2]
        if raw.startswith("<"):
            rows.append({"event": event, "value": None, "unit": unit, "status": raw.strip("<>")})
        else:
            try:
                rows.append({"event": event, "value": float(raw), "unit": unit,
                             "status": "counted"})
            except ValueError:
                continue
    return rows


def proc_snapshot_delta(before: str, after: str,
                        seconds: float | str) -> list[dict[str, Any]]:
    """Rows like perf_stat_csv's from two JSON snapshots {utime_s, stime_s, voluntary,
    nonvoluntary} taken around a sleep (perfstat.sh's fallback when perf is refused)."""
    b, a = json.loads(before), json.loads(after)
    cpu_ms = 1000.0 * ((a["utime_s"] - b["utime_s"]) + (a["stime_s"] - b["stime_s"]))
    return [
        {"event": "task-clock", "value": cpu_ms, "unit": "msec", "status": "counted"},
        {"event": "user-time", "value": 1000.0 * (a["utime_s"] - b["utime_s"]), "unit": "msec",
         "status": "counted"},
        {"event": "system-time", "value": 1000.0 * (a["stime_s"] - b["stime_s"]),
         "unit": "msec", "status": "counted"},
        {"event": "context-switches", "value": float(
            a["voluntary"] + a["nonvoluntary"] - b["voluntary"] - b["nonvoluntary"]),
         "unit": "", "status": "counted"},
        {"event": "elapsed", "value": float(seconds), "unit": "s", "status": "counted"},
    ]


def snapshot(pid: int) -> dict[str, float]:
    """CPU time and context switches of a process, all threads (perfstat.sh's fallback)."""
    tck = os.sysconf("SC_CLK_TCK")
    # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    snap: dict[str, float] = {"utime_s": int(stat[11]) / tck, "stime_s": int(stat[12]) / tck,
                              "voluntary": 0, "nonvoluntary": 0}
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    snap["voluntary"] += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    snap["nonvoluntary"] += int(line.split()[1])
        except OSError:
            continue  # a thread that just exited
    return snap


def run_with_rusage(cmd: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Runs cmd; rows from its rusage (children it waited for included)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, ru = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - start
    before = {"utime_s": 0.0, "stime_s": 0.0, "voluntary": 0, "nonvoluntary": 0}
    after = {"utime_s": ru.ru_utime, "stime_s": ru.ru_stime, "voluntary": ru.ru_nvcsw,
             "nonvoluntary": ru.ru_nivcsw}
    rows = proc_snapshot_delta(json.dumps(before), json.dumps(after), elapsed)
    rows.insert(4, {"event": "page-faults", "value": float(ru.ru_minflt + ru.ru_majflt),
                    "unit": "", "status": "counted"})
    return rows, os.waitstatus_to_exitcode(status)


def print_syscalls(source: str, calls: dict[str, int], as_json: bool,
                   note: str | None = None) -> None:
    total = sum(calls.values())
    if as_json:
        print(json.dumps({"source": source, "total": total, "syscalls": calls, "note": note},
                         sort_keys=True))
        return
    for name, n in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{n:>12}  {name}")
    print(f"{total:>12}  total ({source})")
    if note:
        print(f"note: {note}")


def print_stat(source: str, rows: list[dict[str, Any]], as_json: bool,
               note: str | None = None) -> None:
    unsupported = [r["event"] for r in rows if r["status"] == "not supported"]
    if unsupported and note is None:
        note = NO_HW_NOTE
    if as_json:
        print(json.dumps({"source": source, "events": rows, "not_supported": unsupported,
                          "note": note}, sort_keys=True))
        return
    for r in rows:
        value = f"{r['value']:,.2f}" if r["value"] is not None else f"<{r['status']}>"
        print(f"{value:>20} {r['unit']:<6} {r['event']}")
    print(f"source: {source}")
    if note:
        print(f"note: {note}")


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    args = [a for a in argv if a != "--json"]
    note = None
    if "--note" in args:
        i = args.index("--note")
        note = args[i + 1]
        del args[i:i + 2]
    kind, source = args[0], args[1]
    if kind == "syscalls":
        text = open(args[2], errors="replace").read()
        calls = perf_trace_summary(text) if source == "perf-trace" else strace_summary(text)
        if not calls:
            print(f"perf_parse: no system calls found in {source} output", file=sys.stderr)
            return 1
        print_syscalls(source, calls, as_json, note)
    elif kind == "stat" and source == "perf":
        rows = perf_stat_csv(open(args[2], errors="replace").read())
        if not rows:
            print("perf_parse: no events in perf stat output", file=sys.stderr)
            return 1
        print_stat("perf", rows, as_json, note)
    elif kind == "stat" and source == "proc":
        rows = proc_snapshot_delta(args[2], args[3], args[4])
        print_stat("proc", rows, as_json, note)
    elif kind == "snapshot":
        print(json.dumps(snapshot(int(source))))
    elif kind == "stat" and source == "rusage":
        cmd = args[args.index("--") + 1:] if "--" in args else args[2:]
        rows, rc = run_with_rusage(cmd)
        print_stat("rusage", rows, as_json, note)
        return rc
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
