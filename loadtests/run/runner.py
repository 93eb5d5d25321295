"""The matrix runner: for each cell, start, verify, warm up, measure, sample, stop, write.

Cells that share a scheme, topology and server settings share one set of nodes (and one private
Redis); repetitions are interleaved, the order rotated (A B C, B C A, C A B). The generator
runs on its own CPU(s), the servers and Redis on the others. A run goes in phases: calibration
and generator ceiling; the cells with a fixed load; the capacity searches; the equal-load
cells, at one rate per group chosen below every compared scheme's capacity; the micro
benchmark; calibration again. Every cell is written as it finishes; an interruption stops the
current cell and every process the run started, marks the run incomplete and keeps what
finished, and ``--resume`` completes it (failed cells included).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import redis

from common.outcomes import RunInterrupted
from loadtests.load.histograms import LATENCY, HistogramSet
from loadtests.load.locust_process import LocustRun
from loadtests.measure.calibration import calibrate
from loadtests.measure.capacity import capacity_rows, write_capacity
from loadtests.measure.capacity_search import (
    closed_throughput,
    rounds,
    run_searches,
    search_done,
    search_seconds,
)
from loadtests.measure.cell_metrics import cell_row, metrics_rows, write_metrics
from loadtests.measure.micro import run_micro_on_any_redis, write_micro_csv
from loadtests.run.cell_run import CpuPlan, Run, expect_results, group_services, run_cell, set_aside
from loadtests.run.console import Progress, cell_outcome, summary_table
from loadtests.run.matrix import Cell, CellSettings, Matrix, load_matrix, with_planted_cost
from loadtests.run.run_folder import (
    SCHEMA_VERSION,
    create_run_folder,
    elapsed_seconds,
    environment,
    measured_seconds,
    point_latest,
    utc_now,
    write_json,
)
from loadtests.services.nginx_balancer import NginxUnavailable
from loadtests.services.private_redis import PrivateRedis, redis_url_from_env
from loadtests.services.target import Target
from loadtests.services.target_process import TargetFailedToStart
from loadtests.services.trivial_server import TrivialServer

MATRIX_COPY = "matrix.toml"
CEILING_USERS = 20
CEILING_SETTINGS = CellSettings(warmup_s=1.0, duration_s=3.0)
FINISHED = ("complete",)  # failed cells are tried again on --resume
EQUAL_LOAD_SHARE = 0.5  # equal-load rate: this share of the lowest capacity in the group
ORDER = "rotated: repetition r starts r - 1 cell groups along (the cells list is the order run)"


def interleaved_groups(matrix: Matrix) -> list[list[tuple[Cell, int]]]:
    """Cells grouped by the nodes they can share, repetition by repetition, the order rotated.

    Repetition r starts r - 1 groups further along (A B C, B C A, C A B): every group takes
    every place in the order, so a drift along the run (the machine warming, a neighbour
    starting) falls on every scheme alike instead of looking like a scheme's effect.
    """
    groups: list[list[tuple[Cell, int]]] = []
    for repetition in range(1, matrix.repetitions + 1):
        cells = [cell for cell in matrix.cells if repetition <= cell.settings.repetitions]
        groups.extend(rotated_groups(cells, repetition))
    return groups


def _node_key(cell: Cell) -> tuple[Any, ...]:
    """What cells must agree on to share one set of nodes (and one private Redis)."""
    return (
        cell.scheme,
        cell.topology,
        cell.nodes,
        cell.settings.balancer,
        cell.settings.equal_load,
        cell.settings.store_delay_ms,
        cell.settings.fault,
        cell.settings.persistence,
        cell.settings.introspect_cache_s,
        cell.settings.jwks_cooldown_s,
        cell.settings.jwks_ttl_s,
        tuple(cell.server_args()),
    )


def rotated_groups(cells: list[Cell], repetition: int) -> list[list[tuple[Cell, int]]]:
    """One repetition of the cells, grouped by the nodes they can share, starting
    repetition - 1 groups along."""
    by_nodes: dict[tuple[Any, ...], list[tuple[Cell, int]]] = {}
    for cell in cells:
        by_nodes.setdefault(_node_key(cell), []).append((cell, repetition))
    ordered = list(by_nodes.values())
    shift = (repetition - 1) % len(ordered) if ordered else 0
    return ordered[shift:] + ordered[:shift]


def _cell_status(cell_dir: Path) -> str | None:
    try:
        return json.loads((cell_dir / "cell.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def measure_ceiling(run: Run, processes: int) -> float:
    """Requests/s the generator reaches against a trivial server: its own ceiling."""
    ceiling_dir = run.run_dir / f"ceiling-{processes}p"
    if ceiling_dir.exists():
        set_aside(ceiling_dir)
    ceiling_dir.mkdir()
    settings = CellSettings(
        warmup_s=CEILING_SETTINGS.warmup_s,
        duration_s=CEILING_SETTINGS.duration_s,
        generator_processes=processes,
    )
    cell = Cell("none", "single", 1, "read", CEILING_USERS, settings)
    with TrivialServer(run.cpus.servers) as server:
        locust = LocustRun(cell, [server.url], ceiling_dir, run.cpus.generator)
        try:
            locust.wait()
        finally:
            locust.stop()
    window = expect_results(ceiling_dir, settings.duration_s)
    histograms = HistogramSet.load(ceiling_dir / "hdr.json")
    rps = round(histograms.total(LATENCY) / (window["window_end"] - window["window_start"]), 1)
    write_json(
        ceiling_dir / "ceiling.json", {"processes": processes, "users": CEILING_USERS, "rps": rps}
    )
    return rps


def _generator_processes(matrix: Matrix) -> int:
    return max(cell.settings.generator_processes for cell in (*matrix.cells, *matrix.capacity))


def new_run(
    matrix_arg: str,
    results_root: Path,
    plant: tuple[str, int] | None = None,
    target: Target | None = None,
) -> Run:
    """Validate the matrix (and a self-test's planted cost), then create the run folder."""
    matrix = load_matrix(matrix_arg, _shape(target))
    if plant is not None:
        matrix = with_planted_cost(matrix, *plant)
    run_dir = create_run_folder(results_root, matrix.name)
    (run_dir / "cells").mkdir()
    shutil.copyfile(matrix.source, run_dir / MATRIX_COPY)
    for included in matrix.included:  # beside the copy, where a resume looks for them first
        shutil.copyfile(included, run_dir / Path(included).name)
    cpus = CpuPlan.for_this_machine(_generator_processes(matrix))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "status": "incomplete",
        "started": utc_now(),
        "ended": None,
        "matrix": {
            "name": matrix.name,
            "source": matrix.source,
            "file": MATRIX_COPY,
            "description": matrix.description,
            "repetitions": matrix.repetitions,
            "cells": [
                {"cell_id": cell.cell_id(rep), **cell.describe()}
                for group in interleaved_groups(matrix)
                for cell, rep in group
            ],
            "capacity": [cell.describe() for cell in matrix.capacity],
            "search": asdict(matrix.search) if matrix.search else None,
        },
        "margins": matrix.margins,
        "primary": list(matrix.primary),
        "thresholds": list(matrix.thresholds),
        "order": ORDER,
        "planted": {"scheme": plant[0], "cost_us": plant[1]} if plant else None,
        "target": target.describe() if target else None,
        "pinning": cpus.describe(),
        "redis": _redis_source(target),
        "load_balancing": sorted(
            {
                "nginx" if cell.settings.balancer == "nginx" else "client round-robin"
                for cell in matrix.cells
                if cell.topology == "multi"
            }
        ),
        "calibration": {},
        "equal_load": {},
        "environment": environment(),
    }
    write_json(run_dir / "manifest.json", manifest)
    point_latest(results_root, run_dir)
    keys_dir = Path(tempfile.mkdtemp(prefix="authbench-keys-"))
    return Run(run_dir, matrix, cpus, keys_dir, manifest, target=target)


