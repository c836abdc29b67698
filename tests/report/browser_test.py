#!/usr/bin/python3
"""make report's pages in a real browser: headless Chromium through chromedriver (Debian's
chromium-driver and python3-selenium, scripts/install-deps.sh test).

  browser_test.py [--out DIR]     (CTest gives its build folder; default a temporary one)

It copies committed runs into DIR/work (every reference machine folder of results/reference/ and
the synthetic machine of tests/report/fixture-machines/ as one folder of machines; the notebooks'
fixture run as a machine folder; its quick run as a run folder), writes their reports with
bench/report.py as `make report` does, and opens each page at 1280 and 390 px wide. A page fails on:
  - a SEVERE entry in the browser's console (a resource that did not load, a bad URL...),
  - an image whose naturalWidth is 0 (not loaded, or a data URI that does not decode),
  - horizontal scrolling at 390 px (something wider than a phone's screen outside a scroll
    container).
Screenshots of every page and width go to DIR/screenshots. The checker is first shown failing:
two deliberately broken pages (an image with a bad data URI; a wide table without a scroll
container) must each be caught, or the test fails, so a checker that cannot fail cannot pass.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WIDTHS = (1280, 390)
NARROW = 390
HEIGHT = 900
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"

BROKEN_IMAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>broken image</title>
</head><body><p>An image whose data URI does not decode:</p>
<img src="data:image/png;base64,bm90IGEgcG5n" alt="broken"></body></html>
"""
WIDE_TABLE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>wide table</title>
</head><body><p>A wide table with no scroll container:</p><table><tr>{}</tr></table></body></html>
""".format("".join(f"<td>column_number_{i}_is_wide</td>" for i in range(20)))


def driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size=1280,{HEIGHT}"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


PROBE = """
const doc = document.documentElement;
const bad = Array.from(document.images)
  .filter(i => !i.complete || i.naturalWidth === 0)
  .map(i => (i.alt || '') + ' ' + i.src.slice(0, 60));
return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, images: document.images.length,
        badImages: bad, title: document.title};
"""


def check_page(drv: Any, page: Path, width: int, shots: Path) -> list[str]:
    """The problems of one page at one width; saves its screenshot."""
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": HEIGHT, "deviceScaleFactor": 1,
                         "mobile": width < 600})
    drv.get_log("browser")  # drop what an earlier page left
    drv.get(page.as_uri())
    deadline = time.monotonic() + 10
    while drv.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            return [f"{page}: not loaded after 10 s"]
        time.sleep(0.05)
    probe = drv.execute_script(PROBE)
    problems = []
    for entry in drv.get_log("browser"):
        if entry.get("level") == "SEVERE":
            problems.append(f"console SEVERE: {entry.get('message')}")
    for img in probe["badImages"]:
        problems.append(f"image with naturalWidth 0: {img}")
    if width == NARROW and probe["scrollWidth"] > probe["clientWidth"]:
        problems.append(f"scrolls sideways at {width} px: the page is {probe['scrollWidth']} px "
                        f"wide")
    name = "-".join(page.with_suffix("").parts[-3:])
    drv.save_screenshot(str(shots / f"{name}-{width}.png"))
    print(f"  {page.parent.name}/{page.name} at {width} px: {probe['images']} images, "
          f"{probe['scrollWidth']} px wide: "
          + ("ok" if not problems else f"{len(problems)} problems"), flush=True)
    return problems


def write_report(results: Path) -> list[Path]:
    """bench/report.py --results RESULTS, as make report runs it; returns the pages it wrote."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"),
                           "--results", str(results)], capture_output=True, text=True,
                          timeout=120)
    print(proc.stdout + proc.stderr, end="", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: bench/report.py --results {results}: exit {proc.returncode}")
    return [Path(line.split()[2]) for line in proc.stdout.splitlines()
            if line.startswith(("report: wrote", "report:   and"))]


def make_reports(work: Path) -> list[Path]:
    """Copies the committed runs into work/ and writes their reports; returns the pages."""
    reference = work / "reference"
    reference.mkdir(parents=True)
    for machine in sorted((ROOT / "results" / "reference").iterdir()):
        if machine.is_dir():  # every committed reference machine (amd-epyc-2cpu-vm, ...)
            shutil.copytree(machine, reference / machine.name,
                            ignore=shutil.ignore_patterns("report.html", "notebooks"))
    for machine in sorted((HERE / "fixture-machines").iterdir()):
        if machine.is_dir():
            shutil.copytree(machine, reference / machine.name)
    shutil.copytree(ROOT / "tests" / "harness" / "fixture-run", work / "fixture-run")
    pages = []
    for results in (reference, work / "fixture-run", work / "fixture-run" / "quick"):
        pages += write_report(results)
    return pages


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--out", help="where the copies, pages and screenshots go")
    p.add_argument("--also", action="append", default=[], metavar="RESULTS",
                   help="also write and check the report of this folder (e.g. results/latest "
                        "after make bench) and its executed notebooks (notebooks/*.html)")
    opts = p.parse_args()
    for tool in (CHROMEDRIVER, CHROMIUM):
        if not os.access(tool, os.X_OK):
            print(f"FAIL: {tool} is missing (scripts/install-deps.sh test installs "
                  f"chromium-driver)", file=sys.stderr)
            return 1
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("FAIL: python3-selenium is missing (scripts/install-deps.sh test)", file=sys.stderr)
        return 1
    start = time.monotonic()
    out = Path(opts.out) if opts.out else Path(tempfile.mkdtemp(prefix="report-browser-"))
    work, shots = out / "work", out / "screenshots"
    for d in (work, shots):
        shutil.rmtree(d, ignore_errors=True)
    shots.mkdir(parents=True)
    pages = make_reports(work)
    for extra in opts.also:
        found = write_report(Path(extra).resolve())
        pages += found + sorted(p for f in found for p in (f.parent / "notebooks").glob("*.html"))
    broken = work / "broken"
    broken.mkdir()
    (broken / "bad-image.html").write_text(BROKEN_IMAGE)
    (broken / "wide-table.html").write_text(WIDE_TABLE)
    failures = []
    drv = driver()
    try:
        print("the checker on deliberately broken pages (each must be caught):")
        caught = {name: check_page(drv, broken / name, NARROW, shots)
                  for name in ("bad-image.html", "wide-table.html")}
        for name, problems in caught.items():
            print(f"    {name}: " + ("; ".join(problems) or "NOT CAUGHT"))
        if not any("naturalWidth 0" in p for p in caught["bad-image.html"]):
            failures.append("the checker missed the image with a bad data URI")
        if not any("scrolls sideways" in p for p in caught["wide-table.html"]):
            failures.append("the checker missed the wide table at 390 px")
        print(f"the reports ({len(pages)} pages):")
        for page in pages:
            for width in WIDTHS:
                failures += [f"{page} at {width} px: {problem}"
                             for problem in check_page(drv, page, width, shots)]
    finally:
        drv.quit()
    print(f"screenshots in {shots}")
    for f in failures:
        print(f"FAIL: {f}")
    print(f"{'FAILED' if failures else 'passed'} in {time.monotonic() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
