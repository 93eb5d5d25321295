"""Running the capacity searches of a matrix: one set of services per search, one cell per probe.

The search starts from the closed-model throughput of the same scheme measured earlier in the
run, when there is one (half of it, stepping by a quarter), so it needs few probes on a fast or
a slow day alike. ``search.json`` is rewritten after every probe, so an interrupted search keeps
its probes' raw files; a search that did not finish is run again on ``--resume``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, replace
from typing import Any

import redis

from loadtests.capacity import (
    CAPACITY_DIR,
    Verdict,
    judge,
    probe_id,
    search_id,
    search_plan,
    search_rates,
    write_search,
)
from loadtests.cell_run import Run, group_services, run_cell, set_aside
from loadtests.console import Progress
from loadtests.locust_process import LocustFailed
from loadtests.matrix import Cell
from loadtests.nginx_balancer import NginxUnavailable
from loadtests.target_process import TargetFailedToStart

FIRST_PROBE_WARMUP_S = 1.5


def search_done(run: Run, cell: Cell) -> bool:
    """Whether this cell's search finished (in this run or before a resume)."""
    path = run.run_dir / CAPACITY_DIR / search_id(cell) / "search.json"
    try:
        return json.loads(path.read_text())["status"] == "complete"
    except (OSError, ValueError, KeyError):
        return False


def closed_throughput(rows: list[dict[str, Any]], cell: Cell) -> float | None:
    """Median closed-model throughput of the same scheme, scenario and topology, if measured."""
    rates = [
        row["rps"]
        for row in rows
        if row["status"] == "complete"
        and row["model"] == "closed"
        and (row["scheme"], row["scenario"], row["topology"], row["nodes"])
        == (cell.scheme, cell.scenario, cell.topology, cell.nodes)
        and row["rps"]
    ]
    return statistics.median(rates) if rates else None


def run_search(
    run: Run, cell: Cell, closed_rps: float | None, redis_url: str | None, progress: Progress
) -> dict[str, Any]:
    """One scheme's search; returns (and writes) its search.json record."""
    search = run.matrix.search
    assert search is not None, "a capacity cell comes with its search settings"
    folder = run.run_dir / CAPACITY_DIR / search_id(cell)
    if folder.exists():
        set_aside(folder)
    start, step, resolution = search_plan(search, closed_rps)
    record: dict[str, Any] = {
        "cell": cell.describe(),
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
                settings = replace(cell.settings, rate=round(rate, 1), warmup_s=warmup)
                probe_cell = replace(cell, settings=settings)
                progress.phase(f"{rate:.0f} req/s")
                row = run_cell(run, probe_cell, 1, services, progress, folder / name)
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


def run_searches(
    run: Run, rows: list[dict[str, Any]], redis_url: str | None, progress: Progress
) -> None:
    """Every capacity search of the matrix that has not finished yet."""
    for cell in run.matrix.capacity:
        if search_done(run, cell):
            continue
        progress.begin(f"capacity {cell.scheme} {cell.topology}-{cell.nodes} {cell.scenario}")
        record = run_search(run, cell, closed_throughput(rows, cell), redis_url, progress)
        if record["status"] == "complete":
            progress.end(
                f"{record['capacity_rps']:.0f} req/s at the SLO, stopped by {record['bound']} "
                f"({len(record['probes'])} probes)"
            )
        else:
            progress.end(f"FAILED: {record.get('reason')}")
