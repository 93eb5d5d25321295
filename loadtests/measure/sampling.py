"""Background sampling of what a cell costs: server, Redis and generator CPU, Redis counters,
and the split topology's service counters (``GET /counters``: JWKS fetches, introspections).

Cumulative counters (process CPU seconds, Redis calls per command, Redis CPU, memory, keys) are
read every ``INTERVAL_S`` with their timestamp and kept as raw rows (``samples.csv``). A value at
any instant, such as the measured window's start and end, is interpolated between the two
samples around it, so the window needs no coordination with the sampler. Service counters are
an HTTP request to the services being measured, so they are read only at the edges: when the
sampler starts and stops and, given the window (the recorder's window-open marker and the
window's length), at the instant it opens and the instant it closes: the observer never adds
load to the window it measures.
"""

from __future__ import annotations

import csv
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path

import psutil
import redis

from common.store_keys import KEY_PREFIX, STATE_PREFIXES
from loadtests.load.http_probe import service_counters

INTERVAL_S = 0.2
EDGE_POLL_S = 0.01  # how often the window-open marker is looked for
FIELDS = ("t", "source", "metric", "value")
SERVICE_COUNTERS = ("jwks_fetches", "jwks_served", "introspections_asked",
                    "introspections_answered")  # fmt: skip


def _process_cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of a process and its children."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def redis_counters(client: redis.Redis) -> dict[str, float]:
    """Cumulative Redis counters: calls per command, CPU seconds, memory and key count."""
    counters: dict[str, float] = {}
    for command, stats in client.info("commandstats").items():
        counters[f"calls:{command.removeprefix('cmdstat_')}"] = float(stats["calls"])
    cpu = client.info("cpu")
    counters["cpu_s"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    counters["used_memory"] = float(client.info("memory")["used_memory"])
    counters["keys"] = float(client.dbsize())
    return counters


class Sampler:
    """Samples named processes and, optionally, one Redis, on a background thread."""

    def __init__(
        self,
        processes: dict[str, int],
        redis_url: str | None,
        counter_urls: dict[str, str] | None = None,
        window: tuple[Path, float] | None = None,
    ) -> None:
        """``window``: the window-open marker and the window's length, for the counters."""
        self._processes = {name: psutil.Process(pid) for name, pid in processes.items()}
        self._counter_urls = dict(counter_urls or {})
        self._window = window
        self._edges = threading.Thread(target=self._at_edges, name="sampler-edges", daemon=True)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2) if redis_url else None
        self.rows: list[tuple[float, str, str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def add_process(self, name: str, pid: int) -> None:
        """Start sampling another process (the generator, once it runs)."""
        self._processes[name] = psutil.Process(pid)

    def sample(self) -> None:
        """Take one sample of the processes' CPU and of Redis now."""
        now = time.time()
        for name, process in list(self._processes.items()):
            try:
                self.rows.append((now, name, "cpu_s", _process_cpu_s(process)))
            except psutil.Error:
                continue
        if self._redis is not None:
            try:
                for metric, value in redis_counters(self._redis).items():
                    self.rows.append((now, "redis", metric, value))
            except redis.RedisError:
                pass

    def sample_counters(self) -> None:
        """Read every service's counters now (and the processes' CPU at the same instant)."""
        self.sample()
        for name, url in self._counter_urls.items():
            counters = service_counters(url)  # a killed node has none: its samples simply stop
            now = time.time()
            for metric in SERVICE_COUNTERS:
                if isinstance(counters.get(metric), int | float):
                    self.rows.append((now, name, metric, float(counters[metric])))

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self.sample()

    def _at_edges(self) -> None:
        """Counters at the instant the window opens and the instant it closes."""
        assert self._window is not None
        marker, length = self._window
        while not marker.exists():
            if self._stop.wait(EDGE_POLL_S):
                return
        try:
            opened = float(marker.read_text())
        except ValueError:  # read while being written: the marker's own time is close enough
            opened = marker.stat().st_mtime
        self.sample_counters()
        if not self._stop.wait(max(0.0, opened + length - time.time())):
            self.sample_counters()

    def __enter__(self) -> Sampler:
        self.sample_counters()
        self._thread.start()
        if self._window is not None and self._counter_urls:
            self._edges.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._edges.is_alive():
            self._edges.join()
        self.sample_counters()
        if self._redis is not None:
            self._redis.close()

    def save(self, path: Path) -> None:
        """Write the raw rows as ``samples.csv``."""
        write_samples(path, self.rows)


def write_samples(path: Path, rows: Iterable[tuple[float, str, str, float]]) -> None:
    """Write sample rows to CSV."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        writer.writerows(rows)


def read_samples(path: Path) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Samples by (source, metric), each a time-ordered list of (t, value)."""
    with path.open(newline="") as handle:
        rows = [
            (float(row["t"]), row["source"], row["metric"], float(row["value"]))
            for row in csv.DictReader(handle)
        ]
    return read_series(rows)


def read_series(
    rows: Iterable[tuple[float, str, str, float]],
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Sample rows grouped by (source, metric), each a time-ordered list of (t, value)."""
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for t, source, metric, value in rows:
        series.setdefault((source, metric), []).append((t, value))
    for points in series.values():
        points.sort()
    return series


def value_at(points: list[tuple[float, float]], t: float) -> float:
    """A cumulative counter's value at time t, linearly interpolated (clamped at the ends)."""
    times = [p[0] for p in points]
    index = bisect_left(times, t)
    if index == 0:
        return points[0][1]
    if index >= len(points):
        return points[-1][1]
    (t0, v0), (t1, v1) = points[index - 1], points[index]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def delta(points: list[tuple[float, float]], start: float, end: float) -> float:
    """How much a cumulative counter grew between start and end."""
    return value_at(points, end) - value_at(points, start)


def summed_delta(
    series: dict[tuple[str, str], list[tuple[float, float]]],
    sources: str | tuple[str, ...],
    metric: str,
    start: float,
    end: float,
) -> float:
    """How much a counter grew between start and end, summed over the sources whose names
    start with ``sources`` (e.g. every ``node…``)."""
    return sum(
        delta(points, start, end)
        for (source, name), points in series.items()
        if source.startswith(sources) and name == metric
    )


IDLE_S = 0.5


def idle_redis_cpu(redis_url: str, seconds: float = IDLE_S) -> float:
    """Redis CPU seconds per second with no load but the sampler's own INFO traffic.

    Measured before a group's first window and subtracted from every window's Redis CPU, so the
    figure per request is the scheme's, not the observer's or Redis's background cron.
    """
    with Sampler({}, redis_url) as sampler:
        time.sleep(seconds)
    points = read_series(sampler.rows).get(("redis", "cpu_s"), [])
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return 0.0
    return max(0.0, (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0]))


def redis_key_memory(redis_url: str, sample: int = 200) -> dict[str, dict[str, float]]:
    """Live keys and mean ``MEMORY USAGE`` bytes per key, for each kind of state a scheme keeps."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    usage: dict[str, dict[str, float]] = {}
    try:
        for prefix in STATE_PREFIXES:
            sizes = []
            count = 0
            for key in client.scan_iter(match=prefix + "*", count=1000):
                count += 1
                if len(sizes) < sample:
                    sizes.append(client.memory_usage(key, samples=0) or 0)
            if count:
                usage[prefix.removeprefix(KEY_PREFIX).rstrip(":")] = {
                    "keys": count,
                    "mean_bytes": round(sum(sizes) / len(sizes), 1),
                }
    finally:
        client.close()
    return usage
