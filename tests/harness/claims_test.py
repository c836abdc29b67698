#!/usr/bin/python3
"""Tests of bench/claims.py (make claims) and its data file bench/claims.json.

The real ledger is checked against the project (every source names a scenario, server, point,
parameter value and micro benchmark that exist, so no row can stay 'no data' because of a
typo); the verdict logic runs on small fixture runs written here; the output (20 rows, ledger.md,
the chart) is checked on a run without data. Standard library plus matplotlib for the chart.
"""

import contextlib
import copy
import io
import json
import re
import tempfile
import unittest
from pathlib import Path

from iolab_bench import claims, figures  # bench/ on PYTHONPATH (CTest sets it)

ROOT = Path(__file__).resolve().parents[2]


def summary_row(server, point, metric, median, params=None, why=()):
    return {"server": server, "params": params or {}, "point": point, "metric": metric,
            "median": median, "spread": 0.01, "n": 3, "valid": not why, "why_invalid": list(why)}


def write_run(folder, scenario, summary=None, micro=None, started="2026-01-01T00:00:00"):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({
        "scenario": scenario, "started": started, "finished": started,
        "cpu_model": "Fixture Xeon", "cpus_online": "0-1", "hostname": "fixture",
        "kernel": "6.1.0"}))
    if summary is not None:
        (folder / "harness").mkdir()
        (folder / "harness" / "summary.json").write_text(json.dumps(summary))
    for suite, benchmarks in (micro or {}).items():
        (folder / "micro").mkdir(exist_ok=True)
        (folder / "micro" / f"{suite}.json").write_text(json.dumps({"benchmarks": benchmarks}))


def c10k(select_900=20.0, epoll_5000=11.0, invalid_900=()):
    p = lambda n: {"idle_connections": n}  # noqa: E731
    return [summary_row("select", "fixed_rate", "server_cpu_us", 10.0, p(0)),
            summary_row("select", "fixed_rate", "server_cpu_us", select_900, p(900), invalid_900),
            summary_row("epoll_et", "fixed_rate", "server_cpu_us", 10.0, p(0)),
            summary_row("epoll_et", "fixed_rate", "server_cpu_us", epoll_5000, p(5000))]


def syscalls(cycles, ns):
    return {"syscalls": [{"name": "BM_Getppid", "run_name": "BM_Getppid", "run_type": "iteration",
                          "real_time": ns, "cpu_time": ns, "time_unit": "ns",
                          "tsc_cycles": cycles}]}


