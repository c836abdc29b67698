#!/usr/bin/python3
"""Tests of the harness's intervals (iolab_bench.intervals) and of validity from precision
(iolab_bench.validity.PRECISION) on known distributions, seeded (about 3 s).

Coverage is measured over many synthetic samples whose true mean or ratio is known: a 95%
interval must contain it in about 95% of them, on both sides of MIN_BOOTSTRAP_ROUNDS (the
t-interval and Fieller's interval below it, scipy's bootstrap from it).
"""

import math
import unittest
import warnings

import numpy as np

from iolab_bench import intervals, validity
from iolab_bench.intervals import Interval, mean_interval, ratio_interval


def mean_coverage(n: int, trials: int, seed: int, skewed: bool = False) -> float:
    """Share of `trials` samples of `n` rounds whose mean interval contains the true mean."""
    rng = np.random.default_rng(seed)
    if skewed:  # lognormal, as run times are: mean exp(sigma^2 / 2) * scale
        true, draw = 100 * math.exp(0.3 ** 2 / 2), lambda: 100 * rng.lognormal(0, 0.3, n)
    else:
        true, draw = 100.0, lambda: rng.normal(100, 5, n)
    return sum(mean_interval(list(draw())).contains(true) for _ in range(trials)) / trials


Rounds = tuple[list[float], list[float]]


def paired_rounds(rng: np.random.Generator, n: int, ratio: float) -> Rounds:
    """n interleaved rounds of a server and its baseline: each round shares a machine-wide
    effect (both slower in a noisy round), plus each one's own noise; true ratio of the means
    `ratio`."""
    round_effect = rng.normal(0, 6, n)
    base = 100 + round_effect + rng.normal(0, 3, n)
    other = ratio * (100 + round_effect) + rng.normal(0, 4, n)
    return list(other), list(base)


def ratio_coverage(n: int, trials: int, seed: int, ratio: float = 1.5) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        other, base = paired_rounds(rng, n, ratio)
        hits += ratio_interval(other, base).contains(ratio)
    return hits / trials


class MeanIntervalTest(unittest.TestCase):
    def test_t_interval_covers_the_true_mean(self) -> None:
        for n in (3, 8):
            with self.subTest(n=n):
                self.assertLess(n, intervals.MIN_BOOTSTRAP_ROUNDS)
                self.assertGreaterEqual(mean_coverage(n, 600, seed=n), 0.92)
                self.assertLessEqual(mean_coverage(n, 600, seed=n), 0.98)

    def test_bootstrap_covers_the_true_mean_of_a_skewed_distribution(self) -> None:
        n = 30
        self.assertEqual(mean_interval([float(x) for x in range(n)]).method, "bootstrap")
        coverage = mean_coverage(n, 150, seed=7, skewed=True)
        self.assertGreaterEqual(coverage, 0.89)
        self.assertLessEqual(coverage, 0.99)

    def test_width_shrinks_with_the_rounds(self) -> None:
        rng = np.random.default_rng(3)
        widths = []
        for n in (3, 10, 40):
            w = [mean_interval(list(rng.normal(100, 5, n))).relative_width() for _ in range(40)]
            widths.append(float(np.mean([x for x in w if x is not None])))
        self.assertGreater(widths[0], widths[1])
        self.assertGreater(widths[1], widths[2])
        # About 1/sqrt(n) once the t quantile settles: 40 rounds half as wide as 10.
        self.assertLess(widths[2], 0.65 * widths[1])

    def test_few_rounds(self) -> None:
        one = mean_interval([5.0])
        self.assertEqual((one.estimate, one.low, one.high, one.method),
                         (5.0, None, None, "too few rounds"))
        self.assertIsNone(one.relative_width())
        same = mean_interval([2.0, 2.0, 2.0])
        self.assertEqual((same.low, same.high, same.relative_width()), (2.0, 2.0, 0.0))
        # Two rounds: t with 1 degree of freedom, 12.706 * sd / sqrt(2), sd = sqrt(2).
        two = mean_interval([9.0, 11.0])
        self.assertEqual(two.method, "t")
        self.assertAlmostEqual((two.high or 0.0) - 10.0, 12.706, places=2)
        with self.assertRaises(ValueError):
            mean_interval([])

    def test_bootstrap_is_deterministic(self) -> None:
        rng = np.random.default_rng(11)
        xs = list(rng.normal(10, 1, 25))
        self.assertEqual(mean_interval(xs), mean_interval(xs))


