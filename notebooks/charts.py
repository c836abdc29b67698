#!/usr/bin/python3
"""charts.py: draws a run's charts by executing the notebooks headless, and makes reference runs.

  notebooks/charts.py draw [--results DIR] [--only 01-io-models,09-micro] [--check] [--jobs N]
  notebooks/charts.py reference MACHINE RUN_DIR... [--results-root results] [--no-charts]

`draw` (make charts, and make bench at its end) executes every notebooks/NN-*.ipynb with
Debian's Jupyter against DIR (default results/latest): one run folder, or a folder of run
folders such as results/reference/<machine>/. The run folder reaches the notebook through the
environment (RESULTS, and CHARTS for the output folder: DIR/charts), since Debian 12 has no
papermill. The kernel is the project's own kernelspec (notebooks/jupyter, found through
JUPYTER_PATH) that runs /usr/bin/python3, so a kernelspec of the user's named python3 cannot
send the notebooks to another interpreter. One line per notebook: the charts it wrote, or why
it was skipped (its data is not in DIR: iolab_plots.NEEDS), or that it failed with the end of
its traceback. Each executed notebook is kept as a page, DIR/notebooks/NN-name.html (nbconvert
--to html, its external scripts removed so it opens without a network; make report links it);
the notebooks in the source tree stay without outputs. Exit status 1 when a notebook that had
data failed.

`reference` (make reference) copies finished runs into results/reference/<machine>/<scenario>/,
keeping only the small files that charts and checks read (manifest.json, harness rows and
summary, exported histograms, micro JSON, the ledger), then draws the machine's charts into
results/reference/<machine>/charts/.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

import iolab_plots as ip  # beside this file; it needs bench/ on PYTHONPATH (iolab_bench)

HERE = Path(__file__).resolve().parent

KERNEL = "iolab-python3"
JUPYTER = "/usr/bin/jupyter"
NOTEBOOK_TIMEOUT_S = 600
# What a reference run keeps: the files the notebooks, the ledger and the checks read.
KEEP = ("manifest.json", "ledger.md", "harness/*.jsonl", "harness/*.json", "harness/hist/*",
        "micro/*.json")
MAX_KEPT_BYTES = 2 * 1024 * 1024


def notebooks(directory: str | Path) -> list[Path]:
    found = sorted(Path(directory).glob("[0-9][0-9]-*.ipynb"))
    unknown = [nb.stem for nb in found if nb.stem not in ip.NEEDS]
    if unknown:
        raise SystemExit(f"charts: {', '.join(unknown)} not in iolab_plots.NEEDS (say what data "
                         f"each notebook needs)")
    return found


# The scripts nbconvert's HTML template loads (require.js and MathJax, from file:// paths on
# Debian, a CDN elsewhere) and MathJax's configuration: the notebooks use neither, and a page
# that fetches nothing opens anywhere.
EXTERNAL_SCRIPT = re.compile(r'<script[^>]*\bsrc="[^"]*"[^>]*>\s*</script>\n?'
                             r'|<script type="text/x-mathjax-config">.*?</script>\n?', re.S)


def pages_dir(results: ip.Results) -> Path:
    """Where the executed notebooks go as HTML pages: beside make report's report.html."""
    return results.root / "notebooks"


