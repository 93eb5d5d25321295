"""Latency percentiles of a cell across its repetitions: from the merged histograms, never a mean.

A p99 of three repetitions is the p99 of all their requests together (their HDR histograms
merged exactly), not the mean of three p99s. Its interval comes from resampling repetitions
(the bootstrap over whole repetitions, since requests within one repetition are not
independent): every resample of the repetitions with replacement, weighted by how often it
occurs (all of them up to ``EXACT_UP_TO`` repetitions, a seeded random set beyond), its
percentile computed from the resampled histograms merged, and the 2.5% and 97.5% points of
that distribution taken. A tail percentile (p99, p99.9) also says how many requests lie above
it: one resting on fewer than ``stats.MIN_TAIL_REQUESTS`` is shown, marked, and decides nothing.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import Counter

import numpy as np
from hdrh.histogram import HdrHistogram

from analysis.stats import CONFIDENCE, NOT_MEASURED, Estimate
from loadtests.load.histograms import recorded

PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9, "max_ms": 100.0}
TAIL_FROM = 99.0
EXACT_UP_TO = 6  # repetitions: beyond this, resample at random
RANDOM_RESAMPLES = 2000
SEED = 20261202


class Buckets:
    """One histogram as sorted (value in µs, count) arrays: each bucket's highest equivalent."""

    def __init__(self, histogram: HdrHistogram) -> None:
        self.values, self.counts = recorded(histogram)


def value_at(values: np.ndarray, counts: np.ndarray, percentile: float) -> tuple[float, int]:
    """(value, requests above it) at a percentile, as HdrHistogram computes it."""
    total = int(counts.sum())
    if total == 0:
        return math.nan, 0
    order = np.argsort(values, kind="stable")
    values, counts = values[order], counts[order]
    cumulative = np.cumsum(counts)
    target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
    value = values[int(np.searchsorted(cumulative, target))]
    last_equal = int(np.searchsorted(values, value, side="right")) - 1  # parts share buckets
    return float(value), total - int(cumulative[last_equal])


def _merged(parts: list[Buckets], weights: list[int]) -> tuple[np.ndarray, np.ndarray]:
    chosen = [(part, weight) for part, weight in zip(parts, weights, strict=True) if weight]
    values = np.concatenate([part.values for part, _ in chosen])
    counts = np.concatenate([part.counts * weight for part, weight in chosen])
    return values, counts


def resamples(n: int) -> list[tuple[list[int], float]]:
    """Resamples of n repetitions as (times each is drawn, probability of that resample)."""
    if n <= EXACT_UP_TO:
        drawn = []
        for combination in itertools.combinations_with_replacement(range(n), n):
            times = Counter(combination)
            ways = math.factorial(n)
            for count in times.values():
                ways //= math.factorial(count)
            drawn.append(([times.get(i, 0) for i in range(n)], ways / n**n))
        return drawn
    rng = random.Random(SEED)
    draws = [Counter(rng.choices(range(n), k=n)) for _ in range(RANDOM_RESAMPLES)]
    return [([d.get(i, 0) for i in range(n)], 1 / RANDOM_RESAMPLES) for d in draws]


def _weighted_quantile(values: list[float], weights: list[float], q: float) -> float:
    order = sorted(range(len(values)), key=values.__getitem__)
    cumulative = 0.0
    for index in order:
        cumulative += weights[index]
        if cumulative >= q - 1e-12:
            return values[index]
    return values[order[-1]]


def pooled_percentile(parts: list[Buckets], percentile: float) -> Estimate:
    """One percentile of the repetitions' merged histograms, with its bootstrap interval."""
    parts = [part for part in parts if part.counts.sum()]
    if not parts:
        return NOT_MEASURED
    value_us, counted_above = value_at(*_merged(parts, [1] * len(parts)), percentile)
    # How many requests lie above is what a tail percentile rests on (p99 and beyond; the
    # maximum is the worst request itself).
    above = counted_above if TAIL_FROM <= percentile < 100.0 else None
    each = [value_at(part.values, part.counts, percentile)[0] / 1000 for part in parts]
    if len(parts) == 1:
        return Estimate(value_us / 1000, math.nan, math.nan, 1, math.nan, above)
    drawn = resamples(len(parts))
    values = [value_at(*_merged(parts, times), percentile)[0] / 1000 for times, _ in drawn]
    weights = [probability for _, probability in drawn]
    tail = (1 - CONFIDENCE) / 2
    return Estimate(
        value_us / 1000,
        _weighted_quantile(values, weights, tail),
        _weighted_quantile(values, weights, 1 - tail),
        len(parts),
        statistics.stdev(each),
        above,
    )


def pooled_percentiles(histograms: list[HdrHistogram]) -> dict[str, Estimate]:
    """Every reported percentile of the repetitions' histograms (one per repetition)."""
    parts = [Buckets(histogram) for histogram in histograms]
    return {metric: pooled_percentile(parts, p) for metric, p in PERCENTILES.items()}
