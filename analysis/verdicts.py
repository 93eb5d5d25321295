"""What a comparison of two measured figures may say: higher, lower, equivalent, or undecided.

Every comparison is a ratio a/b estimated on the log scale (a ratio is what stays put when the
machine's speed moves): paired when the two were measured side by side in the same interleaved
repetitions, Welch's unpaired t otherwise. Its verdict comes from two tests at 5%, each
Holm-corrected over the *family* of comparisons it is reported with (a claim's comparisons, or
every figure of a ``compare``):

- **higher / lower by X [a, b]**: the two-sided t test of "ratio = 1" rejects;
- **equivalent within ±m**: two one-sided tests (TOST) put the ratio inside [1/(1+m), 1+m],
  the smallest effect of interest of its metric family (the same as a 90% interval inside it);
- **undecided** otherwise, with the repetitions per cell that would decide at 80% power if the
  ratio and spread seen are the truth.

A ratio with fewer than two values on either side has no interval and decides nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common.student_t import t_cdf, t_quantile, t_sf
from loadtests.run.matrix import DEFAULT_MARGINS

ALPHA = 0.05
POWER = 0.80
MOST_REPETITIONS = 1_000

HIGHER = "higher"
LOWER = "lower"
EQUIVALENT = "equivalent"
UNDECIDED = "undecided"
NO_INTERVAL = "no interval"


@dataclass(frozen=True)
class Margin:
    """The smallest effect of interest: a share of the reference, at least an absolute amount."""

    relative: float
    absolute: float = 0.0

    def around(self, reference: float) -> float:
        """The relative margin around a reference value (the absolute part as a share of it)."""
        if self.absolute and reference:
            return max(self.relative, self.absolute / abs(reference))
        return self.relative

    def describe(self, unit: str) -> str:
        """``±10%`` or ``±10% and at least 0.1 ms``."""
        text = f"±{self.relative:.0%}"
        return f"{text} and at least {self.absolute:g} {unit}" if self.absolute else text


METRIC_FAMILY = {
    "server_cpu_us_per_req": "cpu",
    "auth_compute_mean_us": "cpu",
    "rps": "throughput",
    "capacity_rps": "capacity",
    "p50_ms": "latency",
    "p99_ms": "latency",
}


def margins_from(manifest: Mapping[str, Any]) -> dict[str, Margin]:
    """The run's margins as its manifest recorded them (the matrix defaults for older runs)."""
    recorded = manifest.get("margins") or {}
    return {
        family: Margin(**recorded.get(family, default))
        for family, default in DEFAULT_MARGINS.items()
    }


@dataclass(frozen=True)
class LogRatio:
    """a/b as a mean log ratio, its standard error and degrees of freedom.

    ``unit_variance`` is the variance one repetition per cell adds (a pair's log-ratio
    variance, or the sum of the two cells' log variances): the standard error with n
    repetitions per cell is √(unit_variance / n), which is what the power figure needs.
    """

    log_mean: float
    stderr: float
    degrees: float
    n: int
    unit_variance: float
    paired: bool

    @property
    def ratio(self) -> float:
        """The ratio a/b itself."""
        return math.exp(self.log_mean)

    def interval(self, confidence: float = 1 - ALPHA) -> tuple[float, float]:
        """The ratio's t interval at the given confidence."""
        half = _t(0.5 + confidence / 2, self.degrees) * self.stderr
        return math.exp(self.log_mean - half), math.exp(self.log_mean + half)

    def p_different(self) -> float:
        """Two-sided p of the t test that the ratio is 1."""
        if self.stderr == 0:
            return 0.0 if self.log_mean else 1.0
        return 2 * t_sf(abs(self.log_mean) / self.stderr, self.degrees)

    def p_equivalent(self, margin: float) -> float:
        """p of the two one-sided tests that the ratio lies inside [1/(1+m), 1+m]."""
        bound = math.log1p(margin)
        if self.stderr == 0:
            return 0.0 if abs(self.log_mean) < bound else 1.0
        above_low = t_sf((self.log_mean + bound) / self.stderr, self.degrees)
        below_high = t_cdf((self.log_mean - bound) / self.stderr, self.degrees)
        return max(above_low, below_high)

    def repetitions_to_decide(self, margin: float, family: int = 1) -> int | None:
        """Repetitions per cell that would decide at 80% power, if the ratio and spread hold.

        The smallest n at which either test reaches its critical value with 80% power: the
        difference test for the ratio seen, or the equivalence test inside the margin. The
        level is ALPHA / family (Holm's strictest step). None beyond ``MOST_REPETITIONS``.
        """
        alpha = ALPHA / max(family, 1)
        gap = abs(self.log_mean)
        room = math.log1p(margin) - gap
        for n in range(2, MOST_REPETITIONS + 1):
            stderr = math.sqrt(self.unit_variance / n)
            degrees = n - 1
            power_step = _t(POWER, degrees)
            if stderr == 0 or gap / stderr >= _t(1 - alpha / 2, degrees) + power_step:
                return n
            if room > 0 and room / stderr >= _t(1 - alpha, degrees) + power_step:
                return n
        return None


def _t(quantile: float, degrees: float) -> float:
    return t_quantile(quantile, degrees)


def _logs(values: Sequence[float]) -> list[float]:
    return [math.log(v) for v in values if v is not None and not math.isnan(v) and v > 0]


def paired_log_ratio(pairs: Sequence[tuple[float, float]]) -> LogRatio | None:
    """a/b from repetitions measured side by side: a t on the pairs' log ratios (n ≥ 2)."""
    logs = [math.log(a / b) for a, b in pairs if a > 0 and b > 0]
    if len(logs) < 2:
        return None
    variance = statistics.variance(logs)
    n = len(logs)
    return LogRatio(statistics.fmean(logs), math.sqrt(variance / n), n - 1, n, variance, True)


