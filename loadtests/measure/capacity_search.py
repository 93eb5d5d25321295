"""Running the capacity searches of a matrix: one set of services per search, one cell per probe.

Each scheme is searched ``searches`` times, round by round (every scheme's first search, then
every scheme's second, in a rotated order), each search on freshly started services. The first
round starts from the closed-model throughput of the same scheme measured earlier in the run,
when there is one, so it needs few probes on a fast or a slow day alike; so does every later
round, independently of the first, at a plan scaled by a factor drawn per round.
``search.json`` is rewritten after every probe, so an interrupted search keeps its probes' raw
files; a search that did not finish is run again on ``--resume``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import redis

from loadtests.load.locust_process import LocustFailed
from loadtests.measure.capacity import (
    CAPACITY_DIR,
    Verdict,
    judge,
    probe_id,
    search_id,
    search_plan,
    search_rates,
    write_search,
)
from loadtests.run.cell_run import Run, group_services, run_cell, set_aside
from loadtests.run.console import Progress
from loadtests.run.matrix import Cell
from loadtests.services.nginx_balancer import NginxUnavailable
from loadtests.services.target_process import TargetFailedToStart

FIRST_PROBE_WARMUP_S = 1.5


def _record(run: Run, cell: Cell, round_number: int) -> dict[str, Any]:
    path = run.run_dir / CAPACITY_DIR / search_id(cell, round_number) / "search.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def search_done(run: Run, cell: Cell, round_number: int = 1) -> bool:
    """Whether this round of the cell's search finished (in this run or before a resume)."""
    return _record(run, cell, round_number).get("status") == "complete"


EXPECTED_PROBES = 4  # what a search has taken in practice (start, steps up, a refinement)
EXPECTED_PROBE_RPS = 1500  # a probe's rate, for its length (min_requests / rate) before it runs
PROBE_START_S = 0.7  # a probe's own Locust start and write-up (0.5-0.8 s here)


def search_seconds(run: Run) -> float:
    """What one capacity search is expected to take (for the progress line's ETA)."""
    if not run.matrix.capacity:
        return 0.0
    cell = run.matrix.capacity[0]
    min_requests = run.matrix.search.min_requests if run.matrix.search else 0
    probe = max(cell.settings.duration_s, min_requests / EXPECTED_PROBE_RPS)
    return FIRST_PROBE_WARMUP_S + EXPECTED_PROBES * (cell.settings.warmup_s + probe + PROBE_START_S)


def rounds(run: Run) -> int:
    """How many searches each capacity cell gets."""
    return run.matrix.search.searches if run.matrix.search else 1


def closed_throughput(rows: list[dict[str, Any]], cell: Cell) -> float | None:
    """Median closed-model throughput of the same scheme (and JWT library), scenario and
    topology, if measured."""
    library = cell.settings.library
    rates = [
        row["rps"]
        for row in rows
        if row["status"] == "complete"
        and row["model"] == "closed"
        and (row["scheme"], row["scenario"], row["topology"], row["nodes"])
        == (cell.scheme, cell.scenario, cell.topology, cell.nodes)
        and (row.get("library") or library) == library  # empty: a scheme without JWTs
        and row["rps"]
    ]
    return statistics.median(rates) if rates else None


def run_search(
    run: Run,
    cell: Cell,
    closed_rps: float | None,
    redis_url: str | None,
    progress: Progress,
    round_number: int = 1,
) -> dict[str, Any]:
    """One round of one scheme's search; returns (and writes) its search.json record."""
    search = run.matrix.search
    assert search is not None, "a capacity cell comes with its search settings"
    folder = run.run_dir / CAPACITY_DIR / search_id(cell, round_number)
    if folder.exists():
        set_aside(folder)
    start, step, resolution = search_plan(search, closed_rps, round_number)
    record: dict[str, Any] = {
        "cell": cell.describe(),
        "round": round_number,
        "search": asdict(search),
        "plan": {
            "start_rps": start,
            "step_rps": step,
            "resolution_rps": resolution,
            "closed_rps": closed_rps,
        },
        "server_cpus": len(run.cpus.servers) if run.cpus.servers else 1,
        "probes": [],
        "status": "running",
    }
    write_search(folder, record)
    try:
        with group_services(run, cell, redis_url) as services:

            def probe(rate: float) -> Verdict:
                name = probe_id(len(record["probes"]) + 1, rate)
                warmup = cell.settings.warmup_s
                if not record["probes"]:  # fresh servers: caches, pools and the interpreter
                    warmup = max(warmup, FIRST_PROBE_WARMUP_S)
                # Long enough that the probe's p99 rests on enough requests above it.
                duration = round(max(cell.settings.duration_s, search.min_requests / rate), 1)
                settings = replace(
                    cell.settings, rate=round(rate, 1), warmup_s=warmup, duration_s=duration
                )
                probe_cell = replace(cell, settings=settings)
                progress.phase(f"{rate:.0f} req/s")
                verified = _verified(folder, record["probes"])
                row = run_cell(run, probe_cell, 1, services, progress, folder / name, verified,
                               stop_above_ms=search.slo_p99_ms)  # fmt: skip
                record["probes"].append(name)
                write_search(folder, record)
                return judge(row, search)

            capacity, bound, _ = search_rates(probe, start, step, resolution, search.max_steps)
        record.update(status="complete", capacity_rps=capacity, bound=bound)
    except (TargetFailedToStart, NginxUnavailable, LocustFailed, redis.RedisError, OSError) as exc:
        record.update(status="failed", reason=f"services did not start: {exc}")
    except BaseException:
        record.update(status="interrupted")
        raise
    finally:
        write_search(folder, record)
    return record


def _verified(folder: Path, probes: list[str]) -> dict[str, Any] | None:
    """The verify gate's record of the search's first complete probe: the services are the
    same, so later probes need not pass it again."""
    for name in probes:
        try:
            meta = json.loads((folder / name / "cell.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("status") == "complete" and "verify" in meta:
            return dict(meta["verify"])
    return None


def run_searches(
    run: Run, rows: list[dict[str, Any]], redis_url: str | None, progress: Progress
) -> None:
    """Every capacity search of the matrix that has not finished yet, round by round; each
    round starts one scheme further along, so no scheme is always first on a fresh machine."""
    cells = list(run.matrix.capacity)
    for round_number in range(1, rounds(run) + 1):
        shift = (round_number - 1) % len(cells)
        for cell in cells[shift:] + cells[:shift]:
            if not search_done(run, cell, round_number):
                _one_round(run, cell, rows, redis_url, progress, round_number)


def _one_round(
    run: Run,
    cell: Cell,
    rows: list[dict[str, Any]],
    redis_url: str | None,
    progress: Progress,
    round_number: int,
) -> None:
    progress.begin(
        f"capacity {cell.scheme} {cell.topology}-{cell.nodes} {cell.scenario} "
        f"search {round_number}/{rounds(run)}",
        search_seconds(run),
    )
    record = run_search(run, cell, closed_throughput(rows, cell), redis_url, progress, round_number)
    if record["status"] == "complete":
        progress.end(
            f"{record['capacity_rps']:.0f} req/s at the SLO, stopped by {record['bound']} "
            f"({len(record['probes'])} probes)"
        )
    else:
        progress.end(f"FAILED: {record.get('reason')}")
