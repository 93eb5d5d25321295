"""From a cell's raw files to its row of ``metrics.csv``; overheads against the ``none`` baseline.

Everything here is derived from files in the cell folder (cell.json, window.json, hdr.json,
generators.json, samples.csv, locust_stats.csv), so a metrics table can always be rebuilt from a
run folder. Latency percentiles and CPU per request count successful requests only; failures
are counted inside the same window (``failures``, ``error_rate``). In the open model the
percentiles also count the ``censored`` requests (unanswered when the generator stopped) at the
time they had waited by then: a lower bound of their latency, never a dropped tail. A cell is
``saturated`` when its generator was busy (per generator CPU) or near its ceiling, and ``late``
when an open-model cell did not apply its offered load (unsent requests, or achieved under 95%
of what its schedule planned in the window: Poisson arrivals plan the offered rate only on
average): such cells are flagged and never feed a verdict or a baseline.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from common.schemes import parse_scheme
from loadtests.faults import fault_named
from loadtests.load.histograms import (
    AUTH,
    AUTH_COMPUTE,
    CENSORED,
    FAILED,
    KDF,
    LATENCY,
    LATENESS,
    STORE,
    HistogramSet,
    mean_value,
    new_histogram,
)
from loadtests.measure.fault_metrics import COLUMNS as FAULT_COLUMNS
from loadtests.measure.fault_metrics import fault_figures, validation_figures
from loadtests.measure.sampling import delta, read_samples, summed_delta
from loadtests.measure.split_metrics import COLUMNS as SPLIT_COLUMNS
from loadtests.measure.split_metrics import split_figures
from loadtests.run.matrix import CREDENTIAL_SETTINGS, IDENTITY, CellSettings
from loadtests.run.run_folder import write_csv

# The requests a scenario is about; None: every request of the journey.
MEASURED_REQUESTS: dict[str, tuple[str, ...] | None] = {
    "read": ("/me",),
    "login": ("/login",),
    "refresh": ("/refresh",),
    "logout": None,
    "mixed": None,
    "revocation": ("revocation delay", "revocation delay (computed)"),
    "validation": None,
}
OBSERVED_REVOCATION = "revocation delay"
COMPUTED_REVOCATION = "revocation delay (computed)"
REPLAY = "replay /me"
NOT_JOURNEY = ("setup ", "check ", "replay ", "revocation delay")
# Commands the sampler itself or the client's handshake sends: not the scheme's load.
OBSERVER_COMMANDS = {"info", "dbsize", "client", "hello", "ping", "config"}
GENERATOR_SATURATED_PCT = 90.0
CEILING_FRACTION = 0.8
MIN_ACHIEVED_SHARE = 0.95  # open model: achieved below this share of planned is a short cell
MAX_UNSENT_SHARE = 0.01

AXES = ["scheme", "alg", "store", "topology", "nodes", "scenario", "users"]
# Settings a cell's figures depend on besides its axes: compare keys cells on them too.
CELL_SETTINGS = (
    "warmup_s", "duration_s", "kdf_iterations", "population", "generator_processes",
    "store_delay_ms", "fault", "fault_at_s", "fault_s", "persistence", "sliding_session",
    "hops", "introspect_cache_s", "jwks_cooldown_s", "kid_flood_share", "planted_cost_us",
)  # fmt: skip
# Sample sources whose CPU is the servers' (the balancer's is apart; split: issuer + resources).
SAMPLED_SERVER = ("node", "issuer")
COLUMNS = [
    *AXES, "rps", "min_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "requests",
    "failures", "error_rate", "offered_rps", "planned_rps", "achieved_rps", "late_p99_ms",
    "unsent", "censored", "late", "arrivals",
    "revocation_delay_ms", "revocation_method", "replay_rtt_ms", "access_ttl",
    "server_cpu_us_per_req",
    "redis_cmds_per_req", "redis_cmds_by_name", "redis_cpu_us_per_req",
    "redis_bytes_per_session", "credential_bytes", "generator_cpu_pct", "generator_cpus",
    "saturated",
    "p50_overhead_ms", "p99_overhead_ms", "server_cpu_overhead_us_per_req", "rps_vs_none",
    "auth_p50_us", "auth_mean_us", "store_p50_us", "store_mean_us", "auth_compute_mean_us",
    "kdf_mean_us", "locust_requests", "recorded_requests",
    "rps_per_server_cpu_s", "balancer", "balancer_cpu_us_per_req", "all_requests",
    "window_s", "model", "rate", "equal_load", "denylist", "warmup_s", "duration_s",
    "kdf_iterations", "population", "generator_processes", "store_delay_ms",
    "store_delay_measured_ms", "fault", "fault_at_s", "fault_s", "persistence",
    "sliding_session", "store_cache_s", "library", "introspect_cache_s", "jwks_cooldown_s",
    "jwks_ttl_s", "kid_flood_share", "planted_cost_us", *SPLIT_COLUMNS, *FAULT_COLUMNS,
    "repetition", "cell_id", "status", "reason",
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


def percentile_histogram(histograms: HistogramSet, scenario: str) -> HdrHistogram:
    """What a cell's latency percentiles are read from: its scenario's answered requests, and
    in the open model the censored ones (unanswered at the stop, at their wait by then)."""
    names = sorted(set(histograms.names(LATENCY)) | set(histograms.names(FAILED)))
    return _with_censored(merged(histograms, LATENCY, measured_names(scenario, names)), histograms)


def _with_censored(answered: HdrHistogram, histograms: HistogramSet) -> HdrHistogram:
    latency = merged(histograms, CENSORED, histograms.names(CENSORED))
    latency.add(answered)
    return latency


def _latency_figures(
    histograms: HistogramSet, measured: list[str], window_s: float
) -> dict[str, Any]:
    """What the histograms say of the scenario's requests: counts, percentiles (censored ones
    included) and the server's own timing of the auth step."""
    answered = merged(histograms, LATENCY, measured)
    requests = answered.get_total_count()
    failures = merged(histograms, FAILED, measured).get_total_count()
    latency = _with_censored(answered, histograms)
    return {
        "requests": requests,
        "failures": failures,
        "error_rate": round(failures / (requests + failures), 5) if requests + failures else None,
        "rps": round(requests / window_s, 1) if window_s > 0 else None,
        "min_ms": round(answered.get_min_value() / 1000.0, 3) if requests else None,
        "p50_ms": _ms(latency, 50),
        "p90_ms": _ms(latency, 90),
        "p99_ms": _ms(latency, 99),
        "p999_ms": _ms(latency, 99.9),
        "max_ms": round(latency.get_max_value() / 1000.0, 3),
        "auth_p50_us": _p50(merged(histograms, AUTH, measured)),
        "auth_mean_us": _mean(merged(histograms, AUTH, measured)),
        "store_p50_us": _p50(merged(histograms, STORE, measured)),
        "store_mean_us": _mean(merged(histograms, STORE, measured)),
        "auth_compute_mean_us": _mean(merged(histograms, AUTH_COMPUTE, measured)),
        "kdf_mean_us": _mean(merged(histograms, KDF, measured)),
    }