def _redis_source(target: Target | None) -> str:
    """Which Redis the run reads (and its nodes use, unless they are the user's)."""
    if redis_url_from_env():
        return "REDIS_URL"
    return (
        "none read (set REDIS_URL to the target's)"
        if target
        else "private redis-server per cell group"
    )


def _shape(target: Target | None) -> tuple[str, int] | None:
    """What a matrix needs of a --target-url server: its scheme id and how many nodes."""
    return (target.scheme_id, len(target.nodes)) if target else None


def resumed_run(run_arg: str, results_root: Path) -> Run:
    """Reopen an incomplete run folder with the matrix it was started with."""
    run_dir = Path(run_arg)
    if not run_dir.is_dir():
        run_dir = results_root / run_arg
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{run_arg}: no run folder with a manifest.json there")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise FileNotFoundError(
            f"{run_arg}: results schema {manifest.get('schema_version')} cannot be resumed by "
            f"this version (schema {SCHEMA_VERSION})"
        )
    target = Target.from_record(manifest["target"]) if manifest.get("target") else None
    matrix = load_matrix(str(run_dir / MATRIX_COPY), _shape(target))
    matrix = replace(matrix, name=manifest["matrix"]["name"])
    if planted := manifest.get("planted"):
        matrix = with_planted_cost(matrix, planted["scheme"], planted["cost_us"])
    manifest.setdefault("resumed", []).append(utc_now())
    manifest["status"] = "incomplete"
    write_json(manifest_path, manifest)
    cpus = CpuPlan.for_this_machine(_generator_processes(matrix))
    keys_dir = Path(tempfile.mkdtemp(prefix="authbench-keys-"))
    return Run(run_dir, matrix, cpus, keys_dir, manifest, target=target)


