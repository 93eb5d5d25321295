"""Capacity at an SLO: the highest open-model rate a scheme sustains, as a distribution.

One search (keycloak-benchmark's incremental mode): probe a rate; on success step up by
``step``; on failure go back to the last rate that held, halve the step and try again; stop
when the step falls below the resolution (or after ``max_steps`` probes). A failing probe is
repeated before it counts: one stall of a freshly started server must not set the ceiling. A
scheme is searched ``searches`` times on freshly started services, the rounds interleaved
across schemes. Every round starts from the closed-model throughput, independently of the
others (a round anchored on the first round's result could not get out of a stall that
lowered it: three "agreeing" rounds then confirmed one bad probe); the later rounds scale their
plan by a randomly drawn factor, so results do not fall on one grid. The capacity is the mean
of the rounds with a Student t 95% interval.

A probe holds the SLO when its p99 is within the bound, its error rate within the bound, and it
achieved at least ``min_achieved`` of the rate its arrivals planned with (almost) nothing left
unsent. The lowest failing probe says what stopped the search: ``generator`` (the load
generator was busy or fell behind on its own CPU), ``errors`` (the server answered with
errors), or ``server`` (latency or throughput); ``not reached`` when no probe failed, so the
capacity is a lower bound.

Each probe is an ordinary cell folder under ``capacity/<search>/``; ``search.json`` lists the
probes, and ``capacity.csv`` is derived from those raw files alone.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.student_t import t_quantile
from loadtests.measure.cell_metrics import cell_row
from loadtests.run.matrix import Cell, SearchSettings
from loadtests.run.run_folder import write_csv

CAPACITY_DIR = "capacity"
DEFAULT_CLOSED_RPS = 1000.0
NOT_REACHED = "not reached"
# A probe that failed while its generator was this busy (per generator CPU) is blamed on the
# generator: its lateness may be the generator's own, so it says nothing certain of the server.
GENERATOR_BOUND_PCT = 80.0
COLUMNS = [
    "scheme", "scenario", "topology", "nodes", "slo_p99_ms", "capacity_rps", "capacity_lo",
    "capacity_hi", "searches", "capacity_by_search", "capacity_rps_per_server_cpu",
    "capacity_lo_per_server_cpu", "capacity_hi_per_server_cpu", "bound", "steps",
    "server_cpus", "slo_error_rate", "min_achieved", "server_cpu_us_per_req_at_capacity",
    "p99_ms_at_capacity", "resolution_rps", "search_id",
]  # fmt: skip
LATER_ROUND_SCALE = (0.85, 1.15)  # later rounds scale round 1's plan by a factor drawn here


@dataclass(frozen=True)
class Verdict:
    """Whether one probe held the SLO, and if not, which bound it hit."""

    rate: float
    held: bool
    bound: str | None


def judge(row: dict[str, Any], search: SearchSettings) -> Verdict:
    """A probe's metrics row against the SLO."""
    rate = float(row["offered_rps"] or row["rate"] or 0.0)
    if row["status"] != "complete":
        return Verdict(rate, False, "errors")
    if (row["error_rate"] or 0.0) > search.slo_error_rate:
        return Verdict(rate, False, "errors")
    # Against what the arrivals planned in this window: Poisson arrivals vary around the rate.
    planned = row.get("planned_rps") or rate
    achieved_short = (row["achieved_rps"] or 0.0) < search.min_achieved * planned
    too_slow = row["p99_ms"] is None or row["p99_ms"] > search.slo_p99_ms
    if not (row["saturated"] or too_slow or achieved_short or row["late"]):
        return Verdict(rate, True, None)
    busy = (row["generator_cpu_pct"] or 0.0) / max(1, row["generator_cpus"] or 1)
    if row["saturated"] or busy > GENERATOR_BOUND_PCT:
        return Verdict(rate, False, "generator")
    return Verdict(rate, False, "server")


def search_rates(
    probe: Callable[[float], Verdict], start: float, step: float, resolution: float, max_steps: int
) -> tuple[float, str, int]:
    """Step up, back off and halve the step on failure: (capacity, bound, probes made).

    Until one probe has held, a failure halves the rate itself (the start was too high), so a
    bad guess costs one probe per halving, not a crawl up from zero. A failing probe is made
    again at once and fails only when the repeat fails too (the repeat counts as a probe).
    """
    best, lowest_failure, bound = 0.0, math.inf, NOT_REACHED
    rate, probes = start, 0
    while probes < max_steps and step >= resolution:
        verdict = probe(rate)
        probes += 1
        if not verdict.held and probes < max_steps:
            verdict = probe(rate)
            probes += 1
        if verdict.held:
            best = max(best, rate)
        elif rate < lowest_failure:
            lowest_failure, bound = rate, verdict.bound or "server"
        if not verdict.held and best == 0:
            rate /= 2
            step = rate / 2
            continue
        if not verdict.held:
            step /= 2
        rate = best + step
        while rate >= lowest_failure and step >= resolution:
            step /= 2
            rate = best + step
    return best, bound, probes


def search_plan(
    search: SearchSettings, closed_rps: float | None, round_number: int = 1
) -> tuple[float, float, float]:
    """(start, step, resolution) in requests/s: given, or from the closed-model throughput.

    From a closed throughput C: start at 0.6 C, step by 0.2 C, stop below 0.1 C: four probes
    (0.6, 0.8, 1.0, 0.9 C) find the capacity to within a tenth of C. Rounds after the first
    scale that plan by a factor drawn per round (seeded by the round: reproducible).
    """
    base = closed_rps if closed_rps else DEFAULT_CLOSED_RPS
    if round_number > 1:
        base *= random.Random(round_number).uniform(*LATER_ROUND_SCALE)
    start = search.start_rps or base * 0.6
    step = search.step_rps or start / 3
    resolution = search.resolution_rps or start / 6
    return start, step, resolution


