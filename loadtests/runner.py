"""The matrix runner: for each cell, start, verify, warm up, measure, sample, stop, write.

Cells that share a scheme, topology and server settings share one set of nodes (and one private
Redis); repetitions are interleaved (A B C A B C). The generator runs on its own CPU, the
servers and Redis on the others. Every cell is written as it finishes; an interruption stops
the current cell and every process the run started, marks the run incomplete and keeps what
finished, and ``--resume`` completes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis

from loadtests.cell_metrics import cell_row, write_metrics
from loadtests.console import Progress, cell_outcome, summary_table
from loadtests.histograms import LATENCY, HistogramSet
from loadtests.locust_process import LocustFailed, LocustRun
from loadtests.matrix import Cell, Matrix, Settings, load_matrix
from loadtests.micro import run_micro_on_any_redis, write_micro_csv
from loadtests.nginx_balancer import NginxBalancer, NginxUnavailable
from loadtests.private_redis import PrivateRedis, redis_url_from_env
from loadtests.run_folder import (
    SCHEMA_VERSION,
    create_run_folder,
    environment,
    point_latest,
    utc_now,
    write_json,
)
from loadtests.sampling import Sampler, redis_key_memory
from loadtests.target_process import TargetFailedToStart, TargetNode, start_nodes
from loadtests.trivial_server import TrivialServer
from loadtests.verify import Expected, VerifyFailed, verify_target

MATRIX_COPY = "matrix.toml"
CEILING_USERS = 20
CEILING_SETTINGS = Settings(warmup_s=1.0, duration_s=3.0)
FINISHED = ("complete", "failed")


class RunInterrupted(Exception):
    """The run was stopped by the user; finished cells are kept."""


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the generator uses and which the servers and Redis use (None: no pinning)."""

    generator: set[int] | None
    servers: set[int] | None

    @classmethod
    def for_this_machine(cls) -> CpuPlan:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls({cpus[0]}, set(cpus[1:]))

    def describe(self) -> dict[str, Any]:
        return {
            "generator_cpus": sorted(self.generator) if self.generator else None,
            "server_cpus": sorted(self.servers) if self.servers else None,
            "pinned": self.generator is not None,
        }


@dataclass
class Run:
    """A run in progress: its folder, matrix and run-wide facts."""

    run_dir: Path
    matrix: Matrix
    cpus: CpuPlan
    keys_dir: Path
    manifest: dict[str, Any]
    ceilings: dict[int, float] = field(default_factory=dict)

    @property
    def cells_dir(self) -> Path:
        return self.run_dir / "cells"


def interleaved_groups(matrix: Matrix) -> list[list[tuple[Cell, int]]]:
    """Cells grouped by the nodes they can share, repetition by repetition (A B C A B C)."""
    groups: list[list[tuple[Cell, int]]] = []
    for repetition in range(1, matrix.repetitions + 1):
        by_nodes: dict[tuple[Any, ...], list[tuple[Cell, int]]] = {}
        for cell in matrix.cells:
            if repetition > cell.settings.repetitions:
                continue
            key = (
                cell.scheme,
                cell.topology,
                cell.nodes,
                cell.settings.balancer,
                tuple(cell.server_args()),
            )
            by_nodes.setdefault(key, []).append((cell, repetition))
        groups.extend(by_nodes.values())
    return groups


def expected_identity(cell: Cell) -> Expected:
    """What the nodes of a cell must report at /healthz."""
    if cell.scheme == "none":
        return Expected("none", None, None, False)
    if cell.scheme.startswith("session-"):
        return Expected("session", None, cell.store, False)
    return Expected("jwt", cell.alg, "redis", cell.denylist)