def _ensure_ceilings(run: Run, progress: Progress) -> None:
    given = run.matrix.generator_ceiling_rps
    recorded = run.manifest.setdefault("generator_ceiling", {})
    for processes in sorted({cell.settings.generator_processes for cell in run.matrix.cells}):
        key = str(processes)
        if given is not None:
            recorded[key] = {"rps": given, "source": "matrix"}
        elif key not in recorded:
            progress.note(f"measuring the generator ceiling with {processes} Locust process(es)…")
            recorded[key] = {"rps": measure_ceiling(run, processes), "source": "measured"}
            progress.note(f"generator ceiling: {recorded[key]['rps']:.0f} requests/s")
        run.ceilings[processes] = recorded[key]["rps"]
    write_json(run.run_dir / "manifest.json", run.manifest)


def _calibrate(run: Run, when: str, redis_url: str | None, progress: Progress) -> None:
    """Time the reference workload (``start`` once per run; ``end`` after every session)."""
    recorded = run.manifest.setdefault("calibration", {})
    if when == "start" and when in recorded:
        return
    progress.note(f"calibration ({when})…")
    if redis_url:
        recorded[when] = calibrate(redis_url, run.cpus.servers)
    else:
        with PrivateRedis() as server:
            recorded[when] = calibrate(server.url, run.cpus.servers)
    write_json(run.run_dir / "manifest.json", run.manifest)


# Starting a cell's Locust and its services' share, verify and write-up included: 1.2-1.5 s here
# with the fork servers (2.7 s before them).
CELL_START_S = 1.5


def cell_seconds(cell: Cell) -> float:
    """What a cell is expected to take: its warm-up and window, and its start."""
    return cell.settings.warmup_s + cell.settings.duration_s + CELL_START_S


def _pending(run: Run, groups: list[list[tuple[Cell, int]]]) -> list[Cell]:
    return [
        cell
        for group in groups
        for cell, rep in group
        if _cell_status(run.cells_dir / cell.cell_id(rep)) not in FINISHED
    ]


