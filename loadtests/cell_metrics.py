"""From a cell's raw files to its row of ``metrics.csv``; overheads against the ``none`` baseline.

Everything here is derived from files in the cell folder (cell.json, window.json, hdr.json,
samples.csv, locust_stats.csv), so a metrics table can always be rebuilt from a run folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtests.histograms import AUTH, KDF, LATENCY, STORE, HistogramSet, new_histogram
from loadtests.sampling import delta, read_samples

# The requests a scenario is about; None: every request of the journey.
MEASURED_REQUESTS: dict[str, tuple[str, ...] | None] = {
    "read": ("/me",),
    "login": ("/login",),
    "refresh": ("/refresh",),
    "logout": None,
    "mixed": None,
    "revocation": ("revocation delay", "revocation delay (expiry)"),
}
NOT_JOURNEY = ("setup ", "check ", "replay ", "revocation delay")
# Commands the sampler itself or the client's handshake sends: not the scheme's load.
OBSERVER_COMMANDS = {"info", "dbsize", "client", "hello", "ping", "config"}
GENERATOR_SATURATED_PCT = 90.0
CEILING_FRACTION = 0.8

AXES = ["scheme", "alg", "store", "topology", "nodes", "scenario", "users"]
SAMPLED_SERVER = ("node",)  # sample sources whose CPU is the servers' (the balancer's is apart)
COLUMNS = [
    *AXES, "rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "requests", "failures",
    "server_cpu_us_per_req", "redis_cmds_per_req", "redis_cmds_by_name", "redis_cpu_us_per_req",
    "redis_bytes_per_session", "credential_bytes", "generator_cpu_pct", "saturated",
    "p50_overhead_ms", "p99_overhead_ms", "server_cpu_overhead_us_per_req", "rps_vs_none",
    "auth_p50_us", "auth_mean_us", "store_p50_us", "store_mean_us", "auth_compute_mean_us",
    "kdf_mean_us",
    "rps_per_server_cpu_s", "balancer", "balancer_cpu_us_per_req", "all_requests",
    "window_s", "model", "rate", "denylist", "repetition", "cell_id", "status", "reason",
]  # fmt: skip


def measured_names(scenario: str, names: list[str]) -> list[str]:
    """The request names whose latency a scenario reports."""
    wanted = MEASURED_REQUESTS.get(scenario)
    if wanted is None:
        return [name for name in names if not name.startswith(NOT_JOURNEY)]
    return [name for name in names if name in wanted]


def merged(histograms: HistogramSet, metric: str, names: list[str]) -> HdrHistogram:
    """One histogram of several request names."""
    total = new_histogram()
    for name in names:
        part = histograms.get(metric, name)
        if part is not None:
            total.add(part)
    return total


def _failures(stats_csv: Path) -> int:
    if not stats_csv.exists():
        return 0
    with stats_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") == "Aggregated":
                return int(float(row.get("Failure Count") or 0))
    return 0


def _ms(histogram: HdrHistogram, percentile: float) -> float:
    return round(histogram.get_value_at_percentile(percentile) / 1000.0, 3)


def _redis_figures(
    series: dict[tuple[str, str], list[tuple[float, float]]], start: float, end: float, count: int
) -> dict[str, Any]:
    by_name = {
        metric.removeprefix("calls:"): delta(points, start, end)
        for (source, metric), points in series.items()
        if source == "redis"
        and metric.startswith("calls:")
        and metric.removeprefix("calls:") not in OBSERVER_COMMANDS
    }
    if ("redis", "cpu_s") not in series:
        return {}
    cpu_s = delta(series[("redis", "cpu_s")], start, end)
    calls = sum(by_name.values())
    per_request = {
        name: calls_made / count for name, calls_made in sorted(by_name.items()) if count
    }
    return {
        "redis_cmds_per_req": round(calls / count, 3) if count else None,
        "redis_cmds_by_name": " ".join(
            f"{name}={value:.3f}" for name, value in per_request.items() if value >= 0.001
        ),
        "redis_cpu_us_per_req": round(cpu_s * 1e6 / count, 2) if count else None,
    }


def bytes_per_session(key_memory: dict[str, dict[str, float]]) -> float | None:
    """Redis bytes one login keeps alive: its session key, or its refresh family key."""
    for kind in ("sess", "fam"):
        if kind in key_memory:
            return key_memory[kind]["mean_bytes"]
    return None


def _compute_mean_us(auth: HdrHistogram, store: HdrHistogram) -> float | None:
    """Mean auth time outside store waits: the auth step's own work.

    Store waits are wall time, which under load includes queueing on the event loop behind other
    requests; subtracting them leaves the signature, parsing and bookkeeping work.
    """
    if not auth.get_total_count():
        return None
    store_mean = store.get_mean_value() if store.get_total_count() else 0.0
    return round(auth.get_mean_value() - store_mean, 1)


def cell_row(cell_dir: Path) -> dict[str, Any]:
    """The metrics row of one cell folder (numbers empty unless the cell completed)."""
    meta = json.loads((cell_dir / "cell.json").read_text())
    params = meta["cell"]
    row: dict[str, Any] = {column: None for column in COLUMNS}
    row.update({axis: params[axis] for axis in AXES})
    row.update(
        model=params["model"],
        balancer=params.get("balancer", "client"),
        rate=params["rate"] if params["model"] == "open" else None,
        denylist=params["denylist"],
        repetition=meta["repetition"],
        cell_id=meta["cell_id"],
        status=meta["status"],
        reason=meta.get("reason"),
        credential_bytes=meta.get("verify", {}).get("credential_bytes"),
        redis_bytes_per_session=bytes_per_session(meta.get("redis_key_memory", {})),
    )
    if meta["status"] != "complete":
        return row
    window = json.loads((cell_dir / "window.json").read_text())
    start, end = window["window_start"], window["window_end"]
    window_s = end - start
    histograms = HistogramSet.load(cell_dir / "hdr.json")
    names = histograms.names(LATENCY)
    measured = measured_names(params["scenario"], names)
    latency = merged(histograms, LATENCY, measured)
    requests = latency.get_total_count()
    all_requests = histograms.total(
        LATENCY, [name for name in names if not name.startswith("revocation delay")]
    )
    series = read_samples(cell_dir / "samples.csv")
    server_cpu_s = sum(
        delta(points, start, end)
        for (source, metric), points in series.items()
        if source.startswith(SAMPLED_SERVER) and metric == "cpu_s"
    )
    balancer_cpu_s = delta(series.get(("balancer", "cpu_s"), [(0, 0), (1, 0)]), start, end)
    generator_cpu_s = delta(series.get(("generator", "cpu_s"), [(0, 0), (1, 0)]), start, end)
    auth = merged(histograms, AUTH, measured)
    store = merged(histograms, STORE, measured)
    kdf = merged(histograms, KDF, measured)
    row.update(
        window_s=round(window_s, 3),
        requests=requests,
        all_requests=all_requests,
        failures=_failures(cell_dir / "locust_stats.csv"),
        rps=round(requests / window_s, 1) if window_s > 0 else None,
        p50_ms=_ms(latency, 50),
        p90_ms=_ms(latency, 90),
        p99_ms=_ms(latency, 99),
        p999_ms=_ms(latency, 99.9),
        max_ms=round(latency.get_max_value() / 1000.0, 3),
        server_cpu_us_per_req=round(server_cpu_s * 1e6 / all_requests, 1) if all_requests else None,
        rps_per_server_cpu_s=round(all_requests / server_cpu_s, 1) if server_cpu_s > 0 else None,
        balancer_cpu_us_per_req=(
            round(balancer_cpu_s * 1e6 / all_requests, 1)
            if all_requests and ("balancer", "cpu_s") in series
            else None
        ),
        generator_cpu_pct=round(generator_cpu_s / window_s * 100, 1) if window_s > 0 else None,
        auth_p50_us=auth.get_value_at_percentile(50) if auth.get_total_count() else None,
        auth_mean_us=round(auth.get_mean_value(), 1) if auth.get_total_count() else None,
        store_p50_us=store.get_value_at_percentile(50) if store.get_total_count() else None,
        store_mean_us=round(store.get_mean_value(), 1) if store.get_total_count() else None,
        auth_compute_mean_us=_compute_mean_us(auth, store),
        kdf_mean_us=round(kdf.get_mean_value(), 1) if kdf.get_total_count() else None,
        **_redis_figures(series, start, end, all_requests),
    )
    processes = max(1, int(params.get("generator_processes", 1)))
    ceiling = meta.get("generator_ceiling_rps")
    generator_busy = (row["generator_cpu_pct"] or 0) / processes > GENERATOR_SATURATED_PCT
    near_ceiling = bool(ceiling) and all_requests / window_s > CEILING_FRACTION * ceiling
    row["saturated"] = generator_busy or near_ceiling
    return row


def add_overheads(rows: list[dict[str, Any]]) -> None:
    """Fill the overhead columns against the ``none`` row of the same scenario, topology, run."""
    key_fields = ("topology", "nodes", "balancer", "scenario", "users", "model", "repetition")
    baselines = {
        tuple(row[f] for f in key_fields): row
        for row in rows
        if row["scheme"] == "none" and row["status"] == "complete"
    }
    for row in rows:
        base = baselines.get(tuple(row[f] for f in key_fields))
        if base is None or row["status"] != "complete":
            continue
        if row["p50_ms"] is not None and base["p50_ms"] is not None:
            row["p50_overhead_ms"] = round(row["p50_ms"] - base["p50_ms"], 3)
            row["p99_overhead_ms"] = round(row["p99_ms"] - base["p99_ms"], 3)
        if row["server_cpu_us_per_req"] is not None and base["server_cpu_us_per_req"] is not None:
            overhead = row["server_cpu_us_per_req"] - base["server_cpu_us_per_req"]
            row["server_cpu_overhead_us_per_req"] = round(overhead, 1)
        if row["rps"] and base["rps"]:
            row["rps_vs_none"] = round(row["rps"] / base["rps"], 3)


def metrics_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Every cell's row, in the order the manifest planned them, with overheads."""
    cells_dir = run_dir / "cells"
    rows = [
        cell_row(cell_dir)
        for cell_dir in sorted(cells_dir.iterdir())
        if cell_dir.is_dir() and (cell_dir / "cell.json").exists()
    ]
    # An interrupted attempt has no numbers; its re-run is the cell's row.
    rows = [row for row in rows if row["status"] != "interrupted"]
    planned = json.loads((run_dir / "manifest.json").read_text())["matrix"]["cells"]
    order = {cell["cell_id"]: index for index, cell in enumerate(planned)}
    rows.sort(key=lambda row: order.get(row["cell_id"], len(order)))
    add_overheads(rows)
    return rows


def write_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """(Re)write ``metrics.csv`` from the raw cell files; return its rows."""
    rows = metrics_rows(run_dir)
    tmp = run_dir / ".metrics.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(run_dir / "metrics.csv")
    return rows