def _cell_status(cell_dir: Path) -> str | None:
    try:
        return json.loads((cell_dir / "cell.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def _set_aside(cell_dir: Path) -> None:
    """Keep an unfinished attempt's raw files under another name; never overwrite them."""
    attempt = 1
    while (target := cell_dir.with_name(f"{cell_dir.name}.attempt{attempt}")).exists():
        attempt += 1
    cell_dir.rename(target)


@dataclass
class GroupServices:
    """What a group of cells runs against: nodes, their Redis, and an optional balancer."""

    nodes: list[TargetNode]
    redis_url: str | None
    balancer: NginxBalancer | None

    @property
    def node_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def load_urls(self) -> list[str]:
        """Where Locust sends requests: the balancer, or every node in turn."""
        return [self.balancer.url] if self.balancer else self.node_urls


@contextmanager
def group_services(run: Run, cell: Cell, redis_url: str | None) -> Iterator[GroupServices]:
    """Redis (private unless REDIS_URL), nodes and balancer of one group; stopped on exit."""
    private: PrivateRedis | None = None
    if cell.store == "redis" and redis_url is None:
        private = PrivateRedis()
    nodes: list[TargetNode] = []
    balancer: NginxBalancer | None = None
    try:
        if private is not None:
            private.start(run.cpus.servers)
        url = private.url if private else (redis_url if cell.store == "redis" else None)
        if url and private is None:
            _check_reachable(url)
        env = {"REDIS_URL": url} if url else {}
        args = [*cell.server_args(), "--keys-dir", str(run.keys_dir)]
        nodes = start_nodes(args, cell.nodes, env, run.cpus.servers)
        if cell.settings.balancer == "nginx":
            balancer = NginxBalancer([node.url for node in nodes], run.cpus.servers)
            balancer.start()
        yield GroupServices(nodes, url, balancer)
    finally:
        if balancer is not None:
            balancer.close()
        for node in nodes:
            node.stop()
        if private is not None:
            private.close()


def _check_reachable(url: str) -> None:
    """Fail fast, before starting nodes, when the user's Redis does not answer."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def run_cell(
    run: Run, cell: Cell, repetition: int, services: GroupServices, progress: Progress
) -> dict[str, Any]:
    """Verify, then measure one cell; write its folder; return its metrics row."""
    cell_id = cell.cell_id(repetition)
    cell_dir = run.cells_dir / cell_id
    if cell_dir.exists():
        _set_aside(cell_dir)
    cell_dir.mkdir(parents=True)
    meta: dict[str, Any] = {
        "cell_id": cell_id,
        "repetition": repetition,
        "cell": cell.describe(),
        "status": "running",
        "started": utc_now(),
        "nodes": services.node_urls,
        "load_balancing": _balancing(services),
        "generator_ceiling_rps": run.ceilings.get(cell.settings.generator_processes),
        **run.cpus.describe(),
    }
    write_json(cell_dir / "cell.json", meta)
    try:
        progress.phase("verify")
        verified = verify_target(services.node_urls, expected_identity(cell))
        if services.balancer is not None:
            verify_target([services.balancer.url], expected_identity(cell))
            verified.checks.append("the same checks through the nginx balancer")
        meta["verify"] = {
            "checks": verified.checks,
            "credential_header": verified.credential_header,
            "credential_bytes": verified.credential_bytes,
        }
        progress.phase(
            f"warm-up {cell.settings.warmup_s:g}s, measure {cell.settings.duration_s:g}s"
        )
        processes = {f"node{index}": node.pid for index, node in enumerate(services.nodes)}
        if services.balancer is not None and services.balancer.pid is not None:
            processes["balancer"] = services.balancer.pid
        with Sampler(processes, services.redis_url) as sampler:
            locust = LocustRun(cell, services.load_urls, cell_dir, run.cpus.generator)
            try:
                sampler.add_process("generator", locust.pid)
                locust.wait()
            finally:
                locust.stop()
        sampler.save(cell_dir / "samples.csv")
        if services.redis_url:
            meta["redis_key_memory"] = redis_key_memory(services.redis_url)
        _expect_results(cell_dir)
        meta["status"] = "complete"
    except VerifyFailed as exc:
        meta.update(status="failed", reason=f"verify gate: {exc}")
    except LocustFailed as exc:
        meta.update(status="failed", reason=str(exc))
    except BaseException:
        meta.update(status="interrupted", reason="run interrupted during this cell")
        raise
    finally:
        meta["ended"] = utc_now()
        write_json(cell_dir / "cell.json", meta)
    return cell_row(cell_dir)


def _balancing(services: GroupServices) -> str | None:
    if services.balancer is not None:
        return "nginx round-robin with upstream keepalive"
    return "client round-robin" if len(services.nodes) > 1 else None


def _expect_results(cell_dir: Path) -> None:
    for name in ("hdr.json", "window.json", "locust_stats.csv"):
        if not (cell_dir / name).exists():
            raise LocustFailed(f"locust left no {name} (see {cell_dir / 'locust.log'})")


def measure_ceiling(run: Run, processes: int) -> float:
    """Requests/s the generator reaches against a trivial server: its own ceiling."""
    ceiling_dir = run.run_dir / f"ceiling-{processes}p"
    if ceiling_dir.exists():
        _set_aside(ceiling_dir)
    ceiling_dir.mkdir()
    settings = Settings(
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
    _expect_results(ceiling_dir)
    window = json.loads((ceiling_dir / "window.json").read_text())
    histograms = HistogramSet.load(ceiling_dir / "hdr.json")
    rps = round(histograms.total(LATENCY) / (window["window_end"] - window["window_start"]), 1)
    write_json(
        ceiling_dir / "ceiling.json", {"processes": processes, "users": CEILING_USERS, "rps": rps}
    )
    return rps


def new_run(matrix_arg: str, results_root: Path) -> Run:
    """Validate the matrix, then create the run folder and its manifest."""
    matrix = load_matrix(matrix_arg)
    run_dir = create_run_folder(results_root, matrix.name)
    (run_dir / "cells").mkdir()
    shutil.copyfile(matrix.source, run_dir / MATRIX_COPY)
    cpus = CpuPlan.for_this_machine()
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
        },
        "pinning": cpus.describe(),
        "redis": "REDIS_URL" if redis_url_from_env() else "private redis-server per cell group",
        "load_balancing": sorted(
            {
                "nginx" if cell.settings.balancer == "nginx" else "client round-robin"
                for cell in matrix.cells
                if cell.topology == "multi"
            }
        ),
        "environment": environment(),
    }
    write_json(run_dir / "manifest.json", manifest)
    point_latest(results_root, run_dir)
    return Run(run_dir, matrix, cpus, Path(tempfile.mkdtemp(prefix="authbench-keys-")), manifest)


def resumed_run(run_arg: str, results_root: Path) -> Run:
    """Reopen an incomplete run folder with the matrix it was started with."""
    run_dir = Path(run_arg)
    if not run_dir.is_dir():
        run_dir = results_root / run_arg
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{run_arg}: no run folder with a manifest.json there")
    manifest = json.loads(manifest_path.read_text())
    matrix = load_matrix(str(run_dir / MATRIX_COPY))
    matrix = replace(matrix, name=manifest["matrix"]["name"])
    manifest.setdefault("resumed", []).append(utc_now())
    manifest["status"] = "incomplete"
    write_json(manifest_path, manifest)
    cpus = CpuPlan.for_this_machine()
    return Run(run_dir, matrix, cpus, Path(tempfile.mkdtemp(prefix="authbench-keys-")), manifest)


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


def execute(run: Run, with_micro: bool = True) -> list[dict[str, Any]]:
    """Run every unfinished cell, then the micro benchmark; return the metrics rows."""
    groups = interleaved_groups(run.matrix)
    total = sum(len(group) for group in groups)
    done = sum(
        1
        for group in groups
        for cell, rep in group
        if _cell_status(run.cells_dir / cell.cell_id(rep)) in FINISHED
    )
    progress = Progress(total, done)
    redis_url = redis_url_from_env()
    try:
        _ensure_ceilings(run, progress)
        for group in groups:
            pending = [
                (cell, rep)
                for cell, rep in group
                if _cell_status(run.cells_dir / cell.cell_id(rep)) not in FINISHED
            ]
            if pending:
                _run_group(run, pending, redis_url, progress)
        if with_micro and not (run.run_dir / "micro.csv").exists():
            progress.note("micro benchmark…")
            kdf = max(cell.settings.kdf_iterations for cell in run.matrix.cells)
            write_micro_csv(run_micro_on_any_redis(kdf), run.run_dir / "micro.csv")
    except KeyboardInterrupt:
        write_metrics(run.run_dir)
        write_json(run.run_dir / "manifest.json", {**run.manifest, "ended": utc_now()})
        raise RunInterrupted(
            f"interrupted: {progress.done} of {total} cells finished and kept in {run.run_dir}"
        ) from None
    finally:
        shutil.rmtree(run.keys_dir, ignore_errors=True)
    rows = write_metrics(run.run_dir)
    run.manifest.update(status="complete", ended=utc_now())
    write_json(run.run_dir / "manifest.json", run.manifest)
    return rows


def _run_group(
    run: Run, pending: list[tuple[Cell, int]], redis_url: str | None, progress: Progress
) -> None:
    first = pending[0][0]
    try:
        with group_services(run, first, redis_url) as services:
            for cell, rep in pending:
                progress.begin(_label(cell, rep))
                row = run_cell(run, cell, rep, services, progress)
                progress.end(cell_outcome(row))
    except (TargetFailedToStart, NginxUnavailable, redis.RedisError, OSError) as exc:
        for cell, rep in pending:
            if _cell_status(run.cells_dir / cell.cell_id(rep)) in FINISHED:
                continue
            progress.begin(_label(cell, rep))
            row = _record_failure(run, cell, rep, f"services did not start: {exc}")
            progress.end(cell_outcome(row))


def _record_failure(run: Run, cell: Cell, rep: int, reason: str) -> dict[str, Any]:
    cell_dir = run.cells_dir / cell.cell_id(rep)
    if cell_dir.exists():
        _set_aside(cell_dir)
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
    return (
        f"{cell.scheme} {cell.topology}-{cell.nodes}{balancer} {cell.scenario} {cell.users}u r{rep}"
    )


def print_summary(rows: list[dict[str, Any]], run: Run) -> None:
    """The one-screen summary and where the results are."""
    print()
    print(summary_table(rows))
    saturated = sum(1 for row in rows if row.get("saturated"))
    failed = sum(1 for row in rows if row["status"] != "complete")
    ceilings = ", ".join(f"{k} process(es): {v:.0f} rps" for k, v in sorted(run.ceilings.items()))
    print(f"\ngenerator ceiling: {ceilings}")
    if saturated:
        print(f"{saturated} cell(s) saturated the generator: their throughput is a floor")
    if failed:
        print(f"{failed} cell(s) failed: see their cell.json")
    print(f"results: {run.run_dir}")