def equal_load_key(cell: Cell) -> str:
    """The cells that share one equal-load rate: same scenario, topology, nodes and users."""
    return f"{cell.scenario}__{cell.topology}-{cell.nodes}__{cell.users}u"


def _nice_floor(rate: float) -> float:
    """Round down to 1, 2 or 5 × 10ⁿ (1,300 → 1,000; 640 → 500): the rate reads as chosen, and
    two runs on one machine usually land on the same one, so ``compare`` can match them."""
    if rate <= 0:
        return 0.0
    scale = 10 ** math.floor(math.log10(rate))
    return max(step * scale for step in (1, 2, 5) if step * scale <= rate)


def choose_equal_load(run: Run, cells: list[Cell]) -> dict[str, dict[str, Any]]:
    """One rate per equal-load key: a share of the lowest capacity (or closed throughput)."""
    capacities = {(r["scheme"], r["scenario"], r["topology"], r["nodes"]): r["capacity_rps"]
                  for r in capacity_rows(run.run_dir)}  # fmt: skip
    closed_rows = metrics_rows(run.run_dir)
    chosen = run.manifest.setdefault("equal_load", {})
    for key in sorted({equal_load_key(cell) for cell in cells}):
        if key in chosen:
            continue
        members = [cell for cell in cells if equal_load_key(cell) == key]
        figures: dict[str, tuple[float, str]] = {}
        for cell in members:
            found = capacities.get((cell.scheme, cell.scenario, cell.topology, cell.nodes))
            library = cell.settings.library
            default = library == CellSettings.library
            name = cell.scheme if default else f"{cell.scheme} ({library})"
            if found and default:  # capacity is searched with the default library only
                figures[name] = (found, "capacity at the SLO")
            elif closed := closed_throughput(closed_rows, cell):
                figures[name] = (closed, "closed-model throughput")
        if not figures:
            continue
        lowest = min(figures, key=lambda scheme: figures[scheme][0])
        rate, source = figures[lowest]
        fixed = run.matrix.equal_load_rate
        chosen[key] = {
            "rate": fixed or _nice_floor(EQUAL_LOAD_SHARE * rate),
            "share": round(fixed / rate, 3) if fixed else EQUAL_LOAD_SHARE,
            "of": source,
            "lowest_scheme": lowest,
            "lowest_rps": rate,
            "set_by": "the matrix's equal_load_rate" if fixed else "auto",
        }
    write_json(run.run_dir / "manifest.json", run.manifest)
    return chosen


def _with_rates(run: Run, groups: list[list[tuple[Cell, int]]]) -> list[list[tuple[Cell, int]]]:
    """Equal-load groups with their chosen rate; cells without one are recorded as failed."""
    chosen = choose_equal_load(run, [cell for group in groups for cell, _ in group])
    resolved = []
    for group in groups:
        rated = []
        for cell, rep in group:
            rate = chosen.get(equal_load_key(cell), {}).get("rate")
            if rate:
                rated.append((replace(cell, settings=replace(cell.settings, rate=rate)), rep))
            else:
                reason = "no capacity or closed-model throughput to choose an equal-load rate from"
                _record_failure(run, cell, rep, reason)
        if rated:
            resolved.append(rated)
    return resolved


