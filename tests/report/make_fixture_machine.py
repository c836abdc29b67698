#!/usr/bin/python3
"""Writes tests/report/fixture-machines/synthetic-fixture-machine/: a SYNTHETIC second machine
for make report's side-by-side page (tests only; no figure in it was measured).

It is the AMD EPYC reference's quick run as iolab's first round measured it
(results/reference/amd-epyc-2cpu-vm-v1/quick) with its manifest renamed to a machine that does
not exist and its summary figures scaled by fixed
factors, plus the keys issue 26 adds to summary rows (mean, low, high, method, ratio,
ratio_low, ratio_high), so the pages are tested with both the summaries of today and the ones
with intervals. Run it again (never edit the files by hand) when the reference's quick run
changes:

  tests/report/make_fixture_machine.py
"""

import json
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "results" / "reference" / "amd-epyc-2cpu-vm-v1" / "quick"
DEST = Path(__file__).resolve().parent / "fixture-machines" / "synthetic-fixture-machine"
# Per metric: this fake machine is 30% slower per request and saturates 20% lower.
SCALE = {"rps": 0.8, "server_cpu_us": 1.3, "server_user_us": 1.3, "client_cpu_us": 1.3,
         "p50_us": 1.2, "p99_us": 1.2}
README = """# SYNTHETIC FIXTURE: not a real machine

Made by `tests/report/make_fixture_machine.py` from the AMD EPYC reference's quick run, with
figures scaled by fixed factors and made-up 95% intervals. It exists only so that
tests/report/browser_test.py can render a folder of two machine folders. Never quote a figure
from it.
"""


def with_interval(row: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(row)
    factor = SCALE.get(row["metric"], 1.0)
    value = row["median"] * factor
    out["median"] = value
    half = max(row.get("spread") or 0.0, 0.02) / 2 * value
    out.update(mean=value, low=value - half, high=value + half, method="t")
    if baseline is not None and baseline.get("median"):
        ratio = value / (baseline["median"] * factor)
        out.update(ratio=ratio, ratio_low=ratio * 0.97, ratio_high=ratio * 1.03)
    return out


def main() -> None:
    manifest = json.loads((SOURCE / "manifest.json").read_text())
    manifest.update(cpu_model="SYNTHETIC FIXTURE (not a real machine)", hostname="fixture",
                    kernel="0.0.0-fixture", cpu_accounting="synthetic: not measured",
                    git_revision="fixture", offered_rate=manifest["offered_rate"] * 0.8)
    summary = json.loads((SOURCE / "harness" / "summary.json").read_text())
    base = {(r["point"], r["metric"], json.dumps(r["params"])): r for r in summary
            if r["server"] == manifest.get("baseline", "nginx")}
    rows = [with_interval(r, base.get((r["point"], r["metric"], json.dumps(r["params"]))))
            for r in summary]
    if DEST.exists():
        shutil.rmtree(DEST)
    (DEST / "quick" / "harness").mkdir(parents=True)
    (DEST / "README.md").write_text(README)
    (DEST / "quick" / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True)
                                                  + "\n")
    (DEST / "quick" / "harness" / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main()
