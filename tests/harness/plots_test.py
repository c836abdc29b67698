#!/usr/bin/python3
"""Unit tests of notebooks/iolab_plots.py without Jupyter (Debian's matplotlib and pandas).

On the committed fixture run and on small modified copies of it: finding the run folders and
the run each notebook draws from, the tables behind the charts (means, intervals and validity
from the summary, an older summary's medians read as then, the rows' own reasons, placeholders
for what has no figure, run.py's rules for the metrics the summary does not carry, Google
Benchmark errors), and the charts themselves
(machine and run in the title, units on the axes, invalid cells hatched with a numbered note,
reproducible SVG, the table saved beside the images and checked against its registered
function).
"""

import json
import math
import os
import shutil
import tempfile
import unittest
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
from chart_checks import ip  # noqa: E402  (beside this file; after MPLBACKEND is set)

FIXTURE = Path(__file__).resolve().parent / "fixture-run"


def texts(fig):
    """Every string drawn on a figure: titles, labels, tick labels, annotations, legend."""
    out = []
    for ax in fig.axes:
        out += [ax.get_title(loc=loc) for loc in ("left", "center", "right")]
        out += [ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.texts]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        legend = ax.get_legend()
        if legend:
            out += [t.get_text() for t in legend.get_texts()]
    return out