def execute(run: Run, with_micro: bool = True) -> list[dict[str, Any]]:
    """Run every unfinished cell and search, then the micro benchmark; return the metrics rows."""
    groups = interleaved_groups(run.matrix)
    fixed = [group for group in groups if not group[0][0].settings.equal_load]
    equal = [group for group in groups if group[0][0].settings.equal_load]
    searches = [
        (cell, number) for cell in run.matrix.capacity for number in range(1, rounds(run) + 1)
    ]
    searches_left = sum(1 for cell, number in searches if not search_done(run, cell, number))
    pending = _pending(run, groups)
    total = sum(len(group) for group in groups) + len(searches)
    work = sum(map(cell_seconds, pending)) + searches_left * search_seconds(run)
    progress = Progress(total, total - len(pending) - searches_left, work)
    redis_url = redis_url_from_env()
    try:
        _calibrate(run, "start", redis_url, progress)
        _ensure_ceilings(run, progress)
        _run_groups(run, fixed, redis_url, progress)
        if run.matrix.capacity:
            run_searches(run, metrics_rows(run.run_dir), redis_url, progress)
        if equal:
            _run_groups(run, _with_rates(run, equal), redis_url, progress)
        if with_micro and not (run.run_dir / "micro.csv").exists():
            progress.note("micro benchmark…")
            kdf = max(cell.settings.kdf_iterations for cell in run.matrix.cells)
            algorithms = tuple(sorted({cell.alg for cell in run.matrix.cells if cell.alg}))
            write_micro_csv(run_micro_on_any_redis(kdf, algorithms), run.run_dir / "micro.csv")
        _calibrate(run, "end", redis_url, progress)
    except KeyboardInterrupt:
        write_metrics(run.run_dir)
        write_capacity(run.run_dir)
        write_json(run.run_dir / "manifest.json", {**run.manifest, "ended": utc_now()})
        raise RunInterrupted(
            f"interrupted: {progress.done} of {total} cells finished and kept in {run.run_dir}"
        ) from None
    finally:
        shutil.rmtree(run.keys_dir, ignore_errors=True)
    rows = write_metrics(run.run_dir)
    write_capacity(run.run_dir)
    ended = utc_now()
    # DESIGN round 3: how much of the wall clock was measured windows (a resumed run's total
    # spans its interruption too).
    run.manifest.update(status="complete", ended=ended, measured_s=measured_seconds(run.run_dir),
                        total_s=elapsed_seconds(run.manifest["started"], ended))  # fmt: skip
    write_json(run.run_dir / "manifest.json", run.manifest)
    return rows


def next_repetition(run: Run, cells: list[Cell]) -> int:
    """The repetition number after the last one any of these cells has in the run folder."""
    highest = 0
    for cell in cells:
        prefix = cell.cell_id(1).removesuffix("1")  # "…__r"
        for path in run.cells_dir.glob(f"{prefix}*"):
            number = path.name.removeprefix(prefix)
            if number.isdigit():
                highest = max(highest, int(number))
    return highest + 1


def run_extra_round(run: Run, cells: list[Cell]) -> int:
    """One more repetition of these cells, interleaved and rotated like the matrix's own, each
    written like any other cell (equal-load cells at the rate the run chose); returns its
    number. The manifest lists the new cells; an interruption keeps what finished."""
    repetition = next_repetition(run, cells)
    groups = rotated_groups(cells, repetition)
    fixed = [group for group in groups if not group[0][0].settings.equal_load]
    equal = [group for group in groups if group[0][0].settings.equal_load]
    progress = Progress(len(cells), 0, sum(map(cell_seconds, cells)))
    redis_url = redis_url_from_env()
    listed = run.manifest["matrix"]["cells"]
    listed += [{"cell_id": cell.cell_id(rep), **cell.describe()} for g in groups for cell, rep in g]
    write_json(run.run_dir / "manifest.json", run.manifest)
    try:
        _run_groups(run, fixed, redis_url, progress)
        _run_groups(run, _with_rates(run, equal), redis_url, progress)
    except KeyboardInterrupt:
        raise RunInterrupted(f"interrupted: finished cells kept in {run.run_dir}") from None
    finally:
        write_metrics(run.run_dir)
    return repetition


def _run_groups(
    run: Run, groups: list[list[tuple[Cell, int]]], redis_url: str | None, progress: Progress
) -> None:
    for group in groups:
        pending = [
            (cell, rep)
            for cell, rep in group
            if _cell_status(run.cells_dir / cell.cell_id(rep)) not in FINISHED
        ]
        if pending:
            _run_group(run, pending, redis_url, progress)


