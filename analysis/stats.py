"""Median and 95% confidence interval of a metric across repetitions.

With two or more repetitions the interval is Student's t around the mean of the repetitions.
With one repetition there is no spread to measure, so the interval is the suite's documented
run-to-run noise band around the single value (``ASSUMED_NOISE``), marked as assumed: a
difference inside it is never reported as real.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# Two-sided 95% Student t critical values by degrees of freedom (1..30); 1.96 beyond.
T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
# Run-to-run noise measured on this class of machine (issue 3): 3-7% on server CPU per request,
# 10-30% on throughput and latency. The upper ends are used.
ASSUMED_NOISE = {"cpu": 0.07, "throughput": 0.30, "latency": 0.30, "exact": 0.0}


@dataclass(frozen=True)
class Estimate:
    """A metric across repetitions: central value, 95% interval, and how it was obtained."""

    value: float
    low: float
    high: float
    n: int
    assumed: bool

    def overlaps(self, other: Estimate) -> bool:
        """Whether the two intervals share any value (then no difference is claimed)."""
        return self.low <= other.high and other.low <= self.high

    def text(self, digits: int = 0, unit: str = "") -> str:
        """``123 [110, 136] µs`` (an assumed band is marked with ~)."""
        fmt = f"{{:.{digits}f}}"
        if math.isnan(self.value):
            return "n/a"
        band = f" [{fmt.format(self.low)}, {fmt.format(self.high)}]"
        if self.n == 1 and self.low == self.high:
            band = ""
        mark = "~" if self.assumed else ""
        return f"{fmt.format(self.value)}{mark}{band}{(' ' + unit) if unit else ''}"


def t_critical(degrees: int) -> float:
    """Two-sided 95% t value."""
    return T_975[degrees - 1] if 1 <= degrees <= len(T_975) else 1.96


def estimate(values: list[float], kind: str) -> Estimate:
    """Median and 95% interval of repetitions; kind picks the assumed band for n = 1."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        nan = float("nan")
        return Estimate(nan, nan, nan, 0, False)
    if len(clean) == 1:
        value = clean[0]
        band = abs(value) * ASSUMED_NOISE[kind]
        return Estimate(value, value - band, value + band, 1, band > 0)
    mean = statistics.fmean(clean)
    half = t_critical(len(clean) - 1) * statistics.stdev(clean) / math.sqrt(len(clean))
    return Estimate(statistics.median(clean), mean - half, mean + half, len(clean), False)