class Fixture(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="labs-claims-")
        self.root = Path(self.tmp.name)
        self.ledger = {c["id"]: c for c in claims.load_ledger()}

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def verdict(self, cid, folder):
        return claims.evaluate_claim(self.ledger[cid], figures.find_runs(folder))

    def run_main(self, *args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = claims.main(list(args))
        return rc, out.getvalue()


class RealLedgerTest(Fixture):
    def test_twenty_claims_in_order(self) -> None:
        self.assertEqual(list(self.ledger), [f"C{i:02d}" for i in range(1, 21)])

    def test_every_source_exists_in_the_project(self) -> None:
        problems = []
        for cid, c in self.ledger.items():
            for name, src in (c.get("sources") or {}).items():
                where = f"{cid}.{name}"
                if "scenario" in src:
                    path = ROOT / "bench" / "scenarios" / f"{src['scenario']}.json"
                    if not path.exists():  # a probe of bench/iolab_bench/probes.py
                        path = ROOT / "bench" / "probes" / f"{src['scenario']}.json"
                    if not path.exists():
                        problems.append(f"{where}: no scenario {src['scenario']}")
                        continue
                    sc = json.loads(path.read_text())
                    if src["server"] not in sc["servers"]:
                        problems.append(
                            f"{where}: {src['server']} is not a server of {src['scenario']}")
                    points = sc.get("points", ["fixed_rate", "saturation", "closed_loop"])
                    if src["point"] not in points:
                        problems.append(f"{where}: {src['scenario']} has no point {src['point']}")
                    for key, value in src.get("params", {}).items():
                        if value not in sc.get("matrix", {}).get(key, []):
                            problems.append(
                                f"{where}: {src['scenario']} matrix has no {key}={value}")
                    if set(sc.get("matrix", {})) - set(src.get("params", {})):
                        problems.append(
                            f"{where}: params must name every matrix key of {src['scenario']}")
                else:
                    suite = src["micro"]
                    files = list((ROOT / "bench" / "micro").glob(f"{suite}.cpp")) + \
                        list((ROOT / "bench" / "micro" / suite).glob("*.cpp"))
                    if not files:
                        problems.append(f"{where}: no micro suite {suite}")
                        continue
                    base = src["benchmark"].split("/")[0]
                    registered = rf"BENCHMARK(_CAPTURE)?\({base}\b"
                    if not any(re.search(registered, f.read_text()) for f in files):
                        problems.append(f"{where}: {base} is not registered in micro_{suite}")
        self.assertEqual(problems, [], "\n".join(problems))

    def test_run_without_data_prints_twenty_rows_and_writes_outputs(self) -> None:
        run = self.root / "empty"
        write_run(run, "quick")
        rc, out = self.run_main("--results", str(run))
        self.assertEqual(rc, 0, out)
        rows = [ln for ln in out.splitlines() if re.match(r"C\d\d  ", ln)]
        self.assertEqual(len(rows), 20, out)
        for line in rows:
            self.assertRegex(line, r"(no data in this run|not testable here)$")
        ledger = (run / "ledger.md").read_text()
        self.assertEqual(len(re.findall(r"^\| C\d\d \|", ledger, re.M)), 20)
        self.assertIn("Fixture Xeon, 2 CPUs, Linux 6.1.0", ledger)
        self.assertTrue((run / "claims.png").stat().st_size > 1000)
        # The ledger's picture is the chart written beside it (a link into charts/ was broken).
        links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", ledger)
        self.assertEqual(links, ["claims.png"])
        self.assertTrue((run / links[0]).is_file())
        svg = (run / "claims.svg").read_text()
        self.assertNotIn("<dc:date>", svg)  # reproducible: no date in the metadata
        self.assertIn("Claims ledger: Fixture Xeon, 2 CPUs, Linux 6.1.0", svg)

    def test_micro_figure_from_the_run_that_repeated_it_most(self) -> None:
        # A make micro MICRO_FULL=1 run (5 repetitions) and a later make bench (its quick suites
        # ran once): the figure and its interval come from the repetitions.
        folder = self.root / "machine"
        full = syscalls(900, 300.0)["syscalls"] * 5
        full = [dict(b, tsc_cycles=c) for b, c in zip(full, (880, 900, 910, 890, 920))]
        write_run(folder / "micro", "micro", micro={"syscalls": full},
                  started="2026-01-01T00:00:00")
        write_run(folder / "quick", "quick", summary=[], micro=syscalls(2000, 700.0),
                  started="2026-01-02T00:00:00")
        rc, out = self.run_main("--results", str(folder), "--only", "C01", "--no-write")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"C01 .* 900 cycles \[[0-9]+, [0-9]+\] +holds")
        # Two runs that repeated it as often: the newer one.
        write_run(self.root / "two" / "a", "micro", micro=syscalls(900, 300.0),
                  started="2026-01-01T00:00:00")
        write_run(self.root / "two" / "b", "quick", summary=[], micro=syscalls(2000, 700.0),
                  started="2026-01-02T00:00:00")
        rc, out = self.run_main("--results", str(self.root / "two"), "--only", "C01",
                                "--no-write")
        self.assertRegex(out, r"C01 .* 2000 cycles")

    def test_only_and_unknown_ids(self) -> None:
        run = self.root / "r"
        write_run(run, "micro", micro=syscalls(1000, 70))
        rc, out = self.run_main("--results", str(run), "--only", "c01,C02", "--no-write")
        self.assertEqual(rc, 0, out)
        self.assertIn("C01  800-1200 cycles  1000 cycles (no interval: 1 round)  holds", out)
        self.assertIn("C02", out)
        self.assertNotIn("C03", out)
        self.assertFalse((run / "ledger.md").exists())
        rc, out = self.run_main("--results", str(run), "--only", "C99")
        self.assertEqual(rc, 2)
        rc, out = self.run_main("--results", str(self.root / "nowhere"))
        self.assertEqual(rc, 2)


class SideBySideTest(Fixture):
    def test_machine_folders_side_by_side_reference_first(self) -> None:
        # A folder of machine folders: each machine's figure and verdict per claim, the
        # reference first whatever its name.
        write_run(self.root / "machines" / "aa-intel" / "micro", "micro",
                  micro=syscalls(186, 70))
        write_run(self.root / "machines" / "zz-amd" / "micro", "micro",
                  micro=syscalls(2303, 855))
        machines = claims.machine_folders(self.root / "machines")
        self.assertEqual([m.name for m in machines], ["aa-intel", "zz-amd"])
        order = claims.side_by_side_order(machines, self.root / "machines" / "zz-amd")
        self.assertEqual([m.name for m in order], ["zz-amd", "aa-intel"])
        self.assertEqual(claims.machine_folders(self.root / "machines" / "zz-amd"), [])
        rc, out = self.run_main("--results", str(self.root / "machines"), "--only", "C01",
                                "--no-reference")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"aa-intel +186 cycles \(no interval: 1 round\)  -> does not hold")
        self.assertRegex(out, r"zz-amd +2303 cycles \(no interval: 1 round\)  -> does not hold")
        md = (self.root / "machines" / "machines.md").read_text()
        self.assertIn("| C01 | 800-1200 cycles | 186 cycles (no interval: 1 round) "
                      "**does not hold** | 2303 cycles", md)