def search_id(cell: Cell, round_number: int = 1) -> str:
    """The search's folder name: the cell's axes without load or repetition, and its round."""
    base = f"{cell.scheme}__{cell.topology}-{cell.nodes}__{cell.scenario}__{cell.users}u"
    return base if round_number == 1 else f"{base}__s{round_number}"


def t_interval(values: list[float]) -> tuple[float, float]:
    """Student t 95% interval of the mean (NaN with fewer than two values)."""
    if len(values) < 2:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    half = t_quantile(0.975, len(values) - 1) * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return max(0.0, mean - half), mean + half


def probe_id(step: int, rate: float) -> str:
    """A probe's folder name inside its search."""
    return f"step{step:02d}-{rate:.0f}rps"


def write_search(folder: Path, record: dict[str, Any]) -> None:
    """search.json: the search's settings, plan, probes and result."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "search.json").write_text(json.dumps(record, indent=1) + "\n")


def _one_search(path: Path) -> dict[str, Any] | None:
    """One finished search from its search.json and its probes' raw files (None: unfinished)."""
    record = json.loads(path.read_text())
    if record.get("status") != "complete":
        return None
    search = SearchSettings(**record["search"])
    verdicts = []
    probe_rows = {}
    for probe in record["probes"]:
        row = cell_row(path.parent / probe)
        probe_rows[probe] = row
        verdicts.append((probe, judge(row, search)))
    held = [(probe, v) for probe, v in verdicts if v.held]
    failed = [v for _, v in verdicts if not v.held]
    best_probe, best = max(held, key=lambda pv: pv[1].rate, default=(None, None))
    capacity = best.rate if best else 0.0
    lowest = min((v for v in failed if v.rate > capacity), key=lambda v: v.rate, default=None)
    return {
        "record": record,
        "search": search,
        "capacity": capacity,
        "bound": lowest.bound if lowest else NOT_REACHED,
        "probes": len(verdicts),
        "rows": [
            {**probe_rows[probe], "search_round": record.get("round", 1), "held": v.held}
            for probe, v in verdicts
        ],
        "at_capacity": probe_rows[best_probe] if best_probe else {},
        "folder": path.parent.name,
    }


def finished_searches(run_dir: Path) -> list[dict[str, Any]]:
    """Every finished search of a run, with its probes' metrics rows (read once)."""
    found = (_one_search(path) for path in sorted((run_dir / CAPACITY_DIR).glob("*/search.json")))
    return [search for search in found if search is not None]


def capacity_rows(run_dir: Path) -> list[dict[str, Any]]:
    """One row per searched cell (its rounds together), from search.json and the probes."""
    return summarise_searches(finished_searches(run_dir))


def summarise_searches(searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """capacity.csv's rows from the finished searches: their rounds together per cell."""
    rounds: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for found in searches:
        cell = found["record"]["cell"]
        key = (cell["scheme"], cell["scenario"], cell["topology"], cell["nodes"], cell["users"])
        rounds.setdefault(key, []).append(found)
    rows = []
    for found in rounds.values():
        found.sort(key=lambda f: f["record"].get("round", 1))
        first = found[0]
        capacities = [f["capacity"] for f in found]
        capacity = statistics.fmean(capacities)
        low, high = t_interval(capacities)
        # The figures at capacity come from the round closest to the mean.
        middle = min(found, key=lambda f: abs(f["capacity"] - capacity))
        bounds = [f["bound"] for f in found]
        cell, search = first["record"]["cell"], first["search"]
        server_cpus = first["record"]["server_cpus"]
        rows.append(
            {
                "scheme": cell["scheme"],
                "scenario": cell["scenario"],
                "topology": cell["topology"],
                "nodes": cell["nodes"],
                "slo_p99_ms": search.slo_p99_ms,
                "capacity_rps": round(capacity, 1),
                "capacity_lo": round(low, 1),
                "capacity_hi": round(high, 1),
                "searches": len(found),
                "capacity_by_search": " ".join(f"{c:.0f}" for c in capacities),
                "capacity_rps_per_server_cpu": round(capacity / server_cpus, 1),
                "capacity_lo_per_server_cpu": round(low / server_cpus, 1),
                "capacity_hi_per_server_cpu": round(high / server_cpus, 1),
                "bound": max(set(bounds), key=bounds.count),
                "steps": sum(f["probes"] for f in found),
                "server_cpus": server_cpus,
                "slo_error_rate": search.slo_error_rate,
                "min_achieved": search.min_achieved,
                "server_cpu_us_per_req_at_capacity": middle["at_capacity"].get(
                    "server_cpu_us_per_req"
                ),
                "p99_ms_at_capacity": middle["at_capacity"].get("p99_ms"),
                "resolution_rps": round(first["record"]["plan"]["resolution_rps"], 1),
                "search_id": first["folder"],
            }
        )
    return rows


def write_capacity(run_dir: Path) -> list[dict[str, Any]]:
    """(Re)write capacity.csv from the searches' raw files; return its rows."""
    rows = capacity_rows(run_dir)
    if rows:
        write_csv(run_dir / "capacity.csv", COLUMNS, rows)
    return rows
