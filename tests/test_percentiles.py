"""Latency percentiles of a cell come from its repetitions' merged histograms, with a bootstrap
interval over repetitions, checked here against an independent recomputation on the fixture."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from hdrh.histogram import HdrHistogram

from analysis.percentiles import Buckets, pooled_percentile, pooled_percentiles
from analysis.stats import MIN_TAIL_REQUESTS
from analysis.tidy import CELL_KEY, load_run
from loadtests.load.histograms import HistogramSet, new_histogram
from loadtests.measure.cell_metrics import percentile_histogram

FIXTURE = Path(__file__).parent / "data" / "run-fixture"


def repetition_histograms(scheme: str, model: str) -> list[HdrHistogram]:
    """The fixture's read cell of a scheme and load model, one histogram per repetition."""
    run = load_run(FIXTURE)
    cells = run.cells
    rows = cells[
        (cells["scheme"] == scheme) & (cells["scenario"] == "read") & (cells["model"] == model)
    ]
    rows = rows[rows["status"] == "complete"]
    repeated = [group for _, group in rows.groupby(CELL_KEY, dropna=False) if len(group) == 3]
    assert len(repeated) == 1
    rows = repeated[0]
    return [
        percentile_histogram(HistogramSet.load(FIXTURE / "cells" / cid / "hdr.json"), "read")
        for cid in rows["cell_id"]
    ]


def merged(histograms: list[HdrHistogram]) -> HdrHistogram:
    total = new_histogram()
    for histogram in histograms:
        total.add(histogram)
    return total


def test_p99_is_the_merged_histograms_p99_with_the_requests_above_it() -> None:
    histograms = repetition_histograms("jwt-HS256", "closed")
    everything = merged(histograms)
    p99_us = everything.get_value_at_percentile(99)
    estimate = pooled_percentiles(histograms)["p99_ms"]
    assert estimate.value == p99_us / 1000
    above = sum(
        item.count_at_value_iterated_to
        for item in everything.get_recorded_iterator()
        if item.value_iterated_to > p99_us
    )
    assert estimate.above == above > 0
    mean_of_p99s = sum(h.get_value_at_percentile(99) for h in histograms) / 3000
    assert estimate.value != mean_of_p99s


def test_the_interval_is_the_bootstrap_over_whole_repetitions() -> None:
    """All 27 ordered resamples of 3 repetitions, merged by HdrHistogram itself."""
    histograms = repetition_histograms("session-redis", "closed")
    values = sorted(
        merged([histograms[i] for i in draw]).get_value_at_percentile(99) / 1000
        for draw in itertools.product(range(3), repeat=3)
    )
    # 2.5% and 97.5% points of 27 equally likely resamples: the 1st and the 27th.
    low, high = values[math.ceil(0.025 * 27) - 1], values[math.ceil(0.975 * 27) - 1]
    estimate = pooled_percentile([Buckets(h) for h in histograms], 99)
    assert (estimate.low, estimate.high) == (low, high)
    assert estimate.low <= estimate.value <= estimate.high


def test_a_p99_with_few_requests_above_it_is_marked_and_decides_nothing() -> None:
    small = new_histogram()
    for value in range(1, 1001):  # 1,000 requests: 10 above the p99
        small.record_value(value)
    estimate = pooled_percentiles([small, small, small])["p99_ms"]
    assert estimate.above is not None and estimate.above < MIN_TAIL_REQUESTS
    assert not estimate.decisive
    assert "decides nothing" in estimate.text(2, "ms")
    other = pooled_percentiles([merged([small] * 20)] * 3)["p99_ms"]
    assert other.decisive
    assert estimate.overlaps(other)  # never "different" on a thin tail