class ReadmeTest(Fixture):
    def test_readme_block_from_reference_or_placeholder(self) -> None:
        readme = self.root / "README.md"
        readme.write_text(
            "# x\n<!-- claims-ledger -->\nSTALE-TEXT\n<!-- /claims-ledger -->\ntail\n")
        reference = self.root / "reference"
        rc, out = self.run_main("--readme", str(readme), "--reference", str(reference))
        self.assertEqual(rc, 0, out)
        text = readme.read_text()
        self.assertIn("No reference run is committed yet", text)
        self.assertTrue(text.endswith("<!-- /claims-ledger -->\ntail\n"))
        write_run(reference / "vm" / "micro", "micro", micro=syscalls(1000, 70))
        rc, out = self.run_main("--readme", str(readme), "--reference", str(reference))
        self.assertEqual(rc, 0, out)
        text = readme.read_text()
        self.assertIn("What we found on Fixture Xeon, 2 CPUs, Linux 6.1.0", text)
        self.assertEqual(len(re.findall(r"^\| C\d\d \|", text, re.M)), 20)
        self.assertIn("| 1000 cycles (no interval: 1 round) | holds |", text)
        self.assertNotIn("STALE-TEXT", text)
        readme.write_text("no block here\n")
        rc, out = self.run_main("--readme", str(readme), "--reference", str(reference))
        self.assertEqual(rc, 2)


class VerdictTest(Fixture):
    def test_micro_claims(self) -> None:
        write_run(self.root / "m", "micro", micro=syscalls(cycles=1000, ns=773))
        self.assertEqual(self.verdict("C01", self.root).verdict, claims.HOLDS)
        r = self.verdict("C02", self.root)
        self.assertEqual(r.verdict, claims.FAILS)
        self.assertIn("773 ns", r.detail)

    def test_micro_figures_under_background_load_are_not_valid(self) -> None:
        write_run(self.root / "m", "micro", micro=syscalls(cycles=1000, ns=773))
        manifest = json.loads((self.root / "m" / "manifest.json").read_text())
        manifest["micro"] = {"suites": {"syscalls": {"exit_status": 0, "background_cpus": 0.9}}}
        (self.root / "m" / "manifest.json").write_text(json.dumps(manifest))
        r = self.verdict("C01", self.root)
        self.assertEqual(r.verdict, claims.INVALID)
        self.assertIn("background load 0.90 CPUs during micro_syscalls", r.detail)
        # The same rule as the harness's cells.
        from iolab_bench import validity
        self.assertEqual(figures.MAX_BACKGROUND_CPUS, validity.MAX_BACKGROUND_CPUS)
        manifest["micro"]["suites"]["syscalls"]["background_cpus"] = 0.1
        (self.root / "m" / "manifest.json").write_text(json.dumps(manifest))
        self.assertEqual(self.verdict("C01", self.root).verdict, claims.HOLDS)

    def test_harness_claim_holds_fails_and_is_invalid(self) -> None:
        write_run(self.root / "a", "c10k", summary=c10k())
        self.assertEqual(self.verdict("C08", self.root).verdict, claims.HOLDS)
        self.tmp.cleanup()
        self.root.mkdir()
        # epoll_et's cost grows with idle connections: the O(1) check fails.
        write_run(self.root / "b", "c10k", summary=c10k(epoll_5000=20.0))
        r = self.verdict("C08", self.root)
        self.assertEqual(r.verdict, claims.FAILS)
        self.assertIn("epoll_et: CPU per request with 5000", r.detail)

    def test_rounds_give_the_interval_and_an_inconclusive_verdict(self) -> None:
        # select's CPU per request at 900 idle / at 0 idle: 1.5x on average (C08's bound) but
        # spread over the repeats, so the interval straddles 1.5: inconclusive. Tight repeats
        # at 2x make it hold.
        for name, per_round, want in (("wide", (13.0, 17.0, 15.0), claims.INCONCLUSIVE),
                                      ("tight", (19.9, 20.1, 20.0), claims.HOLDS)):
            root = self.root / name
            summary = c10k(select_900=sum(per_round) / 3)
            write_run(root / "run", "c10k", summary=summary)
            with (root / "run" / "harness" / "results.jsonl").open("w") as f:
                for row in summary:
                    for repeat in range(3):
                        value = (per_round[repeat] if row["params"]["idle_connections"] == 900
                                 and row["server"] == "select" else row["median"])
                        f.write(json.dumps({
                            "server": row["server"], "params": row["params"],
                            "point": row["point"], "repeat": repeat, "rps": 1000.0,
                            "cpu_us_per_req": {"server": {"user": value, "sys": 0.0},
                                               "client": {"user": 1.0, "sys": 0.0}}}) + "\n")
            r = self.verdict("C08", root)
            self.assertEqual(r.verdict, want, r.detail)
            self.assertEqual(r.checks[0].interval.n, 3)
            self.assertRegex(r.checks[0].shown(), r"^[0-9.]+x \[[0-9.]+, [0-9.]+\]$")

    def test_invalid_source_and_newest_run(self) -> None:
        write_run(self.root / "old", "c10k", summary=c10k(), started="2025-01-01")
        write_run(self.root / "new", "c10k", summary=c10k(invalid_900=["spread 40%"]),
                  started="2026-06-01")
        r = self.verdict("C08", self.root)
        self.assertEqual(r.verdict, claims.INVALID)
        self.assertIn("select_900: spread 40%", r.detail)
        self.assertIn("!", r.measured())

    def test_missing_rows_name_the_scenario(self) -> None:
        write_run(self.root / "q", "quick", summary=[])
        r = self.verdict("C16", self.root)
        self.assertEqual(r.verdict, claims.NO_DATA)
        self.assertEqual(r.detail, "needs blocking")

    def test_rules(self) -> None:
        check = {"what": "x", "expr": "a", "rule": "within",
                 "claimed": [800, 1200], "tolerance": 0.25}
        self.assertTrue(claims.judge(check, 600))
        self.assertTrue(claims.judge(check, 1500))
        self.assertFalse(claims.judge(check, 599))
        self.assertFalse(claims.judge(check, 1501))
        self.assertTrue(claims.judge({"rule": "at_least", "threshold": 1.5}, 1.5))
        self.assertFalse(claims.judge({"rule": "at_least", "threshold": 1.5}, 1.49))
        self.assertTrue(claims.judge({"rule": "at_most", "threshold": 0.6}, 0.6))
        self.assertFalse(claims.judge({"rule": "at_most", "threshold": 0.6}, 0.61))
        self.assertEqual(claims.evaluate("(a + b) / (c - 1)", {"a": 1, "b": 2, "c": 4}), 1.0)

    def test_division_by_zero_is_not_valid(self) -> None:
        zero = c10k()
        zero[2]["median"] = 0.0  # epoll_et at 0 idle: 0 us per request
        write_run(self.root / "z", "c10k", summary=zero)
        r = self.verdict("C08", self.root)
        self.assertEqual(r.verdict, claims.INVALID)
        self.assertIn("division by zero", r.detail)


