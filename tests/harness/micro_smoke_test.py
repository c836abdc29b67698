#!/usr/bin/python3
"""Smoke test of one micro suite: every benchmark runs once, without error, and each carries a
claim id (C01, C02..., bench/claims.json) in its label, as bench/micro/README.md says, or says
"(no claim)" there (micro_http's parser race tests the project's parser, not an article's claim).
Timings are not judged here.

A kernel that refuses io_uring (seccomp, io_uring_disabled) makes BM_IoUringNop report an
error, and so do cross_core benchmarks in a process allowed on one CPU; those are printed as
skips, not failures.

Usage: micro_smoke_test.py build/bin/micro_<topic>
"""

import json
import re
import subprocess
import sys


def main(binary):
    proc = subprocess.run([binary, "--benchmark_min_time=0", "--benchmark_format=json"],
                          capture_output=True, text=True, timeout=50)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return f"{binary} exited with {proc.returncode}"
    doc = json.loads(proc.stdout)
    benchmarks = doc["benchmarks"]
    if not benchmarks:
        return f"{binary} ran no benchmarks"
    problems = []
    for b in benchmarks:
        if b.get("error_occurred"):
            message = b.get("error_message", "")
            if message.startswith(("io_uring_queue_init", "cross_core needs two CPUs")):
                # seccomp or sysctl against io_uring; a one-CPU cpuset: visible skips
                print(f"note: {b['name']} skipped: {message}")
                continue
            problems.append(f"{b['name']}: {message}")
        if not re.search(r"\bC\d\d\b|\(no claim\)", b.get("label", "")):
            problems.append(f"{b['name']}: no claim id in its label {b.get('label')!r}")
    for key in ("cpu_a", "cpu_b", "cpu_b_kind"):
        if key not in doc["context"]:
            problems.append(f"context lacks {key}")
    print(f"{binary}: {len(benchmarks)} benchmarks")
    return "; ".join(problems) or None


if __name__ == "__main__":
    error = main(sys.argv[1])
    if error:
        print(f"FAIL: {error}", file=sys.stderr)
        sys.exit(1)
