#!/usr/bin/python3
"""notebooks/netns_plots.py on a made-up netns run: the chart's table has one row per model and
round trip with run.py's connections-to-peak figure and validity, the chart is written as PNG,
SVG and the CSV of that table, and a run without the peak rows is refused with its reason.

The run folder is built with bench/run.py's own functions (base_row, connections_to_peak), so
the test follows the rows' schema as run.py writes it. Run by CTest (label tools) as:
/usr/bin/python3 netns_plots_test.py
"""

import json
import os
import tempfile
import unittest
from pathlib import Path

from iolab_bench import runfolder, sweeps  # bench/ and notebooks/ on PYTHONPATH (CTest)

ROOT = Path(__file__).resolve().parents[2]

# (server, think_ms): [(connections, req/s)]; threads at 20 ms is still rising at the end.
SWEEPS = {
    ("epoll_et", 0): [(1, 9000), (4, 30000), (16, 41000), (64, 42000)],
    ("epoll_et", 20): [(1, 48), (4, 190), (16, 760), (64, 2900)],
    ("threads", 0): [(1, 7000), (4, 21000), (16, 22000), (64, 21500)],
    ("threads", 20): [(1, 47), (4, 180), (16, 700), (64, 2500)],
}


def make_run(folder, with_peaks=True):
    (folder / "harness").mkdir(parents=True)
    rows = []
    for (server, think), sweep in SWEEPS.items():
        for conns, rps in sweep:
            row = runfolder.base_row({"name": "netns"}, server,
                                     {"think_ms": think, "connections": conns},
                                     "closed_loop", 0, "client-bound (server CPU 30%)")
            row.update(rps=rps, server_cpu_util=0.3, latency_us={"p50": 120.0},
                       errors={"timeout": 0})
            rows.append(row)
    (folder / "harness/results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = {"scenario": "netns", "cpu_model": "Test CPU", "cpus_online": "0-1",
                "kernel": "6.1.0-test", "git_revision": "abc1234", "started": "2026-01-01T00:00:00"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if with_peaks:
        peaks = sweeps.connections_to_peak(rows)
        (folder / "harness/connections_to_peak.jsonl").write_text(
            "".join(json.dumps(p) + "\n" for p in peaks))


class NetnsPlots(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="iolab-containers-plots-")
        self.folder = Path(self.tmp.name) / "20260101-000000-netns"
        os.environ["CHARTS"] = str(Path(self.tmp.name) / "charts")
        import netns_plots
        self.np = netns_plots

    def tearDown(self) -> None:
        os.environ.pop("CHARTS", None)
        self.tmp.cleanup()

    def test_table_and_chart(self) -> None:
        make_run(self.folder)
        results = self.np.ip.load(self.folder)
        t = self.np.connections_to_peak_table(results)
        got = {(r.series, r.x): (r.value, r.valid) for r in t.itertuples()}
        self.assertEqual(got, {("epoll_et", 0): (16.0, True), ("epoll_et", 20): (64.0, False),
                               ("threads", 0): (4.0, True), ("threads", 20): (64.0, False)})
        self.assertEqual(list(t["x"]), [0, 0, 20, 20])  # round trips in numeric order
        self.assertIn("still rising", t[~t["valid"]]["reason"].iloc[0])
        png = self.np.draw(results, show=False)
        charts = Path(os.environ["CHARTS"])
        self.assertEqual(png, charts / f"{self.np.CHART}.png")
        for ext in ("png", "svg"):
            self.assertGreater((charts / f"{self.np.CHART}.{ext}").stat().st_size, 1000)
        self.assertEqual((charts / f"{self.np.CHART}.csv").read_text(), self.np.ip.table_csv(t))

    def test_run_without_peak_rows_is_refused(self) -> None:
        make_run(self.folder, with_peaks=False)
        with self.assertRaisesRegex(self.np.ip.NoData, "connections_to_peak.jsonl is missing"):
            self.np.connections_to_peak_table(self.np.ip.load(self.folder))


if __name__ == "__main__":
    unittest.main(verbosity=2)