class RatioIntervalTest(unittest.TestCase):
    def test_fieller_covers_the_true_ratio(self) -> None:
        for n in (3, 5, 10):
            with self.subTest(n=n):
                coverage = ratio_coverage(n, 500, seed=100 + n)
                self.assertGreaterEqual(coverage, 0.92)
                self.assertLessEqual(coverage, 0.985)

    def test_paired_bootstrap_covers_the_true_ratio(self) -> None:
        n = 25
        rng = np.random.default_rng(0)
        self.assertEqual(ratio_interval(*paired_rounds(rng, n, 2.0)).method, "bootstrap")
        coverage = ratio_coverage(n, 150, seed=5, ratio=0.7)
        self.assertGreaterEqual(coverage, 0.89)
        self.assertLessEqual(coverage, 0.99)

    def test_pairing_narrows_the_interval(self) -> None:
        # A machine-wide effect per round moves both servers; the paired interval of the ratio
        # sees through it, where the ratio of two unpaired intervals cannot.
        rng = np.random.default_rng(21)
        other, base = paired_rounds(rng, 8, 1.5)
        paired = ratio_interval(other, base)
        a, b = mean_interval(other), mean_interval(base)
        assert a.low is not None and a.high is not None and b.low is not None
        assert b.high is not None and paired.width is not None
        self.assertLess(paired.width, a.high / b.low - a.low / b.high)
        shuffled = ratio_interval(other, list(reversed(base)))
        self.assertIsNotNone(shuffled.width)
        self.assertLess(paired.width, shuffled.width or 0.0)

    def test_a_known_ratio(self) -> None:
        base = [100.0, 130.0, 90.0, 110.0]
        exact = ratio_interval([2 * x for x in base], base)
        self.assertEqual(exact.method, "fieller")
        self.assertAlmostEqual(exact.estimate, 2.0)
        self.assertAlmostEqual(exact.low or 0.0, 2.0)
        self.assertAlmostEqual(exact.high or 0.0, 2.0)
        many = [100.0 + 7 * (i % 5) for i in range(30)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # BCa's degenerate case is handled, not warned
            boot = ratio_interval([0.5 * x for x in many], many)
        self.assertEqual(boot.method, "bootstrap")
        self.assertAlmostEqual(boot.low or 0.0, 0.5)
        self.assertAlmostEqual(boot.high or 0.0, 0.5)

    def test_degenerate_rounds(self) -> None:
        self.assertEqual(ratio_interval([3.0], [2.0]).method, "too few rounds")
        self.assertEqual(ratio_interval([3.0, 3.0], [2.0, 2.0]).low, 1.5)
        # A baseline whose mean is not clearly away from zero has no bounded ratio.
        self.assertEqual(ratio_interval([1.0, 2.0, 1.5], [-1.0, 1.2, 0.1]).method, "unbounded")
        self.assertEqual(ratio_interval([1.0, 2.0], [0.0, 0.0]).method, "unbounded")
        with self.assertRaises(ValueError):
            ratio_interval([1.0, 2.0], [1.0])


# Words that name each kind of metric in PRECISION's reasons.
KIND_WORDS = {
    "throughput": "requests per second", "cpu_total": "total CPU",
    "cpu_split": "user or system", "syscalls": "system calls",
    "ctx_switches": "context switches", "latency_median": "p50", "latency_tail": "p99",
    "count": "instructions", "memory": "memory per connection",
}


class PrecisionTest(unittest.TestCase):
    def test_every_metric_has_a_stated_precision(self) -> None:
        names = set(validity.ROW_METRICS) | {m for ms in validity.METRICS.values() for m in ms}
        self.assertEqual(names - set(validity.METRIC_KIND), set())
        self.assertEqual(set(validity.METRIC_KIND.values()), set(validity.PRECISION))
        for kind, p in validity.PRECISION.items():
            with self.subTest(kind=kind):
                self.assertGreater(p.share, 0)
                self.assertTrue(p.reason)

    def test_a_reason_names_only_its_own_metrics(self) -> None:
        self.assertEqual(set(KIND_WORDS), set(validity.PRECISION))
        for kind, p in validity.PRECISION.items():
            with self.subTest(kind=kind):
                self.assertIn(KIND_WORDS[kind], p.reason)
                for other, words in KIND_WORDS.items():
                    if other != kind:
                        self.assertNotIn(words, p.reason)

    def test_relative_precision(self) -> None:
        # The rule is the ± the tables print: half the interval as a share of the mean.
        ok = Interval(1000.0, 910.0, 1090.0, 3, "t")  # ±9%
        wide = Interval(1000.0, 850.0, 1150.0, 3, "t")  # ±15%
        self.assertIsNone(validity.precision_problem("rps", ok))
        self.assertEqual(validity.precision_problem("rps", wide),
                         "interval ±15% of the value over 3 rounds (at most ±10%)")
        # The tick-sampled user/system split may reach ±0.5 us per request; the exact total
        # may not.
        self.assertIsNone(validity.precision_problem("server_user_us", Interval(
            2.0, 1.6, 2.4, 3, "t")))
        self.assertIsNotNone(validity.precision_problem("server_cpu_us", Interval(
            2.0, 1.6, 2.4, 3, "t")))

    def test_test_retest_share_keeps_two_runs_within_ten_percent(self) -> None:
        # What TEST_RETEST promises: rounds whose means are known to ±10% from 5 rounds agree
        # between two runs within 10% about 95 times in 100 (normal rounds, no drift).
        rng = np.random.default_rng(26)
        n, trials = 5, 4000
        # The spread of rounds whose 95% t-interval of the mean is ±10% on average.
        sd = 0.10 * math.sqrt(n) / 2.776
        a = rng.normal(1.0, sd, (trials, n)).mean(axis=1)
        b = rng.normal(1.0, sd, (trials, n)).mean(axis=1)
        agree = np.mean(np.abs(b / a - 1) <= validity.TEST_RETEST)
        self.assertGreater(agree, 0.93)
        self.assertLess(agree, 0.98)

    def test_tail_latency_is_judged_too(self) -> None:
        # The fixed-rate p99 moving from 1.1 ms to 8.8 ms between runs.
        p99 = mean_interval([1100.0, 8800.0, 4000.0])
        self.assertIsNotNone(validity.precision_problem("p99_us", p99))
        self.assertIsNone(validity.precision_problem("p99_us", mean_interval(
            [1100.0, 1180.0, 1050.0])))

    def test_context_switches_on_absolute_precision(self) -> None:
        # About 0.1 per request, moving by 0.01: ±22% of the value, yet precise enough.
        small = mean_interval([0.10, 0.11, 0.105])
        self.assertGreater((small.relative_width() or 0.0) / 2, 0.10)
        self.assertIsNone(validity.precision_problem("ctx_switches_per_req", small))
        noisy = mean_interval([0.05, 0.15, 0.10])
        self.assertEqual(validity.precision_problem("ctx_switches_per_req", noisy),
                         f"interval ±{(noisy.width or 0.0) / 2:.3g} over 3 rounds "
                         "(at most ±0.025 per request)")
        # Two switches per request (a thread per connection) are judged on the share.
        self.assertEqual(validity.max_reach("ctx_per_request", 2.0), 0.2)

    def test_counts_near_zero_on_absolute_precision(self) -> None:
        # The pooled server's allocations per request (0.00003-0.00004: ±21% of nothing) and
        # io_uring's system calls per request under a pipelined load (0.005-0.012).
        allocs = mean_interval([4.065e-05, 3.049e-05, 4.065e-05, 4.065e-05])
        self.assertIsNone(validity.precision_problem("allocs_per_req", allocs))
        calls = mean_interval([0.0053, 0.0124, 0.0067, 0.0090])
        self.assertIsNone(validity.precision_problem("syscalls_per_req", calls))
        # Two allocations per request are held to ±5%.
        self.assertIsNotNone(validity.precision_problem("allocs_per_req",
                                                        mean_interval([2.0, 2.2, 1.8])))

    def test_agreement_between_runs(self) -> None:
        self.assertTrue(validity.agrees("rps", 100.0, 109.0))
        self.assertFalse(validity.agrees("rps", 100.0, 112.0))
        # A small count agrees within its absolute precision, not within 10% of nearly zero.
        self.assertTrue(validity.agrees("ctx_switches_per_req", 2.0e-05, 9.5e-05))
        self.assertFalse(validity.agrees("ctx_switches_per_req", 0.025, 0.070))
        self.assertTrue(validity.agrees("server_user_us", 1.18, 0.82))
        self.assertFalse(validity.agrees("server_user_us", 8.0, 9.5))
        self.assertFalse(validity.agrees("p50_us", 0.0, 5.0))
        self.assertTrue(validity.agrees("p50_us", 0.0, 0.0))

    def test_rounds_without_an_interval(self) -> None:
        self.assertIsNone(validity.precision_problem("instructions_per_req",
                                                     mean_interval([123.0])))
        self.assertEqual(validity.precision_problem("rps", Interval(1.0, None, None, 3,
                                                                    "unbounded")),
                         "no interval (unbounded)")


def row(server: str, repeat: int, rps: float | None, point: str = "saturation") -> dict:
    return {"server": server, "params": {}, "point": point, "repeat": repeat, "rps": rps}


class RowIntervalTest(unittest.TestCase):
    def test_ratio_pairs_rounds_by_repeat(self) -> None:
        # Repeat 1 was a slow round for both; the baseline's repeat 3 failed (no figures).
        ours = [row("a", 0, 200.0), row("a", 1, 100.0), row("a", 2, 210.0), row("a", 3, 190.0)]
        base = [row("b", 2, 105.0), row("b", 0, 100.0), row("b", 1, 50.0), row("b", 3, None)]
        ratio = validity.row_ratio_interval(ours, base, "rps")
        assert ratio is not None
        self.assertEqual(ratio.n, 3)
        self.assertAlmostEqual(ratio.estimate, 510.0 / 255.0)
        self.assertAlmostEqual(ratio.low or 0.0, 2.0)  # every round is exactly 2x
        self.assertAlmostEqual(ratio.high or 0.0, 2.0)
        mean = validity.row_interval(ours, "rps")
        assert mean is not None and mean.width is not None
        self.assertEqual(mean.n, 4)
        self.assertGreater(mean.width, 100.0)  # the slow round, unpaired, is wide
        self.assertIsNone(validity.row_ratio_interval(ours, [row("b", 9, 1.0)], "rps"))
        self.assertIsNone(validity.row_interval([row("a", 0, None)], "rps"))
        with self.assertRaises(ValueError):
            validity.row_interval([row("a", 0, 1.0), row("a", 0, 2.0)], "rps")


if __name__ == "__main__":
    unittest.main()