def unpaired_log_ratio(a: Sequence[float], b: Sequence[float]) -> LogRatio | None:
    """a/b from independent repetitions: Welch's t on the log values (two or more each)."""
    logs_a, logs_b = _logs(a), _logs(b)
    if len(logs_a) < 2 or len(logs_b) < 2:
        return None
    share_a = statistics.variance(logs_a) / len(logs_a)
    share_b = statistics.variance(logs_b) / len(logs_b)
    stderr = math.sqrt(share_a + share_b)
    if stderr == 0:
        degrees = float(len(logs_a) + len(logs_b) - 2)
    else:
        degrees = (share_a + share_b) ** 2 / (
            share_a**2 / (len(logs_a) - 1) + share_b**2 / (len(logs_b) - 1)
        )
    mean = statistics.fmean(logs_a) - statistics.fmean(logs_b)
    unit = statistics.variance(logs_a) + statistics.variance(logs_b)
    return LogRatio(mean, stderr, degrees, min(len(logs_a), len(logs_b)), unit, False)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for step, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - step) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class Verdict:
    """One comparison's verdict within its family, with what it rests on."""

    kind: str
    ratio: LogRatio | None
    margin: float
    family: int
    p_different: float = math.nan
    p_equivalent: float = math.nan
    looks: int = 1  # an adaptive run's planned looks: every p is multiplied by it

    @property
    def needed(self) -> int | None:
        """Repetitions per cell that would decide it (undecided comparisons only)."""
        if self.kind != UNDECIDED or self.ratio is None:
            return None
        return self.ratio.repetitions_to_decide(self.margin, self.family * self.looks)

    def short(self) -> str:
        """The verdict in a few words, for a table whose other columns show the ratio."""
        if self.ratio is None:
            return "no interval: decides nothing"
        if self.kind in (HIGHER, LOWER):
            low, high = self.ratio.interval()
            return (
                f"{self.kind} by {abs(self.ratio.ratio - 1):.1%} "
                f"[{abs(low - 1):.1%}, {abs(high - 1):.1%}], p = {self.p_different:.2g}"
            )
        if self.kind == EQUIVALENT:
            return f"equivalent within ±{self.margin:.0%}, p = {self.p_equivalent:.2g}"
        needed = self.needed
        return (
            f"undecided: ≈ {needed} repetitions would decide"
            if needed
            else f"undecided: > {MOST_REPETITIONS} repetitions needed"
        )

    def text(self, aside: str = "") -> str:
        """The verdict in words, with the interval and the test that decided it (and ``aside``,
        a note on how it was estimated)."""
        if self.ratio is None:
            return "no interval (fewer than 2 repetitions on a side): decides nothing"
        low, high = self.ratio.interval()
        how = "paired by repetition" if self.ratio.paired else "unpaired (Welch)"
        shown = (
            f"ratio {self.ratio.ratio:.3f} [{low:.3f}, {high:.3f}], {how}, "
            f"{self.ratio.n} repetitions{aside}; family of {self.family}, Holm-corrected"
            + (f", × {self.looks} looks" if self.looks > 1 else "")
        )
        if self.kind in (HIGHER, LOWER):
            change = abs(self.ratio.ratio - 1)
            small = (
                f"; inside the ±{self.margin:.0%} margin: too small to matter"
                if self.p_equivalent < ALPHA
                else ""
            )
            return (
                f"{self.kind} by {change:.1%} [{abs(low - 1):.1%}, {abs(high - 1):.1%}]{small} "
                f"(p = {self.p_different:.3g}; {shown})"
            )
        if self.kind == EQUIVALENT:
            low90, high90 = self.ratio.interval(1 - 2 * ALPHA)
            return (
                f"equivalent within ±{self.margin:.0%} (90% interval {low90:.3f}–{high90:.3f}, "
                f"TOST p = {self.p_equivalent:.3g}; {shown})"
            )
        needed = self.needed
        more = (
            f"about {needed} repetitions per cell would decide at 80% power, if the ratio "
            "and spread seen hold"
            if needed
            else f"more than {MOST_REPETITIONS} repetitions per cell would be needed"
        )
        return f"undecided: {more} ({shown})"


def decide_family(
    comparisons: Sequence[tuple[LogRatio | None, float]], looks: int = 1
) -> list[Verdict]:
    """Each (ratio, relative margin)'s verdict, Holm-corrected over the whole family.

    An adaptive run that looks ``looks`` times (stopping once decided) multiplies every
    adjusted p by it: Bonferroni over the looks keeps the error of the whole procedure at 5%.
    """
    family = len(comparisons)
    measured = [(i, r, m) for i, (r, m) in enumerate(comparisons) if r is not None]
    different = [min(1.0, looks * p) for p in holm([r.p_different() for _, r, _ in measured])]
    equivalent = [min(1.0, looks * p) for p in holm([r.p_equivalent(m) for _, r, m in measured])]
    verdicts = [Verdict(NO_INTERVAL, None, m, family, looks=looks) for _, m in comparisons]
    for (index, ratio, margin), p_diff, p_equiv in zip(
        measured, different, equivalent, strict=True
    ):
        if p_diff < ALPHA:
            kind = HIGHER if ratio.log_mean > 0 else LOWER
        elif p_equiv < ALPHA:
            kind = EQUIVALENT
        else:
            kind = UNDECIDED
        verdicts[index] = Verdict(kind, ratio, margin, family, p_diff, p_equiv, looks)
    return verdicts