def execute(nb: Path, results: ip.Results, charts_dir: Path,
            workdir: str | Path) -> tuple[bool, float, str]:
    """Runs one notebook headless into its HTML page; returns (ok, seconds, error text)."""
    # The user's Jupyter configuration and IPython start-up files stay out of it: a chart must
    # come out the same on every machine.
    env = dict(os.environ, RESULTS=str(results.root), CHARTS=str(charts_dir),
               JUPYTER_PATH=str(HERE / "jupyter"),
               # The kernel imports iolab_plots (here) and through it iolab_bench (bench/).
               PYTHONPATH=f"{HERE}:{HERE.parent / 'bench'}",
               JUPYTER_CONFIG_DIR=str(Path(workdir) / "jupyter-config"),
               IPYTHONDIR=str(Path(workdir) / f"ipython-{nb.stem}"),
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    pages = pages_dir(results)
    pages.mkdir(parents=True, exist_ok=True)
    cmd = [JUPYTER, "nbconvert", "--to", "html", "--execute",
           f"--ExecutePreprocessor.kernel_name={KERNEL}",
           f"--ExecutePreprocessor.timeout={NOTEBOOK_TIMEOUT_S}",
           "--output-dir", str(pages), "--output", nb.stem, str(nb)]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=NOTEBOOK_TIMEOUT_S + 60)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - start, f"timed out after {NOTEBOOK_TIMEOUT_S + 60} s"
    except OSError as e:
        return False, time.monotonic() - start, f"cannot run {JUPYTER}: {e} (make deps)"
    page = pages / f"{nb.stem}.html"
    if proc.returncode == 0 and page.exists():
        page.write_text(EXTERNAL_SCRIPT.sub("", page.read_text()))
    return proc.returncode == 0, time.monotonic() - start, proc.stderr


def error_tail(text: str, lines: int = 12) -> str:
    """The useful end of nbconvert's output: the exception and the lines before it."""
    kept = [line for line in text.splitlines() if line.strip() and "[NbConvertApp]" not in line]
    return "\n".join("    " + line for line in kept[-lines:])


def chart_files(charts_dir: Path, prefix: str) -> list[Path]:
    return sorted(charts_dir.glob(f"{prefix}-*.*"))


def draw_one(nb: Path, results: ip.Results, charts_dir: Path,
             workdir: str | Path) -> tuple[str, bool]:
    """Executes one notebook after removing its old charts; returns the line to print and
    whether it failed."""
    name, prefix = nb.stem, nb.stem[:2]
    for old in chart_files(charts_dir, prefix):  # a chart the data no longer gives must go
        old.unlink()
    (pages_dir(results) / f"{name}.html").unlink(missing_ok=True)
    ok, seconds, err = execute(nb, results, charts_dir, workdir)
    written = sorted({f.stem for f in chart_files(charts_dir, prefix) if f.suffix == ".png"})
    incomplete = [s for s in written
                  if not all((charts_dir / f"{s}{ext}").exists() for ext in (".svg", ".csv"))]
    if ok and written and not incomplete:
        return (f"charts: {name}: {len(written)} charts in {seconds:.0f} s: "
                f"{', '.join(written)}", False)
    why = ("failed" if not ok else "wrote no chart" if not written
           else f"charts without their .svg/.csv: {', '.join(incomplete)}")
    line = f"charts: {name}: FAILED ({why}, {seconds:.0f} s)"
    return (line + "\n" + error_tail(err) if not ok else line), True


