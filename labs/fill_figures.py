#!/usr/bin/python3
"""fill_figures.py: writes the expected figures into the lab READMEs from the reference run.

No figure in a lab README is typed by hand. The README holds a marker around each value,

  select pays <!-- fig:select_cpu_900 -->(run make lab-02)<!-- /fig --> per request

and the lab's figures.json says where the value comes from (a harness row or a micro benchmark;
the source format is described in bench/iolab_bench/figures.py), with an optional Python format
string:

  {"select_cpu_900": {"scenario": "c10k", "server": "select", "point": "fixed_rate",
                      "metric": "server_cpu_us", "params": {"idle_connections": 900},
                      "format": "{:.1f} us"}}

This script looks every source up in the committed reference run, results/reference/<machine>/
(one run folder per scenario, produced by the lead with `make bench-full`), and rewrites the
values between the markers. The key `machine` needs no source: it becomes the reference
machine's CPU model. A value the run marks not valid is written with a mark, "! [^N]", and
its reasons go in footnote N, in a block at the end of the README (<!-- fig-notes -->). While
there is no reference run, every value is the placeholder "(run make lab-NN)" and the script
says so. A marker without a source, or a malformed source, is an error (exit 1).

Usage: labs/fill_figures.py [--reference results/reference] [--machine NAME] [--check]
  --check   change nothing; exit 1 when a README is not what the reference run gives
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from iolab_bench import figures  # bench/ on PYTHONPATH (make lab-figures sets it)

LABS = Path(__file__).resolve().parent
ROOT = LABS.parent

MARKER = re.compile(r"<!-- fig:([A-Za-z0-9_.-]+) -->(.*?)<!-- /fig -->")
RESERVED = {"machine"}


def placeholder(lab: Path) -> str:
    return f"(run make lab-{lab.name[:2]})"


def lab_dirs(labs_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(labs_dir).glob("[0-9][0-9]-*") if (p / "README.md").exists())


def load_sources(lab: Path) -> dict[str, Any]:
    """figures.json of a lab ({} when absent); raises figures.SourceError when malformed."""
    path = lab / "figures.json"
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise figures.SourceError(f"{path}: not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise figures.SourceError(f"{path}: must be an object of key -> source")
    for key, source in doc.items():
        if key in RESERVED:
            raise figures.SourceError(f"{path}: '{key}' is reserved (filled without a source)")
        if not isinstance(source, dict):
            raise figures.SourceError(f"{path}: {key}: a source is an object")
        try:
            figures.check_source(source)
        except figures.SourceError as e:
            raise figures.SourceError(f"{path}: {key}: {e}") from e
    return doc


def problems(lab: Path) -> list[str]:
    """Marker keys without a source, and sources without a marker (the layout test uses it)."""
    text = (lab / "README.md").read_text()
    keys = {m.group(1) for m in MARKER.finditer(text)}
    sources = load_sources(lab)
    out = [f"{lab.name}/README.md: fig:{k} has no source in figures.json"
           for k in sorted(keys - set(sources) - RESERVED)]
    out += [f"{lab.name}/figures.json: {k} is not used in README.md"
            for k in sorted(set(sources) - keys)]
    return out


def fill(lab: Path, runs: list[figures.RunFolder],
         machine_dir: Path | None) -> tuple[str, list[str]]:
    """The README text with every marker's value replaced; returns (text, notes)."""
    text = (lab / "README.md").read_text()
    sources = load_sources(lab)
    notes = []

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if not runs:
            shown = placeholder(lab)
        elif key == "machine":
            shown = runs[0].machine()
        else:
            source = sources[key]
            fig = figures.figure(runs, source)
            if fig is None:
                shown = f"(not in the reference run {machine_dir.name})"
                notes.append(f"{lab.name}: {key}: no such row in the reference run")
            else:
                shown = figures.format_value(fig.value, source.get("format"))
                if not fig.valid:
                    shown += invalid_mark(key, fig.why_invalid, footnotes)
        return f"<!-- fig:{key} -->{shown}<!-- /fig -->"

    footnotes: list[str] = []
    return with_footnotes(MARKER.sub(value, text), footnotes), notes


NOTES = re.compile(r"\n*<!-- fig-notes -->.*?<!-- /fig-notes -->\n?", re.S)


def invalid_mark(key: str, why: list, footnotes: list[str]) -> str:
    """The mark a figure the run cannot stand behind carries in its sentence: ' ! [^N]'; the
    reasons go in footnote N (one footnote per distinct key and reasons)."""
    note = f"`{key}`: {'; '.join(why)}"
    if note not in footnotes:
        footnotes.append(note)
    return f" ! [^{footnotes.index(note) + 1}]"


def with_footnotes(text: str, footnotes: list[str]) -> str:
    """The README with its block of validity footnotes (at the end) rewritten."""
    text = NOTES.sub("\n", text).rstrip("\n") + "\n"
    if not footnotes:
        return text
    lines = [f"[^{i}]: not valid on the reference run: {note}."
             for i, note in enumerate(footnotes, 1)]
    return text + "\n<!-- fig-notes -->\n" + "\n".join(lines) + "\n<!-- /fig-notes -->\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labs-dir", default=str(LABS))
    p.add_argument("--reference", default=str(ROOT / "results" / "reference"))
    p.add_argument("--machine")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if out of date")
    opts = p.parse_args(argv)

    # A lab with a marker without a source (or a malformed source) is reported and left alone;
    # the others are still filled.
    errors, broken = [], set()
    for lab in lab_dirs(opts.labs_dir):
        try:
            found = problems(lab)
        except figures.SourceError as e:
            found = [str(e)]
        if found:
            errors += found
            broken.add(lab.name)
    for error in errors:
        print(f"fill_figures: {error}", file=sys.stderr)

    try:
        machine_dir, runs = figures.reference_runs(opts.reference, opts.machine)
    except figures.SourceError as e:
        raise SystemExit(f"fill_figures: {e}") from e
    if not runs:
        print(f"fill_figures: no reference run in {opts.reference} (the lead commits one with "
              f"`make bench-full`); figures left as placeholders '(run make lab-NN)'")
    else:
        print(f"fill_figures: reference {machine_dir} ({len(runs)} runs; {runs[0].machine()})")

    stale = []
    for lab in lab_dirs(opts.labs_dir):
        if lab.name in broken:
            print(f"fill_figures: {lab.name}: not filled (see above)")
            continue
        readme = lab / "README.md"
        old = readme.read_text()
        new, notes = fill(lab, runs, machine_dir)
        for n in notes:
            print(f"fill_figures: {n}")
        count = len(MARKER.findall(new))
        if new == old:
            print(f"fill_figures: {lab.name}: {count} figures, unchanged")
            continue
        stale.append(lab.name)
        if opts.check:
            print(f"fill_figures: {lab.name}: README figures are out of date")
        else:
            readme.write_text(new)
            print(f"fill_figures: {lab.name}: {count} figures written")
    return 1 if errors or (opts.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