def _locust_requests(stats_csv: Path) -> int | None:
    """Locust's own count of requests (failed ones included) since the window opened."""
    if not stats_csv.exists():
        return None
    with stats_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") == "Aggregated":
                return int(float(row.get("Request Count") or 0))
    return None


def _ms(histogram: HdrHistogram, percentile: float) -> float:
    return round(histogram.get_value_at_percentile(percentile) / 1000.0, 3)


def _redis_figures(
    series: dict[tuple[str, str], list[tuple[float, float]]],
    start: float,
    end: float,
    count: int,
    idle_cpu_s_per_s: float,
) -> dict[str, Any]:
    """Redis commands and CPU per request; CPU net of what an idle, sampled Redis spends."""
    by_name = {
        metric.removeprefix("calls:"): delta(points, start, end)
        for (source, metric), points in series.items()
        if source == "redis"
        and metric.startswith("calls:")
        and metric.removeprefix("calls:") not in OBSERVER_COMMANDS
    }
    if ("redis", "cpu_s") not in series:
        return {}
    busy_s = delta(series[("redis", "cpu_s")], start, end)
    cpu_s = max(0.0, busy_s - idle_cpu_s_per_s * (end - start))
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


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _mean(histogram: HdrHistogram) -> float | None:
    return round(mean_value(histogram), 1) if histogram.get_total_count() else None


def _p50(histogram: HdrHistogram) -> float | None:
    return histogram.get_value_at_percentile(50) if histogram.get_total_count() else None