class LedgerValidationTest(unittest.TestCase):
    def setUp(self) -> None:
        self.doc = json.loads(claims.LEDGER.read_text())
        self.tmp = tempfile.NamedTemporaryFile(
            "w", suffix=".json", prefix="labs-claims-", delete=False)
        self.path = Path(self.tmp.name)

    def tearDown(self) -> None:
        self.path.unlink()

    def broken(self, change):
        doc = copy.deepcopy(self.doc)
        change({c["id"]: c for c in doc["claims"]})
        self.path.write_text(json.dumps(doc))
        with self.assertRaises(claims.LedgerError) as ctx:
            claims.load_ledger(self.path)
        return str(ctx.exception)

    def test_broken_ledgers_are_refused(self) -> None:
        def unknown_name(c):
            c["C01"]["checks"][0]["expr"] = "getppid_cycles / nothing"
        self.assertIn("unknown nothing", self.broken(unknown_name))

        def unused(c):
            c["C01"]["sources"]["spare"] = {"micro": "syscalls",
                                            "benchmark": "BM_X", "field": "cpu_time"}
        self.assertIn("never used: spare", self.broken(unused))

        def bad_rule(c):
            c["C02"]["checks"][0]["rule"] = "roughly"
        self.assertIn("rule 'roughly'", self.broken(bad_rule))

        def no_why(c):
            c["C07"]["testable"] = False
        self.assertIn("no 'why'", self.broken(no_why))

        def code(c):
            c["C01"]["checks"][0]["expr"] = "__import__('os').getpid()"
        self.assertIn("is not allowed", self.broken(code))

        def wide(c):
            c["C01"]["checks"][0]["tolerance"] = 1.0  # a factor-of-2 window says nothing
        self.assertIn("'tolerance' from 0 to 0.5", self.broken(wide))

        def no_threshold(c):
            del c["C04"]["checks"][0]["threshold"]
        self.assertIn("needs a 'threshold'", self.broken(no_threshold))


if __name__ == "__main__":
    unittest.main(verbosity=2)
