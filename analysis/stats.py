"""Mean and measured 95% interval of a metric across repetitions.

One rule for every interval shown: Student's t (:mod:`common.student_t`) around the mean of the
repetitions, with their own standard deviation and n - 1 degrees of freedom; no floor, no
borrowed spread. With three repetitions t(2) = 4.30 makes the interval wide, which is what
three repetitions know. A single repetition has no interval at all; it is shown as such and
never decides anything.
Whether two figures differ, or are equivalent, is :mod:`analysis.verdicts`' job.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from common.student_t import t_quantile

CONFIDENCE = 0.95
MIN_TAIL_REQUESTS = 50  # a percentile with fewer requests above it is shown, marked, never decides


def t_critical(degrees: int) -> float:
    """Two-sided 95% Student t value for the given degrees of freedom."""
    return t_quantile(0.5 + CONFIDENCE / 2, degrees)


@dataclass(frozen=True)
class Estimate:
    """A metric across repetitions: mean, 95% interval around it, and the spread used."""

    value: float
    low: float
    high: float
    n: int
    spread: float  # the standard deviation the interval was built from
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


def estimate(values: list[float | None], *, signed: bool = False) -> Estimate:
    """Mean and 95% t interval of the repetitions; unless ``signed`` (a quantity that may have
    either sign, such as the difference of two libraries), one whose every repetition is at
    least 0 gets no negative bound."""
    numbers = clean(values)
    if not numbers:
        return NOT_MEASURED
    mean = statistics.fmean(numbers)
    if len(numbers) == 1:
        return Estimate(mean, math.nan, math.nan, 1, math.nan)
    spread = statistics.stdev(numbers)
    half = t_critical(len(numbers) - 1) * spread / math.sqrt(len(numbers))
    # A quantity that cannot be negative (every repetition ≥ 0) is not given a negative bound.
    low = max(mean - half, 0.0) if min(numbers) >= 0 and not signed else mean - half
    return Estimate(mean, low, mean + half, len(numbers), spread)


def difference(a: Estimate, b: Estimate) -> Estimate:
    """a minus b with an interval whose half-width combines both (independent repetitions)."""
    if not (a.has_interval and b.has_interval):
        return Estimate(a.value - b.value, math.nan, math.nan, 1, math.nan)
    half = math.hypot(a.high - a.value, b.high - b.value)
    value = a.value - b.value
    return Estimate(
        value, value - half, value + half, min(a.n, b.n), math.hypot(a.spread, b.spread)
    )


def paired_difference(pairs: list[tuple[float, float]], *, signed: bool = False) -> Estimate:
    """a minus b from repetitions measured side by side, with a t interval on the differences
    (``signed``: not bounded at 0, for a difference that may go either way)."""
    return estimate([a - b for a, b in pairs], signed=signed)