def draw(results_path: str | Path, only: list[str] | None = None, check: bool = False,
         notebook_dir: str | Path = HERE, jobs: int = 1) -> int:
    """Executes the notebooks that have data, `jobs` at a time (each writes only its own
    NN-* charts), printing their lines in notebook order."""
    try:
        results = ip.load(results_path)
    except ip.NoData as e:
        print(f"charts: {e}", file=sys.stderr)
        return 2
    todo = notebooks(notebook_dir)
    if only:
        wanted = set(only)
        unknown = wanted - {nb.stem for nb in todo}
        if unknown:
            print(f"charts: no notebook {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        todo = [nb for nb in todo if nb.stem in wanted]
    charts_dir = results.charts_dir()
    print(f"charts: {len(results)} run(s) in {results.given} -> {charts_dir}", flush=True)
    skipped, failed, runnable = 0, [], []
    for nb in todo:
        reason = ip.missing(nb.stem, results)
        if reason:
            skipped += 1
        runnable.append((nb, reason))
    with tempfile.TemporaryDirectory(prefix="iolab-charts-") as workdir, \
            concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        if not check:
            charts_dir.mkdir(parents=True, exist_ok=True)
        pending = {nb: pool.submit(draw_one, nb, results, charts_dir, workdir)
                   for nb, reason in runnable if not reason and not check}
        for nb, reason in runnable:
            if reason:
                print(f"charts: {nb.stem}: skipped: {reason}", flush=True)
            elif check:
                print(f"charts: {nb.stem}: would draw from {ip.run_for(nb.stem, results).name}",
                      flush=True)
            else:
                line, bad = pending[nb].result()
                print(line, flush=True)
                if bad:
                    failed.append(nb.stem)
    drawn = 0 if check else len(runnable) - skipped - len(failed)
    print(f"charts: {drawn} notebooks drawn, {skipped} skipped for lack of data, "
          f"{len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""), flush=True)
    return 1 if failed else 0


def reference(machine: str, run_dirs: Iterable[str], results_root: str | Path,
              charts: bool = True) -> int:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", machine):
        print(f"reference: MACHINE '{machine}' must be a slug (lower case, digits, . _ -), "
              f"e.g. laptop-i7-8565u", file=sys.stderr)
        return 2
    if not run_dirs:
        print("reference: no runs given (RUNS='results/runs/<run> ...')", file=sys.stderr)
        return 2
    runs = []
    for d in run_dirs:
        path = Path(d)
        try:
            run = ip.Run(path)
        except (OSError, ValueError) as e:
            print(f"reference: {d} is not a run folder: {e}", file=sys.stderr)
            return 2
        m = run.manifest
        if m.get("interrupted"):
            print(f"reference: {d} was interrupted; a reference keeps finished runs only",
                  file=sys.stderr)
            return 2
        if run.rows and not m.get("finished"):
            print(f"reference: {d} has no 'finished' in its manifest (still running, or it "
                  f"crashed)", file=sys.stderr)
            return 2
        runs.append(run)
    scenarios = [r.scenario for r in runs]
    twice = sorted({s for s in scenarios if scenarios.count(s) > 1})
    if twice:
        print(f"reference: more than one run of {', '.join(twice)}: give one per scenario",
              file=sys.stderr)
        return 2
    machine_dir = Path(results_root) / "reference" / machine
    for run in runs:
        dest = machine_dir / run.scenario
        if dest.exists():
            print(f"reference: replacing {dest}")
            shutil.rmtree(dest)
        kept, left, size = 0, [], 0
        for f in sorted(p for p in run.path.rglob("*") if p.is_file()):
            rel = f.relative_to(run.path)
            if not any(rel.match(pattern) and len(rel.parts) == len(Path(pattern).parts)
                       for pattern in KEEP):
                left.append(str(rel))
                continue
            if f.stat().st_size > MAX_KEPT_BYTES:
                left.append(
                    f"{rel} ({f.stat().st_size // 1024} KB, over {MAX_KEPT_BYTES // 1024} KB)")
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / rel)
            kept += 1
            size += f.stat().st_size
        print(f"reference: {run.path.name} -> {dest}: {kept} files, {size // 1024} KB"
              + (f"; left out: {', '.join(left)}" if left else ""))
    if not charts:
        return 0
    return draw(machine_dir, jobs=os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw", help="execute the notebooks against a run folder")
    d.add_argument("--results", help="run folder or folder of run folders (default $RESULTS or "
                                     "results/latest)")
    d.add_argument("--only", help="comma-separated notebook names (01-io-models,...)")
    d.add_argument("--check", action="store_true", help="only say what would be drawn or skipped")
    d.add_argument("--jobs", type=int, default=1, help="notebooks executed at a time")
    d.add_argument("--notebook-dir", default=str(HERE), help=argparse.SUPPRESS)
    r = sub.add_parser("reference", help="copy finished runs into results/reference/MACHINE/")
    r.add_argument("machine")
    r.add_argument("runs", nargs="*")
    r.add_argument("--results-root", default=str(ip.ROOT / "results"))
    r.add_argument("--no-charts", action="store_true")
    opts = p.parse_args(argv)
    if opts.command == "draw":
        results = opts.results or os.environ.get("RESULTS") or str(ip.ROOT / "results" / "latest")
        return draw(results, opts.only.split(",") if opts.only else None, opts.check,
                    Path(opts.notebook_dir), opts.jobs)
    return reference(opts.machine, opts.runs, opts.results_root, not opts.no_charts)


if __name__ == "__main__":
    sys.exit(main())