def _cpu_delta(series: dict[tuple[str, str], Any], source: str, start: float, end: float) -> float:
    points = series.get((source, "cpu_s"))
    return delta(points, start, end) if points else 0.0


def _revocation(histograms: HistogramSet) -> dict[str, Any]:
    """The observed delay (median over nodes and logouts), or the computed bound.

    With it, the replay's median round trip: the delay's resolution, and the yardstick for
    "refused at the first replay".
    """
    observed = histograms.get(LATENCY, OBSERVED_REVOCATION)
    computed = histograms.get(LATENCY, COMPUTED_REVOCATION)
    replay = histograms.get(LATENCY, REPLAY)
    found: dict[str, Any] = {}
    if replay is not None and replay.get_total_count():
        found["replay_rtt_ms"] = _ms(replay, 50)
    if computed is not None and computed.get_total_count():
        found.update(revocation_delay_ms=_ms(computed, 50), revocation_method="computed")
    elif observed is not None and observed.get_total_count():
        found.update(revocation_delay_ms=_ms(observed, 50), revocation_method="observed")
    return found if "revocation_method" in found else {}


def _generator_cpus(meta: dict[str, Any], processes: int) -> int:
    """How many CPUs the generator's processes could use: saturation is judged per CPU."""
    pinned = meta.get("generator_cpus")
    available = len(pinned) if pinned else processes
    return max(1, min(processes, available))


def _described(meta: dict[str, Any]) -> dict[str, Any]:
    """What the cell measured and how (its axes and settings), and how it ended."""
    params = meta["cell"]
    kind = parse_scheme(params["scheme"])
    open_model = params["model"] == "open"
    row: dict[str, Any] = {axis: params[axis] for axis in AXES}
    row.update(
        model=params["model"],
        balancer=params.get("balancer", "client"),
        rate=params["rate"] if open_model else None,
        # Runs before Poisson arrivals recorded none: their streams were evenly spaced.
        arrivals=params.get("arrivals", "uniform") if open_model else None,
        equal_load=bool(params.get("equal_load")),
        **{name: params.get(name) for name in CELL_SETTINGS},
        store_delay_measured_ms=meta.get("store_delay_measured_ms"),
        denylist=params["denylist"],
        access_ttl=params.get("access_ttl") if kind.is_jwt else None,
        repetition=meta["repetition"],
        cell_id=meta["cell_id"],
        status=meta["status"],
        reason=meta.get("reason"),
        credential_bytes=meta.get("verify", {}).get("credential_bytes"),
        redis_bytes_per_session=bytes_per_session(meta.get("redis_key_memory", {})),
        saturated=False,
        late=False,
    )
    row.update(
        fault=params.get("fault") or "",
        persistence=params.get("persistence") or "none",
        sliding_session=bool(params.get("sliding_session")),
        store_cache_s=int(params.get("store_cache_s") or 0),
        # The JWT library (runs from before the library axis ran PyJWT); empty for other schemes.
        library=(params.get("library") or CellSettings.library) if kind.is_jwt else "",
        jwks_ttl_s=int(params.get("jwks_ttl_s") or CellSettings.jwks_ttl_s),
        store_delay_ms=float(params.get("store_delay_ms") or 0.0),
        hops=int(params.get("hops") or 1),
    )
    return row


