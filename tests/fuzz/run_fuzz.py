#!/usr/bin/python3
"""run_fuzz.py: builds and runs the libFuzzer targets of tests/fuzz, and proves they bite.

  run_fuzz.py build  [--build-dir build-fuzz]
  run_fuzz.py run    [--targets parser,chunked,connection] [--seconds S] [--runs N] [--nice 10]
                     [--scratch-corpus] [--no-build]
  run_fuzz.py mutant [NAME ...]   (no name: all)

build configures build-fuzz/ with clang (the targets need libFuzzer) and builds the three
targets; a lock file keeps two concurrent callers (make test and make fuzz) from building at once.

run runs the targets one after another, never in parallel (the machine is shared), each until
--seconds or --runs executions, whichever comes first, with the seed corpus and the HTTP
dictionary. The working corpus is build-fuzz/corpus/<target> (it grows over long runs; the
committed seeds in tests/fuzz/corpus are never written), or a temporary folder with
--scratch-corpus. A finding (a crash, a sanitizer report or a broken invariant) fails the run and
names the saved input; reproduce it with build-fuzz/fuzz_<target> FILE. Executions and
executions per second are printed and written to build-fuzz/fuzz-report.json. A unit that runs
past -timeout=20 s of wall-clock time is a finding; as a paused (SIGSTOP) or CPU-starved fuzzer
produces one too, a timed-out unit is run once more alone and the report says which it was.

mutant copies servers/core, breaks it in one named place (an over-read, a lost resume hint, a
split-dependent decoder, a HEAD response with a body, a view kept into a freed buffer, ...),
builds the target that should notice into build-fuzz/mutants/<name>, and runs it until it
reports a finding (or gives up after --seconds, default 300). It succeeds when every mutant was
caught: the invariants are shown to fail on a broken core, not just to pass on a good one.
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TARGETS = ("parser", "chunked", "connection")
# Seeds for each target: the connection target also starts from the parser's requests.
SEEDS = {"parser": ["parser"], "chunked": ["chunked"], "connection": ["connection", "parser"]}
# Longest input per target. The parser's limit is past its 16 KiB header cap. A connection input
# is a whole client stream driven three ways, each response up to ~100 KB, so its cost grows
# with its length: it is capped at the shortest stream that still holds what its invariants
# need, a few pipelined requests (the body limit is 200 bytes, so 413 and chunked framing fit):
# 1 KiB, five or more requests. README.md (Reliability) has the trials that chose these limits.
MAX_LEN = {"parser": 24576, "chunked": 8192, "connection": 1024}

# name: (target, file in servers/core, text to replace, replacement, what it breaks)
MUTANTS = {
    "parser_overread": (
        "parser", "http/http_parser.cpp",
        "std::memchr(in.data() + from, '\\n', in.size() - from)",
        "std::memchr(in.data() + from, '\\n', in.size() - from + 1)",
        "find_lf reads one byte past the buffer"),
    "parser_hint": (
        "parser", "http/http_parser.cpp",
        "return {ParseStatus::kIncomplete, 0, line_start, 0};",
        "return {ParseStatus::kIncomplete, 0, in.size(), 0};",
        "the resume hint claims the unfinished line was searched"),
    "parser_hint_skip": (
        "parser", "http/http_parser.cpp",
        "std::size_t line_start = scanned > headers_start ? scanned : headers_start;",
        "std::size_t line_start = scanned > headers_start ? "
        "(scanned + 2 <= in.size() ? scanned + 2 : scanned) : headers_start;",
        "a resumed search starts two bytes late and can miss the blank line"),
    "chunked_split": (
        "chunked", "http/http_parser.cpp",
        "remaining_ -= take;",
        "remaining_ = take < remaining_ && take > 0 && available < 3 ? 0 : remaining_ - take;",
        "chunk data cut into tiny pieces loses its remainder"),
    "chunked_framing": (
        "chunked", "http/http_parser.cpp",
        "      case State::kDataLf:\n        if (c != '\\n') return fail(i);",
        "      case State::kDataLf:",
        "any byte accepted after the CR that ends chunk data"),
    "connection_head_body": (
        "connection", "http/connection.cpp",
        "  if (!head_only_) {\n    out_.append(resp.body);",
        "  if (true) {\n    out_.append(resp.body);",
        "a HEAD response carries its body"),
    "connection_keeps_view": (
        "connection", "http/connection.cpp",
        "    const std::string_view rest = external_;\n    external_ = {};",
        "    const std::string_view rest = external_;\n    if (rest.size() < 2) external_ = {};",
        "on_input keeps a view into the kernel's buffer after returning"),
    "connection_leftover": (
        "connection", "http/connection.cpp",
        "      end_ += rest.size();\n    }\n  } else {",
        "      end_ += rest.size() - (rest.size() > 7 ? 1 : 0);\n    }\n  } else {",
        "on_input drops the last byte of a leftover"),
}


def log(msg):
    print(f"fuzz: {msg}", flush=True)


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    symbolizer = shutil.which("llvm-symbolizer")
    if symbolizer:
        env.setdefault("ASAN_SYMBOLIZER_PATH", symbolizer)
    return env


def build(build_dir, core_dir=None, targets=None):
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    clang = shutil.which("clang++")
    if not clang:
        raise SystemExit("fuzz: clang++ not found (scripts/install-deps.sh test installs clang)")
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.monotonic()
        if not (build_dir / "CMakeCache.txt").exists() or core_dir:
            cmd = ["cmake", "-S", str(HERE), "-B", str(build_dir), "-DCMAKE_CXX_COMPILER=" + clang,
                   "-DCMAKE_BUILD_TYPE=None"]
            if shutil.which("ninja"):
                cmd += ["-G", "Ninja"]
            if core_dir:
                cmd.append(f"-DIOLAB_FUZZ_CORE_DIR={core_dir}")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        cmd = ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)]
        for t in targets or TARGETS:
            cmd += ["--target", f"fuzz_{t}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stdout.write(result.stdout[-6000:] + result.stderr[-4000:])
            raise SystemExit(f"fuzz: build of {build_dir} failed")
        log(f"built {', '.join(targets or TARGETS)} in {build_dir} "
            f"({time.monotonic() - start:.0f} s)")


def run_target(build_dir, target, seconds, runs, nice, corpus_dir, stop_on_first=True):
    """Runs one target; returns a dict with executions, exec/s and the finding, if any."""
    binary = Path(build_dir) / f"fuzz_{target}"
    artifacts = Path(build_dir) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), str(corpus_dir), *[str(HERE / "corpus" / s) for s in SEEDS[target]],
           f"-dict={HERE / 'http.dict'}", f"-max_len={MAX_LEN[target]}", "-timeout=20",
           "-rss_limit_mb=3072", "-print_final_stats=1", f"-artifact_prefix={artifacts}/{target}-",
           f"-max_total_time={int(seconds)}"]
    if runs:
        cmd.append(f"-runs={runs}")
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=sanitizer_env(),
                          preexec_fn=(lambda: os.nice(nice)) if nice else None)
    elapsed = time.monotonic() - start
    out = proc.stderr + proc.stdout

    def stat(name):
        m = re.search(rf"stat::{name}:\s+(\d+)", out)
        return int(m.group(1)) if m else None

    execs = stat("number_of_executed_units")
    if execs is None:  # no final stats: take the last status line
        lines = re.findall(r"#(\d+)\s", out)
        execs = int(lines[-1]) if lines else 0
    result = {"target": target, "executions": execs, "seconds": round(elapsed, 1),
              "exec_per_s": round(execs / elapsed) if elapsed else None,
              "new_units": stat("new_units_added"), "peak_rss_mb": stat("peak_rss_mb"),
              "exit": proc.returncode, "finding": None}
    result["interrupted"] = "libFuzzer: run interrupted" in out
    if proc.returncode != 0 and not result["interrupted"]:
        saved = re.findall(r"Test unit written to (\S+)", out)
        what = re.search(r"(INVARIANT BROKEN: .*|ERROR: \w+Sanitizer: [^\n]*|runtime error: [^\n]*|"
                         r"ERROR: libFuzzer: [^\n]*)", out)
        result["finding"] = {"what": what.group(1) if what else f"exit {proc.returncode}",
                             "input": saved[-1] if saved else None, "log_tail": out[-3000:]}
        if "timeout" in result["finding"]["what"] and saved:
            result["finding"]["rerun"] = rerun_timeout(binary, saved[-1])
    return result


def rerun_timeout(binary, unit):
    """libFuzzer's -timeout is wall-clock time: a fuzzer paused (SIGSTOP, a suspended laptop) or
    starved of CPU for longer reports the unit it was on as a timeout. Runs the unit once more
    alone and says how long it took, so a real hang is told from a pause."""
    start = time.monotonic()
    try:
        proc = subprocess.run([str(binary), unit], capture_output=True, text=True,
                              env=sanitizer_env(), timeout=120)
        took = time.monotonic() - start
        if proc.returncode == 0:
            return (f"ran alone in {took:.1f} s without a finding: the timeout was most likely a "
                    f"pause or CPU starvation of the fuzzer, not a hang")
        return f"fails again alone (exit {proc.returncode} after {took:.1f} s): a real finding"
    except subprocess.TimeoutExpired:
        return "hangs again alone (killed after 120 s): a real hang"


def cmd_run(opts):
    if not opts.no_build:
        build(opts.build_dir, core_dir=opts.core)
    report = []
    failed = False
    for target in opts.targets:
        if opts.scratch_corpus:
            scratch = tempfile.TemporaryDirectory(prefix=f"reliability-fuzz-{target}-")
            corpus = Path(scratch.name)
        else:
            corpus = Path(opts.build_dir) / "corpus" / target
        log(f"{target}: running for up to {opts.seconds:g} s"
            + (f" or {opts.runs} executions" if opts.runs else "")
            + (f" (nice {opts.nice})" if opts.nice else ""))
        r = run_target(opts.build_dir, target, opts.seconds, opts.runs, opts.nice, corpus)
        report.append(r)
        if opts.scratch_corpus:
            scratch.cleanup()
        log(f"{target}: {r['executions']} executions in {r['seconds']} s ({r['exec_per_s']}/s), "
            f"{r['new_units']} new units, peak RSS {r['peak_rss_mb']} MB")
        if r["finding"]:
            failed = True
            sys.stdout.write(r["finding"]["log_tail"] + "\n")
            log(f"{target}: FINDING: {r['finding']['what']}; input saved as {r['finding']['input']}"
                f" (reproduce: {opts.build_dir}/fuzz_{target} {r['finding']['input']})")
            if r["finding"].get("rerun"):
                log(f"{target}: the timed-out input {r['finding']['rerun']}")
        elif r["interrupted"]:
            failed = True
            log(f"{target}: interrupted (SIGINT) after {r['executions']} executions, no finding")
        elif r["executions"] == 0:
            failed = True
            log(f"{target}: ran no input at all")
    if not opts.scratch_corpus:
        (Path(opts.build_dir) / "fuzz-report.json").write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


def cmd_mutant(opts):
    names = opts.names or list(MUTANTS)
    missed = []
    for name in names:
        target, file, old, new, what = MUTANTS[name]
        base = Path(opts.build_dir) / "mutants" / name
        core = base / "core"
        if core.exists():
            shutil.rmtree(core)
        shutil.copytree(ROOT / "servers" / "core", core)
        source = (core / file).read_text()
        if source.count(old) != 1:
            raise SystemExit(f"fuzz: mutant {name}: the text to break is not found exactly once "
                             f"in servers/core/{file} (the core changed: update MUTANTS)")
        (core / file).write_text(source.replace(old, new))
        build(base / "build", core_dir=core, targets=[target])
        with tempfile.TemporaryDirectory(prefix=f"reliability-mutant-{name}-") as corpus:
            log(f"mutant {name} ({what}): fuzzing {target} for up to {opts.seconds:g} s")
            r = run_target(base / "build", target, opts.seconds, None, opts.nice, Path(corpus))
        if r["finding"]:
            log(f"mutant {name}: CAUGHT after {r['executions']} executions ({r['seconds']} s): "
                f"{r['finding']['what']}")
        else:
            log(f"mutant {name}: NOT caught in {r['executions']} executions")
            missed.append(name)
    if missed:
        log(f"mutants not caught: {', '.join(missed)}")
        return 1
    log(f"all {len(names)} mutants caught")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("build", "run", "mutant"))
    p.add_argument("names", nargs="*", help="mutant names (mutant only)")
    p.add_argument("--build-dir", default=str(ROOT / "build-fuzz"))
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--nice", type=int, default=0)
    p.add_argument("--scratch-corpus", action="store_true")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--core", help="fuzz this copy of servers/core (e.g. a committed revision)")
    opts = p.parse_args(argv)
    opts.targets = [t for t in opts.targets.split(",") if t]
    for t in opts.targets:
        if t not in TARGETS:
            p.error(f"--targets: unknown target '{t}' ({', '.join(TARGETS)})")
    for n in opts.names:
        if n not in MUTANTS:
            p.error(f"unknown mutant '{n}' ({', '.join(MUTANTS)})")
    if opts.command == "build":
        build(opts.build_dir, core_dir=opts.core)
        return 0
    if opts.command == "mutant":
        opts.seconds = opts.seconds or 300
        return cmd_mutant(opts)
    if opts.seconds is None and opts.runs is None:
        p.error("run needs --seconds or --runs")
    opts.seconds = opts.seconds or 24 * 3600
    return cmd_run(opts)


if __name__ == "__main__":
    sys.exit(main())
