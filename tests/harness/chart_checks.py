"""Checks shared by the notebook tests: is a charts/ folder what its run's rows give?

A chart's data is the tidy table iolab_plots.TABLES builds from the rows; notebooks save it as
<chart>.csv beside <chart>.png and <chart>.svg. check_charts() rebuilds every table from the
run folders and compares it with the saved CSV, text for text (iolab_plots.table_csv fixes the
format), and checks that no image lacks its data file (and, where images are required, that no
data file lacks its images), that every chart name is registered, and that SVGs carry no date.
It returns the problems as sentences; an empty list means the folder regenerates.
"""

import difflib
import importlib
from pathlib import Path

import iolab_plots as ip  # notebooks/ and bench/ on PYTHONPATH (CTest sets it)

ROOT = Path(__file__).resolve().parents[2]

# Modules besides iolab_plots that register charts in iolab_plots.TABLES (one per scenario
# that is drawn outside the numbered notebooks).
for _extra in sorted((ROOT / "notebooks").glob("*_plots.py")):
    if _extra.stem != "iolab_plots":
        importlib.import_module(_extra.stem)


def check_charts(charts_dir, results, require_images=True):
    charts_dir = Path(charts_dir)
    problems = []
    csvs = {p.stem for p in charts_dir.glob("*.csv")}
    for image in sorted(charts_dir.glob("*.png")) + sorted(charts_dir.glob("*.svg")):
        if image.stem not in csvs:
            problems.append(f"{image.name} has no {image.stem}.csv: its data cannot be checked")
    if require_images:
        for stem in sorted(csvs):
            for ext in (".png", ".svg"):
                if not (charts_dir / f"{stem}{ext}").exists():
                    problems.append(f"{stem}.csv has no {stem}{ext}")
    for svg in sorted(charts_dir.glob("*.svg")):
        if "<dc:date>" in svg.read_text():
            problems.append(f"{svg.name} carries a date: not reproducible")
    for stem in sorted(csvs):
        if stem not in ip.TABLES:
            problems.append(f"{stem}.csv is no chart registered in iolab_plots.TABLES")
            continue
        saved = (charts_dir / f"{stem}.csv").read_text()
        try:
            rebuilt = ip.table_csv(ip.table(stem, results))
        except ip.NoData as e:
            problems.append(f"{stem}: its data is gone from the rows: {e}")
            continue
        if saved != rebuilt:
            diff = "\n".join(difflib.unified_diff(saved.splitlines(), rebuilt.splitlines(),
                                                  "saved", "rebuilt from the rows", lineterm="",
                                                  n=0))
            problems.append(f"{stem}.csv differs from the table rebuilt from the rows:\n{diff}")
    return problems