def cell_row(cell_dir: Path) -> dict[str, Any]:
    """The metrics row of one cell folder (numbers empty unless the cell completed)."""
    meta = json.loads((cell_dir / "cell.json").read_text())
    params = meta["cell"]
    open_model = params["model"] == "open"
    row: dict[str, Any] = {column: None for column in COLUMNS}
    row.update(_described(meta))
    if meta["status"] != "complete":
        return row
    window = json.loads((cell_dir / "window.json").read_text())
    start, end = window["window_start"], window["window_end"]
    window_s = end - start
    histograms = HistogramSet.load(cell_dir / "hdr.json")
    names = sorted(set(histograms.names(LATENCY)) | set(histograms.names(FAILED)))
    measured = measured_names(params["scenario"], names)
    row.update(_latency_figures(histograms, measured, window_s))
    requests = row["requests"]
    journey = [name for name in names if not name.startswith("revocation delay")]
    all_requests = histograms.total(LATENCY, journey)
    series = read_samples(cell_dir / "samples.csv")
    sampled = any(source.startswith(SAMPLED_SERVER) for source, _ in series)
    server_cpu_s = summed_delta(series, SAMPLED_SERVER, "cpu_s", start, end)
    generator_cpu_s = _cpu_delta(series, "generator", start, end)
    generators = _json(cell_dir / "generators.json")
    row.update(
        window_s=round(window_s, 3),
        all_requests=all_requests,
        server_cpu_us_per_req=(  # empty, never 0, for a --target-url node without its PID
            round(server_cpu_s * 1e6 / all_requests, 1) if all_requests and sampled else None
        ),
        rps_per_server_cpu_s=round(all_requests / server_cpu_s, 1) if server_cpu_s > 0 else None,
        balancer_cpu_us_per_req=(
            round(_cpu_delta(series, "balancer", start, end) * 1e6 / all_requests, 1)
            if all_requests and ("balancer", "cpu_s") in series
            else None
        ),
        generator_cpu_pct=round(generator_cpu_s / window_s * 100, 1) if window_s > 0 else None,
        locust_requests=generators.get("locust_since_open")
        or _locust_requests(cell_dir / "locust_stats.csv"),
        recorded_requests=generators.get("seen_since_open"),
        **_revocation(histograms),
        **_redis_figures(
            series, start, end, all_requests, float(meta.get("redis_idle_cpu_s_per_s") or 0.0)
        ),
    )
    processes = max(1, int(params.get("generator_processes", 1)))
    row["generator_cpus"] = _generator_cpus(meta, processes)
    per_cpu = (row["generator_cpu_pct"] or 0) / row["generator_cpus"]
    ceiling = meta.get("generator_ceiling_rps")
    rate_seen = all_requests / window_s if window_s > 0 else 0.0
    near_ceiling = bool(ceiling) and rate_seen > CEILING_FRACTION * ceiling
    row["saturated"] = per_cpu > GENERATOR_SATURATED_PCT or (near_ceiling and not open_model)
    if open_model:
        # A fault cell is late when the generator fell behind its schedule, not when the fault
        # failed requests or a flood's requests went under another name.
        sent = int(generators.get("sent_on_schedule") or 0) if params.get("fault") else requests
        row.update(_open_model_figures(params["rate"], sent, window_s, histograms, generators))
    row.update(fault_figures(cell_dir), **validation_figures(cell_dir))
    row.update(split_figures(cell_dir, meta, series, (start, end), requests, histograms))
    if params.get("fault"):
        # A service restarted inside the window: its cumulative counters began again from zero.
        row.update(dict.fromkeys(fault_named(params["fault"]).blanks))
    return row


def _open_model_figures(
    rate: float,
    sent: int,
    window_s: float,
    histograms: HistogramSet,
    generators: dict[str, Any],
) -> dict[str, Any]:
    """Offered vs achieved, lateness and unsent requests; whether the cell fell short."""
    lateness = merged(histograms, LATENESS, histograms.names(LATENESS))
    achieved = sent / window_s if window_s > 0 else 0.0
    planned = int(generators.get("planned_in_window") or 0)
    planned_rps = planned / window_s if planned and window_s > 0 else rate
    unsent = int(generators.get("unsent") or 0)
    dropped = bool(planned) and unsent > MAX_UNSENT_SHARE * planned
    short = achieved < MIN_ACHIEVED_SHARE * planned_rps or dropped
    return {
        "offered_rps": rate,
        "planned_rps": round(planned_rps, 1),
        "achieved_rps": round(achieved, 1),
        "late_p99_ms": _ms(lateness, 99) if lateness.get_total_count() else None,
        "unsent": unsent,
        "censored": histograms.total(CENSORED),
        "late": bool(short),
    }


def usable(row: dict[str, Any]) -> bool:
    """Complete, and neither saturated nor late: fit for a verdict or a baseline."""
    return row["status"] == "complete" and not row["saturated"] and not row["late"]


def add_overheads(rows: list[dict[str, Any]]) -> None:
    """Fill the overhead columns against the ``none`` row of the same identity and repetition."""
    key_fields = (
        *(key for key in IDENTITY if key != "scheme" and key not in CREDENTIAL_SETTINGS),
        "repetition",
    )
    baselines = {
        tuple(row[f] for f in key_fields): row
        for row in rows
        if row["scheme"] == "none" and usable(row)
    }
    for row in rows:
        base = baselines.get(tuple(row[f] for f in key_fields))
        if base is None or not usable(row):
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
    write_csv(run_dir / "metrics.csv", COLUMNS, rows)
    return rows