def _run_group(
    run: Run, pending: list[tuple[Cell, int]], redis_url: str | None, progress: Progress
) -> None:
    if pending[0][0].settings.fault:
        # A fault breaks what it hits: every fault cell gets fresh services of its own.
        for pair in pending:
            _run_batch(run, [pair], redis_url, progress)
    else:
        _run_batch(run, pending, redis_url, progress)


def _run_batch(
    run: Run, pending: list[tuple[Cell, int]], redis_url: str | None, progress: Progress
) -> None:
    first = pending[0][0]
    try:
        with group_services(run, first, redis_url) as services:
            for cell, rep in pending:
                progress.begin(_label(cell, rep), cell_seconds(cell))
                row = run_cell(run, cell, rep, services, progress)
                progress.end(cell_outcome(row))
    except (TargetFailedToStart, NginxUnavailable, redis.RedisError, OSError) as exc:
        for cell, rep in pending:
            if _cell_status(run.cells_dir / cell.cell_id(rep)) in FINISHED:
                continue
            progress.begin(_label(cell, rep), cell_seconds(cell))
            row = _record_failure(run, cell, rep, f"services did not start: {exc}")
            progress.end(cell_outcome(row))


def _record_failure(run: Run, cell: Cell, rep: int, reason: str) -> dict[str, Any]:
    cell_dir = run.cells_dir / cell.cell_id(rep)
    if cell_dir.exists():
        set_aside(cell_dir)
    cell_dir.mkdir(parents=True)
    meta = {
        "cell_id": cell.cell_id(rep),
        "repetition": rep,
        "cell": cell.describe(),
        "status": "failed",
        "reason": reason,
        "started": utc_now(),
        "ended": utc_now(),
    }
    write_json(cell_dir / "cell.json", meta)
    return cell_row(cell_dir)


def _label(cell: Cell, rep: int) -> str:
    balancer = " via nginx" if cell.settings.balancer == "nginx" else ""
    load = f" open {cell.settings.rate:g} req/s" if cell.settings.model == "open" else ""
    fault = f" {cell.fault_label.lstrip('-')}" if cell.settings.fault else ""
    return (
        f"{cell.scheme} {cell.topology}-{cell.nodes}{balancer} {cell.scenario}{fault} "
        f"{cell.users}u{load} r{rep}"
    )


def print_summary(rows: list[dict[str, Any]], run: Run) -> int:
    """The one-screen summary and where the results are; returns how many cells failed."""
    print()
    print(summary_table(rows))
    saturated = sum(1 for row in rows if row.get("saturated"))
    late = sum(1 for row in rows if row.get("late"))
    failed = sum(1 for row in rows if row["status"] != "complete")
    ceilings = ", ".join(f"{k} process(es): {v:.0f} rps" for k, v in sorted(run.ceilings.items()))
    print(f"\ngenerator ceiling: {ceilings}")
    measured, total = run.manifest.get("measured_s"), run.manifest.get("total_s")
    if measured is not None and total:
        print(f"measured windows: {measured:.0f} s of {total:.0f} s ({measured / total:.0%})")
    for row in capacity_rows(run.run_dir):
        interval = (
            f" [{row['capacity_lo']:.0f}, {row['capacity_hi']:.0f}]"
            if row["searches"] > 1
            else " (one search, no interval)"
        )
        print(
            f"capacity {row['scheme']} {row['scenario']}: {row['capacity_rps']:.0f}{interval} "
            f"req/s at p99 ≤ {row['slo_p99_ms']:g} ms over {row['searches']} search(es) "
            f"({row['capacity_by_search']}; bound: {row['bound']})"
        )
    if saturated:
        print(f"{saturated} cell(s) saturated the generator: their throughput is a floor")
    if late:
        print(f"{late} open-model cell(s) did not apply their offered load (late or unsent)")
    if failed:
        print(f"{failed} cell(s) failed: see their cell.json; --resume tries them again")
    print(f"results: {run.run_dir}")
    return failed
