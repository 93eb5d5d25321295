"""Exact latency distributions: HDR histograms keyed by metric and request name, in microseconds.

Locust rounds its own response times to whole milliseconds; the schemes differ by microseconds.
Every measured request is recorded here at µs resolution, merged exactly across Locust
processes, and saved beside Locust's CSVs as ``hdr.json``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: nothing we measure is slower
SIGNIFICANT_DIGITS = 3
LATENCY = "latency_us"  # successful requests only
FAILED = "failed_us"  # failed requests, kept out of the latency percentiles
LATENESS = "lateness_us"  # open model: intended start → actual send
CENSORED = "censored_us"  # open model: unanswered at the stop, at least this long
AUTH = "auth_us"
AUTH_COMPUTE = "auth_compute_us"  # auth minus store and kdf, per request
STORE = "store_us"
KDF = "kdf_us"


def new_histogram() -> HdrHistogram:
    """An empty histogram with the suite's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def recorded(histogram: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """(value, count) of every non-empty bucket in value order, the value its highest equivalent.

    What hdrh's recorded iterator yields, read from the counts array directly: the iterator
    steps through all ~23,000 buckets in Python, which made loading a run slow.
    """
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    indices = np.flatnonzero(counts)
    values = [
        histogram.get_highest_equivalent_value(histogram.get_value_from_index(int(index)))
        for index in indices
    ]
    return np.array(values, dtype=np.int64), counts[indices].astype(np.int64)


def mean_value(histogram: HdrHistogram) -> float:
    """The mean as hdrh computes it (each bucket at its median equivalent value), quickly."""
    total = histogram.get_total_count()
    if not total:
        return 0.0
    values, counts = recorded(histogram)
    medians = []
    for value in values.tolist():
        lowest = histogram.get_lowest_equivalent_value(value)
        medians.append(lowest + (histogram.get_highest_equivalent_value(value) + 1 - lowest) // 2)
    return float(np.dot(np.array(medians, dtype=np.int64), counts)) / total


class HistogramSet:
    """Histograms by (metric, request name)."""

    def __init__(self) -> None:
        self._histograms: dict[str, dict[str, HdrHistogram]] = {}

    def record(self, metric: str, name: str, value_us: float) -> None:
        """Add one value (clamped into the trackable range)."""
        by_name = self._histograms.setdefault(metric, {})
        histogram = by_name.get(name)
        if histogram is None:
            histogram = by_name[name] = new_histogram()
        histogram.record_value(min(max(round(value_us), LOWEST_US), HIGHEST_US))

    def get(self, metric: str, name: str) -> HdrHistogram | None:
        """The histogram of one metric and name, if anything was recorded."""
        return self._histograms.get(metric, {}).get(name)

    def names(self, metric: str) -> list[str]:
        """Request names recorded under a metric."""
        return sorted(self._histograms.get(metric, {}))

    def total(self, metric: str, names: list[str] | None = None) -> int:
        """How many values were recorded under a metric (for the given names, else all)."""
        by_name = self._histograms.get(metric, {})
        chosen = by_name if names is None else [n for n in names if n in by_name]
        return sum(by_name[name].get_total_count() for name in chosen)

    def items(self) -> Iterator[tuple[str, str, HdrHistogram]]:
        """Every (metric, name, histogram)."""
        for metric, by_name in sorted(self._histograms.items()):
            for name, histogram in sorted(by_name.items()):
                yield metric, name, histogram

    def encode(self) -> dict[str, dict[str, str]]:
        """A JSON-able form, HdrHistogram's compressed base64 encoding."""
        return {
            metric: {name: h.encode().decode() for name, h in by_name.items()}
            for metric, by_name in self._histograms.items()
        }

    def merge_encoded(self, encoded: dict[str, dict[str, str]]) -> None:
        """Add another process's histograms, exactly."""
        for metric, by_name in encoded.items():
            for name, text in by_name.items():
                mine = self._histograms.setdefault(metric, {}).setdefault(name, new_histogram())
                mine.decode_and_add(text.encode())

    def clear(self) -> None:
        """Forget everything recorded."""
        self._histograms.clear()

    def save(self, path: Path) -> None:
        """Write ``hdr.json``."""
        path.write_text(json.dumps(self.encode(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> HistogramSet:
        """Read ``hdr.json``."""
        histograms = cls()
        histograms.merge_encoded(json.loads(path.read_text()))
        return histograms


def parse_server_timing(value: str | None) -> dict[str, float]:
    """``auth;dur=0.081, store;dur=0.052`` → {"auth": 81.0, "store": 52.0} in µs."""
    durations: dict[str, float] = {}
    if not value:
        return durations
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "dur":
                with contextlib.suppress(ValueError):
                    durations[name] = float(number) * 1000.0
    return durations
