"""Mean and measured 95% interval of a metric across repetitions, and what separates two of them.

Every interval is measured, never assumed: Student's t (scipy) around the mean of the
repetitions, so the interval is centred on the value shown. Three repetitions can agree by
chance, so the spread used is never below the metric's *pooled* between-repetition spread in
the same run (the median coefficient of variation over every cell with two or more
repetitions): the floor. A single repetition has no interval at all; it is shown as such and
never decides anything.

Two estimates differ only when their intervals do not overlap. When they overlap,
:func:`repetitions_to_separate` says how many repetitions would separate a difference of the
size seen, which is what the report offers as "the run that would decide it".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95
MIN_TAIL_REQUESTS = 50  # a percentile with fewer requests above it is shown, marked, never decides


def t_critical(degrees: int) -> float:
    """Two-sided 95% Student t value for the given degrees of freedom."""
    return float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, degrees))


@dataclass(frozen=True)
class Estimate:
    """A metric across repetitions: mean, 95% interval around it, and the spread used."""

    value: float
    low: float
    high: float
    n: int
    spread: float  # the standard deviation the interval was built from (floor included)
    above: int | None = None  # a latency percentile: how many requests lie above it

    @property
    def has_interval(self) -> bool:
        """Whether a measured interval exists (two or more repetitions)."""
        return self.n >= 2 and not math.isnan(self.low)

    @property
    def thin_tail(self) -> bool:
        """A percentile resting on too few requests above it to decide anything."""
        return self.above is not None and self.above < MIN_TAIL_REQUESTS

    @property
    def decisive(self) -> bool:
        """Whether it may decide: a measured interval, and a tail with enough requests."""
        return self.has_interval and not self.thin_tail

    def overlaps(self, other: Estimate) -> bool:
        """Whether the two could be equal: intervals share a value, or one cannot decide."""
        if not (self.decisive and other.decisive):
            return True
        return self.low <= other.high and other.low <= self.high

    def text(self, digits: int = 0, unit: str = "") -> str:
        """``123 [110, 136] µs``; a single repetition says it has no interval."""
        if math.isnan(self.value):
            return "n/a"
        fmt = f"{{:.{digits}f}}"
        suffix = f" {unit}" if unit else ""
        if self.thin_tail:
            suffix += f" (only {self.above} requests above it: decides nothing)"
        if not self.has_interval:
            return f"{fmt.format(self.value)}{suffix} (1 repetition, no interval)"
        if self.low == self.high:
            return f"{fmt.format(self.value)}{suffix}"
        return f"{fmt.format(self.value)} [{fmt.format(self.low)}, {fmt.format(self.high)}]{suffix}"


NOT_MEASURED = Estimate(math.nan, math.nan, math.nan, 0, math.nan)


def clean(values: list[float | None]) -> list[float]:
    """The numbers among the values (None and NaN dropped)."""
    return [v for v in values if v is not None and not math.isnan(v)]


def relative_spread(values: list[float]) -> float | None:
    """Coefficient of variation of repetitions (None with fewer than two, or a zero mean)."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / abs(mean) if mean else None


def pooled_floor(groups: list[list[float]]) -> float:
    """The median relative spread over groups of repetitions: the run's typical noise."""
    spreads = [s for s in (relative_spread(clean(g)) for g in groups) if s is not None]
    return statistics.median(spreads) if spreads else 0.0


def estimate(values: list[float | None], floor: float = 0.0) -> Estimate:
    """Mean and 95% t interval of the repetitions, the spread floored at ``floor`` × mean."""
    numbers = clean(values)
    if not numbers:
        return NOT_MEASURED
    mean = statistics.fmean(numbers)
    if len(numbers) == 1:
        return Estimate(mean, math.nan, math.nan, 1, math.nan)
    spread = max(statistics.stdev(numbers), floor * abs(mean))
    half = t_critical(len(numbers) - 1) * spread / math.sqrt(len(numbers))
    # A quantity that cannot be negative (every repetition ≥ 0) is not given a negative bound.
    low = max(mean - half, 0.0) if min(numbers) >= 0 else mean - half
    return Estimate(mean, low, mean + half, len(numbers), spread)


def repetitions_to_separate(a: Estimate, b: Estimate, most: int = 10_000) -> int | None:
    """Repetitions per cell at which a difference of the size seen would separate the intervals.

    The smallest n with t(n - 1)·(s_a + s_b)/√n below |a - b|, the spreads as measured (floor
    included); None when either has no measured spread, the means are equal, or it would take
    more than ``most``.
    """
    if not (a.has_interval and b.has_interval):
        return None
    gap = abs(a.value - b.value)
    if gap == 0:
        return None
    spread = a.spread + b.spread
    for n in range(2, most + 1):
        if t_critical(n - 1) * spread / math.sqrt(n) < gap:
            return n
    return None


def difference(a: Estimate, b: Estimate) -> Estimate:
    """a minus b with an interval whose half-width combines both (independent repetitions)."""
    if not (a.has_interval and b.has_interval):
        return Estimate(a.value - b.value, math.nan, math.nan, 1, math.nan)
    half = math.hypot(a.high - a.value, b.high - b.value)
    value = a.value - b.value
    return Estimate(
        value, value - half, value + half, min(a.n, b.n), math.hypot(a.spread, b.spread)
    )


def paired_ratio(pairs: list[tuple[float, float]]) -> Estimate:
    """a/b from repetitions measured side by side (interleaved), so machine drift cancels.

    The t interval is taken on the log of each pair's ratio (a ratio is what stays put when the
    machine's speed moves) and shown as a ratio: above 1 means a is higher. ``spread`` is the
    standard deviation of the log ratios.
    """
    logs = [math.log(a / b) for a, b in pairs if a > 0 and b > 0]
    if not logs:
        return NOT_MEASURED
    mean = statistics.fmean(logs)
    if len(logs) == 1:
        return Estimate(math.exp(mean), math.nan, math.nan, 1, math.nan)
    spread = statistics.stdev(logs)
    half = t_critical(len(logs) - 1) * spread / math.sqrt(len(logs))
    return Estimate(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs), spread)


def pairs_to_separate(ratio: Estimate, most: int = 10_000) -> int | None:
    """Pairs at which a ratio of the size seen would exclude 1 (None: equal, or beyond most)."""
    if not ratio.has_interval or ratio.value == 1:
        return None
    gap = abs(math.log(ratio.value))
    for n in range(2, most + 1):
        if t_critical(n - 1) * ratio.spread / math.sqrt(n) < gap:
            return n
    return None


def paired_difference(pairs: list[tuple[float, float]]) -> Estimate:
    """a minus b from repetitions measured side by side, with a t interval on the differences."""
    return estimate([a - b for a, b in pairs])
