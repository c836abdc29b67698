"""95% intervals for a metric's rounds and for its ratio to a baseline (issue 26).

The statistic is the mean of the rounds, not their median:
- the ratio to the baseline is the ratio of the means of paired, interleaved rounds (Kalibera and
  Jones, "Rigorous benchmarking in reasonable time", ISMM 2013), so one metric and its ratio use
  the same statistic;
- the mean's sampling distribution is smooth, so a bootstrap of it behaves; the bootstrap of a
  median over a handful of rounds takes only a few distinct values and its interval is lumpy
  (too narrow or too wide by a whole gap between rounds);
- a round spoiled by something else on the machine (steal, background load) is caught by the
  run's own checks (validity.cell_problems) and, if it slips through, widens the mean's interval
  so the figure is flagged as imprecise instead of being quietly hidden by a median.

How many rounds decides the method:
- 1 round: no interval ("too few rounds"); nothing can be said about repeatability.
- 2 to MIN_BOOTSTRAP_ROUNDS - 1 rounds: parametric. The mean gets Student's t-interval; the
  ratio gets Fieller's interval for paired rounds (exact when the pairs are roughly normal, and
  unbounded, reported as such, when the baseline's mean is not clearly away from zero). A
  percentile or BCa bootstrap over so few rounds is too narrow: it uses the plug-in variance
  ((n-1)/n of the unbiased one) and a normal instead of a t quantile, and its coverage falls well
  below 95% (about 80% at 3 rounds).
- MIN_BOOTSTRAP_ROUNDS rounds or more: scipy.stats.bootstrap (BCa, resampling the rounds; for a
  ratio, paired=True resamples whole rounds so the pairing is kept), with a fixed random_state so
  that the same rounds always give the same interval. It makes no assumption of normality (run
  times are skewed), but is still a little narrow at 20-30 rounds: over 400 synthetic samples
  each, 91-94% coverage at 20 and 30 rounds, 92-95% at 50 (normal and lognormal rounds, paired
  ratios), against 95% for the t-interval and Fieller's interval at 3-10 rounds.

scipy is imported inside the functions that need it, so that importing this module (and the
package) needs only the standard library.
"""

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

CONFIDENCE = 0.95
# From this many rounds the bootstrap is used; below it the t-interval and Fieller's interval
# (tests/harness/intervals_test.py measures the coverage of both on either side).
MIN_BOOTSTRAP_ROUNDS = 20
N_RESAMPLES = 2000
RANDOM_STATE = 26


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval. low and high are None when there is no interval: too few
    rounds, or (for a ratio) a baseline whose mean is not clearly non-zero."""

    estimate: float
    low: float | None
    high: float | None
    n: int
    method: str  # "t", "fieller", "bootstrap", "constant", "too few rounds", "unbounded"

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def width(self) -> float | None:
        """high - low, or None without an interval."""
        if self.low is None or self.high is None:
            return None
        return self.high - self.low

    def relative_width(self) -> float | None:
        """(high - low) / |estimate|: None without an interval, inf for a zero estimate with a
        non-zero width."""
        width = self.width
        if width is None:
            return None
        if self.estimate == 0:
            return 0.0 if width == 0 else math.inf
        return width / abs(self.estimate)

    def contains(self, value: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= value <= self.high


def t_quantile(confidence: float, dof: int) -> float:
    """Student's t quantile of a two-sided `confidence` interval with `dof` degrees of freedom."""
    from scipy import stats
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE,
                  random_state: int = RANDOM_STATE) -> Interval:
    """The mean of a metric's rounds and its interval (see the module's note for the method)."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("no rounds")
    mean = statistics.fmean(xs)
    if n < 2:
        return Interval(mean, None, None, n, "too few rounds")
    if min(xs) == max(xs):
        return Interval(mean, mean, mean, n, "constant")
    if n < MIN_BOOTSTRAP_ROUNDS:
        half = t_quantile(confidence, n - 1) * statistics.stdev(xs) / math.sqrt(n)
        return Interval(mean, mean - half, mean + half, n, "t")
    import numpy as np
    low, high = _bootstrap((np.asarray(xs),), np.mean, False, confidence, random_state)
    return Interval(mean, low, high, n, "bootstrap")


def _bootstrap(data: tuple[Any, ...], statistic: Any, paired: bool, confidence: float,
               random_state: int) -> tuple[float, float]:
    """scipy's BCa bootstrap; its percentile interval where BCa cannot be computed (every
    resample gives the same statistic, as for an exact ratio)."""
    from scipy import stats
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate data: handled below
            res = stats.bootstrap(data, statistic, paired=paired, vectorized=True,
                                  confidence_level=confidence, n_resamples=N_RESAMPLES,
                                  method=method, random_state=random_state)
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isnan(low) or math.isnan(high)):
            break
    return low, high


def _ratio_of_means(a: Any, b: Any, axis: int = -1) -> Any:
    import numpy as np
    return np.mean(a, axis=axis) / np.mean(b, axis=axis)


def fieller_interval(values: Sequence[float], baseline: Sequence[float],
                     confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Fieller's interval for mean(values) / mean(baseline) from paired rounds; None when it is
    unbounded (the baseline's mean is not significantly away from zero)."""
    n = len(values)
    a, b = statistics.fmean(values), statistics.fmean(baseline)
    # Variances and covariance of the two means.
    vaa = statistics.variance(values) / n
    vbb = statistics.variance(baseline) / n
    vab = statistics.covariance(values, baseline) / n
    t = t_quantile(confidence, n - 1)
    g = t * t * vbb / (b * b) if b else math.inf
    if g >= 1:
        return None
    r = a / b
    centre = r - g * vab / vbb if vbb else r
    disc = vaa - 2 * r * vab + r * r * vbb - g * (vaa - vab * vab / vbb if vbb else vaa)
    half = t / abs(b) * math.sqrt(max(disc, 0.0))
    low, high = (centre - half) / (1 - g), (centre + half) / (1 - g)
    return low, high


def ratio_interval(values: Sequence[float], baseline: Sequence[float],
                   confidence: float = CONFIDENCE, random_state: int = RANDOM_STATE) -> Interval:
    """mean(values) / mean(baseline) over paired rounds (values[i] and baseline[i] measured in
    the same interleaved round i) and its interval: the interval of the ratio itself, with the
    rounds resampled as pairs, not two separate spreads."""
    xs = [float(v) for v in values]
    ys = [float(v) for v in baseline]
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} rounds paired with {len(ys)} baseline rounds")
    n = len(xs)
    if n == 0:
        raise ValueError("no rounds")
    mb = statistics.fmean(ys)
    if mb == 0:
        return Interval(math.nan, None, None, n, "unbounded")
    ratio = statistics.fmean(xs) / mb
    if n < 2:
        return Interval(ratio, None, None, n, "too few rounds")
    if min(xs) == max(xs) and min(ys) == max(ys):
        return Interval(ratio, ratio, ratio, n, "constant")
    if n < MIN_BOOTSTRAP_ROUNDS or min(ys) == max(ys):
        bounds = fieller_interval(xs, ys, confidence)
        if bounds is None:
            return Interval(ratio, None, None, n, "unbounded")
        return Interval(ratio, bounds[0], bounds[1], n, "fieller")
    import numpy as np
    low, high = _bootstrap((np.asarray(xs), np.asarray(ys)), _ratio_of_means, True, confidence,
                           random_state)
    return Interval(ratio, low, high, n, "bootstrap")
