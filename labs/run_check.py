#!/usr/bin/python3
"""run_check.py: runs a lab's check and judges it (make lab-NN-check, make labs-check, CTest).

Every lab folder labs/NN-topic/ may hold an executable `check` with one interface:

  check --variant exercise|solution [--build-dir DIR]
  exit 0 = pass, 1 = fail (with a message saying what failed), 2 = usage or setup error,
  77 = this machine cannot run the check (with the reason printed)

This script finds the lab, runs its check under a time limit (a hang is a failure, never a hung
make or CTest), prints how long it took, and with --expect turns the check's verdict into a
test verdict:

  --expect pass   the check must exit 0 (lab.NN.CheckPassesOnSolution)
  --expect fail   the check must exit 1 and say why (lab.NN.CheckFailsOnStarter): proof that
                  the check catches the starter. A usage error (2) or a time-out proves nothing
                  and fails the test.

The proof needs the starter as committed. When a reader has edited exercise/ (git shows changes
to its tracked files), the starter is gone and --expect fail exits 77 (CTest: skipped) saying
so; outside a git checkout, or with an untouched exercise/, it runs.

Usage: labs/run_check.py --lab 01 [--variant exercise|solution] [--build-dir build]
                         [--expect pass|fail] [--timeout 150]
       labs/run_check.py --all [--variant solution]
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import checklib  # labs/common: the checks' shared code (this script's folder)

LABS = Path(__file__).resolve().parent
ROOT = LABS.parent
SKIP = 77


def lab_dirs() -> list[Path]:
    return sorted(p for p in LABS.glob("[0-9][0-9]-*") if p.is_dir())


def find_lab(name: str) -> Path:
    """'01', '01-anatomy' or a path -> the lab folder."""
    path = Path(name)
    if path.is_dir() and (path / "README.md").exists():
        return path.resolve()
    if name.isdigit():
        matches = [d for d in lab_dirs() if d.name[:2] == name.zfill(2)]
    else:
        matches = [d for d in lab_dirs() if d.name == name or d.name.startswith(name)]
    if len(matches) != 1:
        known = ", ".join(d.name for d in lab_dirs()) or "none yet"
        raise SystemExit(f"run_check: no single lab matches '{name}' (labs: {known})")
    return matches[0]


def exercise_edited(lab: Path) -> bool:
    """True when git shows changes to the tracked files of lab/exercise (the reader's work)."""
    try:
        proc = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--",
                               str(lab / "exercise")], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 1


def run_one(lab: Path, variant: str, build_dir: Path,
            timeout: float) -> tuple[int | None, float, str]:
    """Runs the check; returns (exit status or None on time-out, seconds, output)."""
    check = lab / "check"
    if not check.exists():
        print(f"run_check: {lab.name} has no check", file=sys.stderr)
        return 2, 0.0, ""
    if not check.stat().st_mode & 0o111:
        print(f"run_check: {check} is not executable (chmod +x)", file=sys.stderr)
        return 2, 0.0, ""
    cmd = [str(check), "--variant", variant, "--build-dir", str(build_dir)]
    print(f"run_check: {lab.name}: {' '.join(cmd[1:])}", flush=True)
    start = time.monotonic()
    # The check runs in its own session so a time-out can stop everything it started.
    # Checks import labs/common (checklib) and bench/iolab_bench: the paths make and CTest set.
    paths = [str(ROOT / "bench"), str(ROOT / "labs"), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=":".join(p for p in paths if p))
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        status = None
    seconds = time.monotonic() - start
    sys.stdout.write(out)
    if out and not out.endswith("\n"):
        sys.stdout.write("\n")
    return status, seconds, out


def describe(status: int | None) -> str:
    return {None: "timed out", 0: "PASS", 1: "FAIL", 2: "usage/setup error",
            SKIP: "cannot run here"}.get(status, f"exit {status}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lab", help="NN, NN-topic or a lab folder")
    p.add_argument("--all", action="store_true", help="every lab that has a check")
    p.add_argument("--variant", type=checklib.variant_arg, default="exercise",
                   help="exercise, solution, or wrong-NAME (known wrong solution wrong/NAME.patch)")
    p.add_argument("--build-dir", default=str(ROOT / "build"))
    p.add_argument("--expect", choices=("pass", "fail"))
    p.add_argument("--timeout", type=float, default=150.0)
    opts = p.parse_args(argv)
    if bool(opts.lab) == opts.all:
        p.error("give --lab NN or --all")
    build_dir = Path(opts.build_dir).resolve()

    if opts.all:
        results = []
        for lab in lab_dirs():
            if (lab / "check").exists():
                status, seconds, _ = run_one(lab, opts.variant, build_dir, opts.timeout)
                results.append((lab.name, status, seconds))
        print(f"\nlabs-check ({opts.variant}):")
        for name, status, seconds in results:
            print(f"  {name:32} {describe(status):18} {seconds:5.1f} s")
        bad = [r for r in results if r[1] not in (0, SKIP)]
        return 1 if bad or not results else 0

    lab = find_lab(opts.lab)
    if opts.expect == "fail" and opts.variant == "exercise" and exercise_edited(lab):
        print(f"run_check: SKIP: {lab.name}/exercise/ differs from the committed starter (your "
              "work on the exercise), so the proof that the check catches the starter cannot "
              "run; `git diff -- " + str((lab / "exercise").relative_to(ROOT)) + "` shows the "
              "changes, `make lab-" + lab.name[:2] + "-check` judges them.")
        return SKIP
    status, seconds, out = run_one(lab, opts.variant, build_dir, opts.timeout)
    print(f"run_check: {lab.name} {opts.variant}: {describe(status)} in {seconds:.1f} s")
    if status == SKIP:
        return SKIP
    if opts.expect is None:
        return 1 if status is None else status
    if opts.expect == "pass":
        if status != 0:
            print(f"run_check: expected the check to pass on {opts.variant}/, it gave: "
                  f"{describe(status)}")
            return 1
        return 0
    if status != 1:
        print(f"run_check: expected the check to fail on {opts.variant}/ (exit 1), it gave: "
              f"{describe(status)}")
        return 1
    if not out.strip():
        print("run_check: the check failed without saying why: a failing check must print what "
              "failed")
        return 1
    caught = "the starter" if opts.variant == "exercise" else f"wrong/{opts.variant[6:]}.patch"
    print(f"run_check: as expected, the check catches {caught}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