class Copy(unittest.TestCase):
    """A scratch copy of the fixture that a test may break."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="notebooks-plots-test-"))
        self.copy = self.tmp / "fixture"
        shutil.copytree(FIXTURE, self.copy)
        shutil.rmtree(self.copy / "charts")
        os.environ["CHARTS"] = str(self.tmp / "charts")

    def tearDown(self) -> None:
        os.environ.pop("CHARTS", None)
        shutil.rmtree(self.tmp)

    def rows(self, scenario):
        path = self.copy / scenario / "harness" / "results.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def write_rows(self, scenario, rows):
        path = self.copy / scenario / "harness" / "results.jsonl"
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


class Loading(Copy):
    def test_folder_of_runs_and_single_run(self) -> None:
        res = ip.load(self.copy)
        self.assertEqual(sorted(r.scenario for r in res), [
                         "affinity", "c10k", "cache", "pooling", "quick"])
        single = ip.load(self.copy / "quick")
        self.assertEqual([r.scenario for r in single], ["quick"])
        self.assertEqual(single.charts_dir(), self.tmp / "charts")  # CHARTS wins
        os.environ.pop("CHARTS")
        self.assertEqual(single.charts_dir(), (self.copy / "quick" / "charts").resolve())

    def test_reference_layout_two_levels_down(self) -> None:
        ref = self.tmp / "results" / "reference"
        ref.mkdir(parents=True)
        shutil.copytree(self.copy, ref / "box")
        res = ip.load(self.tmp / "results" / "reference")
        self.assertEqual(len(res), 5)
        self.assertEqual(res.runs[0].reference_machine(), "box")

    def test_nothing_there(self) -> None:
        with self.assertRaises(ip.NoData):
            ip.load(self.tmp / "missing")
        (self.tmp / "empty").mkdir()
        with self.assertRaisesRegex(ip.NoData, "no run folder"):
            ip.load(self.tmp / "empty")

    def test_each_notebook_finds_its_run_or_says_why(self) -> None:
        res = ip.load(self.copy)
        expected = {"01-io-models": "quick", "02-latency": "quick", "03-c10k": "c10k",
                    "04-syscalls-and-switches": "quick", "05-cache": "cache",
                    "06-affinity": "affinity", "07-pooling": "pooling",
                    "08-memory-per-connection": "c10k", "09-micro": "quick"}
        self.assertEqual(set(expected), set(ip.NEEDS))
        for notebook, scenario in expected.items():
            self.assertIsNone(ip.missing(notebook, res))
            self.assertEqual(ip.run_for(notebook, res).scenario, scenario)
        quick_only = ip.load(self.copy / "quick")
        reason = ip.missing("03-c10k", quick_only)
        assert reason is not None
        self.assertIn("no c10k run in", reason)
        self.assertEqual(reason.count("\n"), 0)
        with self.assertRaisesRegex(ip.NoData, "03-c10k"):
            ip.run_for("03-c10k", quick_only)
        # Without its c10k run, 08 falls back to the pooling run's memory points.
        shutil.rmtree(self.copy / "c10k")
        self.assertEqual(ip.run_for("08-memory-per-connection",
                         ip.load(self.copy)).scenario, "pooling")

    def test_newest_run_of_a_scenario_wins(self) -> None:
        newer = self.copy / "quick2"
        shutil.copytree(self.copy / "quick", newer)
        manifest = json.loads((newer / "manifest.json").read_text())
        manifest["started"] = "2099-01-01T00:00:00+00:00"
        (newer / "manifest.json").write_text(json.dumps(manifest))
        self.assertEqual(ip.run_for("01-io-models", ip.load(self.copy)).name, "quick2")

    def test_machine_and_run_named(self) -> None:
        run = ip.load(self.copy / "quick").runs[0]
        self.assertIn("2 CPUs", run.machine())
        self.assertIn("Linux", run.machine())
        self.assertIn(run.manifest["git_revision"], run.label())
        self.assertIn("run quick", run.label())


class Tables(Copy):
    def test_summary_mean_interval_and_validity(self) -> None:
        res = ip.load(self.copy)
        run = ip.run_for("01-io-models", res)
        t = ip.table("01-saturation-rps", res)
        self.assertEqual(list(t.columns), ip.COLUMNS)
        seen = 0
        for entry in run.summary:
            if entry["point"] == "saturation" and entry["metric"] == "rps":
                seen += 1
                row = t[t["x"] == entry["server"]].iloc[0]
                self.assertEqual(row["value"], entry["mean"])
                self.assertEqual(bool(row["valid"]), entry["valid"])
                self.assertEqual(row["reason"], "; ".join(entry["reasons"]))
                values = [r["rps"] for r in run.rows if r["server"] == entry["server"]
                          and r["point"] == "saturation"]
                self.assertAlmostEqual(row["value"], sum(values) / len(values))
                self.assertEqual((row["lo"], row["hi"], row["n"]),
                                 (entry["low"], entry["high"], len(values)))
        self.assertGreater(seen, 0)

    def test_summary_written_before_intervals_is_read_as_then(self) -> None:
        # A run folder from before issue 26 (results/reference/ has some): its medians, the
        # min and max of its repeats, and the 15% spread rule for what it does not carry.
        path = self.copy / "quick" / "harness" / "summary.json"
        keys = ("server", "params", "point", "metric", "median", "spread", "n", "valid",
                "why_invalid")
        old = [{k: v for k, v in e.items() if k in keys} for e in json.loads(path.read_text())]
        path.write_text(json.dumps(old))
        res = ip.load(self.copy)
        run = ip.run_for("01-io-models", res)
        t = ip.table("01-saturation-rps", res)
        entry = next(e for e in old if e["point"] == "saturation" and e["metric"] == "rps")
        row = t[t["x"] == entry["server"]].iloc[0]
        values = [r["rps"] for r in run.rows if r["server"] == entry["server"]
                  and r["point"] == "saturation"]
        self.assertEqual((row["value"], row["lo"], row["hi"]),
                         (entry["median"], min(values), max(values)))
        sys_row = ip.table("01-cpu-per-request", res)
        sys_row = sys_row[(sys_row["series"] == "system")].iloc[0]
        self.assertNotIn("interval", sys_row["reason"])

    def test_servers_not_run_keep_a_placeholder(self) -> None:
        t = ip.table("01-saturation-rps", ip.load(self.copy))
        for server, why in ip.load(self.copy / "quick").runs[0].manifest["skipped"].items():
            row = t[t["x"] == server].iloc[0]
            self.assertTrue(math.isnan(row["value"]))
            self.assertFalse(row["valid"])
            self.assertTrue(row["reason"].startswith("not run: "), row["reason"])

    def test_failed_cell_keeps_its_reason(self) -> None:
        rows = self.rows("quick")
        kept = [r for r in rows if not (r["server"] == "select" and r["point"] == "fixed_rate")]
        for repeat in (0, 1):
            kept.append({"server": "select", "scenario": "quick", "params": {},
                         "point": "fixed_rate",
                         "repeat": repeat, "valid": False,
                         "invalid_reason": "select: the server died during the run (exit -11)"})
        self.write_rows("quick", kept)
        summary = self.copy / "quick" / "harness" / "summary.json"
        summary.write_text(json.dumps([
            s for s in json.loads(summary.read_text())
            if not (s["server"] == "select" and s["point"] == "fixed_rate")]))
        t = ip.table("04-syscalls-per-request", ip.load(self.copy))
        row = t[t["x"] == "select"].iloc[0]
        self.assertTrue(math.isnan(row["value"]))
        self.assertFalse(row["valid"])
        self.assertEqual(row["reason"], "no measurement: select: the server died during the run "
                                        "(exit -#) in 2 of 2 runs".replace("#", "11"))

    def test_reference_server_without_counters(self) -> None:
        t = ip.table("07-allocs-per-request", ip.load(self.copy))
        row = t[t["x"] == "nginx"].iloc[0]
        self.assertTrue(math.isnan(row["value"]))
        self.assertIn("reference server", row["reason"])

    def test_metric_outside_the_summary_uses_run_py_rules(self) -> None:
        # server_sys_us and p90 are not in summary.json: run.py's rules over the rows (the mean,
        # its interval against the metric's precision, the rows' own reasons).
        rows = self.rows("quick")
        mine = [r for r in rows if r["server"] == "threads" and r["point"] == "fixed_rate"]
        mine[0]["cpu_us_per_req"]["server"]["sys"] = 10.0
        mine[1]["cpu_us_per_req"]["server"]["sys"] = 20.0
        mine[0]["latency_us"]["p90"] = 100.0
        mine[1]["latency_us"]["p90"] = 900.0
        mine[1]["invalid_reason"], mine[1]["valid"] = "3 errors", False
        self.write_rows("quick", rows)
        res = ip.load(self.copy)
        t = ip.table("01-cpu-per-request", res)
        sys_row = t[(t["x"] == "threads") & (t["series"] == "system")].iloc[0]
        self.assertEqual(sys_row["value"], 15.0)
        self.assertFalse(sys_row["valid"])
        # 10 and 20: a t-interval of 127 wide, ±424% of the mean (a CPU split: at most ±10%,
        # or ±0.5 us per request, whichever is looser).
        self.assertEqual(sys_row["reason"], "3 errors in 1 of 2 runs; interval ±424% of the "
                                            "value over 2 rounds (at most ±10%)")
        self.assertAlmostEqual(sys_row["hi"] - sys_row["lo"], 127.06, places=2)
        p90 = ip.table("02-latency-percentiles", res)
        p90 = p90[(p90["x"] == "p90") & (p90["series"] == "threads")].iloc[0]
        self.assertEqual(p90["value"], 500.0)
        self.assertTrue(p90["reason"].startswith("3 errors in 1 of 2 runs; interval "),
                        p90["reason"])

    def test_memory_of_the_first_cell_only(self) -> None:
        res = ip.load(self.copy)
        t = ip.table("08-memory-own", res)
        run = ip.run_for("08-memory-per-connection", res)
        first = ip.memory_params(run)
        self.assertEqual(first, {"idle_connections": 0})
        threads = [r for r in run.rows if r["point"] == "memory" and r["server"] == "threads"
                   and r["params"] == first][0]
        row = t[(t["x"] == "threads") & (t["series"] == "kernel stack")].iloc[0]
        self.assertEqual(row["value"], threads["mem_per_conn"]["kernel_stack_kb"])
        self.assertIn("idle_connections=0", ip.memory_note(run))

    def test_micro_errors_failed_suites_and_steal(self) -> None:
        doc_path = self.copy / "quick" / "micro" / "syscalls.json"
        doc = json.loads(doc_path.read_text())
        doc["benchmarks"][0].update(error_occurred=True, error_message="io_uring_queue_init: EPERM")
        doc_path.write_text(json.dumps(doc))
        res = ip.load(self.copy)
        t = ip.table("09-micro-syscalls", res)
        self.assertEqual(len(t), len(doc["benchmarks"]))
        bad = t.iloc[0]
        self.assertFalse(bad["valid"])
        self.assertEqual(bad["reason"], "io_uring_queue_init: EPERM")
        self.assertTrue(math.isnan(bad["value"]))
        self.assertTrue(t.iloc[1:]["valid"].all())
        self.assertTrue(all("[C0" in x for x in t["x"]))  # claim ids in the labels
        record_path = self.copy / "quick" / "micro" / "summary.json"
        record = json.loads(record_path.read_text())
        record["steal_pct"] = 7.5
        record["suites"]["ipc"]["exit_status"] = 1
        record_path.write_text(json.dumps(record))
        res = ip.load(self.copy)
        ipc = ip.table("09-micro-ipc", res)
        self.assertFalse(ipc["valid"].any())
        self.assertEqual(ipc.iloc[0]["reason"], "suite exited 1; steal 7.5% during the micro run")

    def test_micro_repetitions_use_the_median_aggregate(self) -> None:
        doc_path = self.copy / "quick" / "micro" / "http.json"
        doc = json.loads(doc_path.read_text())
        first = doc["benchmarks"][0]
        runs = []
        for i, time_ in enumerate((100.0, 300.0, 200.0)):
            runs.append(dict(first, real_time=time_, time_unit="us",
                        repetition_index=i, repetitions=3))
        median = dict(first, run_type="aggregate", aggregate_name="median",
                      real_time=150.0, time_unit="us")
        doc["benchmarks"] = runs + [median]
        doc_path.write_text(json.dumps(doc))
        row = ip.table("09-micro-http", ip.load(self.copy)).iloc[0]
        self.assertEqual((row["value"], row["lo"], row["hi"], row["n"]), (150e3, 100e3, 300e3, 3))


class Charts(Copy):
    def test_bars_name_machine_run_units_and_mark_invalid(self) -> None:
        res = ip.load(self.copy)
        t = ip.table("01-saturation-rps", res)
        fig = ip.bars(t, res, "Throughput", "throughput (requests per second)",
                      xlabel="server (model)")
        drawn = texts(fig)
        run = ip.run_for("01-io-models", res)
        self.assertTrue(any(run.machine() in s for s in drawn))
        self.assertTrue(any(run.label() in s for s in drawn))
        ax = fig.axes[0]
        self.assertEqual(ax.get_ylabel(), "throughput (requests per second)")
        self.assertEqual(ax.get_xlabel(), "server (model)")
        hatched = [p for p in ax.patches if p.get_hatch()]
        self.assertEqual(len(hatched), int((~t["valid"]).sum()))  # every invalid bar, none else
        notes = [s for s in drawn if s.startswith("[1] ")]
        self.assertEqual(len(notes), 1)
        for i, row in enumerate(t[~t["valid"]].itertuples(), 1):
            self.assertIn(f"[{i}] {row.x}: {row.reason}"[:60],
                          notes[0].replace("\n", " ").replace("      ", " "))
        self.assertTrue(any("not valid" in s for s in drawn))  # the legend explains the hatching
        ip.plt.close(fig)

    def test_lines_mark_invalid_points_and_missing_ones(self) -> None:
        res = ip.load(self.copy)
        t = ip.table("03-cpu-vs-idle", res)
        t.loc[0, ["value", "valid", "reason"]] = [math.nan, False, "no measurement: made up"]
        fig = ip.lines(t, res, "CPU", "CPU time per request (µs)", "idle connections (count)")
        drawn = "\n".join(texts(fig))
        self.assertIn("no measurement: made up", drawn)
        self.assertIn("n/a", drawn)
        hollow = [ln for ln in fig.axes[0].lines if ln.get_markerfacecolor() == "white"]
        self.assertEqual(len(hollow), int((~t["valid"] & t["value"].notna()).sum()))
        ip.plt.close(fig)

    def test_negative_stack_part_is_noted_not_hidden(self) -> None:
        res = ip.load(self.copy)
        t = ip.table("08-memory-own", res)
        t.loc[(t["x"] == "select") & (t["series"] == "kernel stack"), "value"] = -0.5
        fig = ip.bars(t, res, "Memory", "memory per connection (KB)", stacked=True)
        self.assertIn("select kernel stack: negative (-0.5), drawn as 0", "\n".join(texts(fig)))
        ip.plt.close(fig)

    def test_save_writes_png_svg_csv_reproducibly(self) -> None:
        res = ip.load(self.copy)
        out = []
        for _ in range(2):
            t = ip.table("06-affinity-rps", res)
            fig = ip.bars(t, res, "Affinity",
                          "throughput (requests per second)", xlabel="placement")
            png = ip.save(fig, t, "06-affinity-rps", res, show=False)
            out.append({ext: (png.with_suffix(ext)).read_bytes()
                       for ext in (".png", ".svg", ".csv")})
        self.assertEqual(out[0][".svg"], out[1][".svg"])
        self.assertNotIn(b"<dc:date>", out[0][".svg"])
        self.assertEqual(out[0][".csv"].decode(), ip.table_csv(ip.table("06-affinity-rps", res)))
        self.assertTrue(out[0][".png"].startswith(b"\x89PNG"))

    def test_save_refuses_a_table_not_built_by_its_function(self) -> None:
        res = ip.load(self.copy)
        t = ip.table("04-syscalls-per-request", res)
        fig = ip.bars(t, res, "x", "y (count)")
        t.loc[0, "value"] = t.loc[0, "value"] * 2
        with self.assertRaisesRegex(ValueError, "not what iolab_plots.TABLES"):
            ip.save(fig, t, "04-syscalls-per-request", res, show=False)
        with self.assertRaises(KeyError):
            ip.save(fig, t, "04-not-a-chart", res, show=False)
        self.assertFalse((self.tmp / "charts" / "04-syscalls-per-request.csv").exists())

    def test_formats(self) -> None:
        self.assertEqual(ip.fmt(774784.2), "775k")
        self.assertEqual(ip.fmt(2.5e6), "2.5M")
        self.assertEqual(ip.fmt(0.2163), "0.216")
        self.assertEqual(ip.fmt(math.nan), "n/a")
        self.assertEqual(ip.fmt_ns(15800.0), "15.8 µs")
        self.assertEqual(ip.fmt_ns(3.49), "3.49 ns")
        self.assertEqual(ip.fmt_ns(2.32e8), "232 ms")
        self.assertEqual(ip.count_cpus("0-1"), 2)
        self.assertEqual(ip.count_cpus("0,2-3"), 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
