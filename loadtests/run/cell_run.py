"""Running one cell: its services (Redis, nodes, balancer), the verify gate, the measured window.

A cell's folder receives everything it measured (cell.json, the generator's parts and merged
histograms, samples.csv, Locust's CSVs and log) before the next cell starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from loadtests.faults import fault_named
from loadtests.faults.base import FaultUnavailable
from loadtests.faults.injector import FaultInjector
from loadtests.load.generator_parts import WINDOW_OPEN_MARKER
from loadtests.load.http_probe import service_counters
from loadtests.load.locust_process import LocustFailed, LocustRun
from loadtests.load.verify import THROUGH_BALANCER, Expected, VerifyFailed, verify_target
from loadtests.measure.cell_metrics import cell_row
from loadtests.measure.sampling import Sampler, idle_redis_cpu, redis_key_memory
from loadtests.run.console import Progress
from loadtests.run.matrix import Cell, Matrix
from loadtests.run.run_folder import utc_now, write_json
from loadtests.services.delay_proxy import DelayProxy, added_round_trip_ms
from loadtests.services.nginx_balancer import NginxBalancer
from loadtests.services.private_redis import PrivateRedis
from loadtests.services.split_services import can_mint, start_split
from loadtests.services.target import ExternalNode, Target
from loadtests.services.target_process import TargetNode, start_nodes


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the generator uses and which the servers and Redis use (None: no pinning)."""

    generator: set[int] | None
    servers: set[int] | None

    @classmethod
    def for_this_machine(cls, generator_processes: int = 1) -> CpuPlan:
        """K generator processes get K CPUs of their own where the machine has at least 2K."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        generator = max(1, min(generator_processes, len(cpus) // 2))
        return cls(set(cpus[:generator]), set(cpus[generator:]))

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
    target: Target | None = None  # --target-url: the user's server, which the run never starts

    @property
    def cells_dir(self) -> Path:
        return self.run_dir / "cells"


def expected_identity(cell: Cell) -> Expected:
    """What the nodes of a cell must report at /healthz."""
    planted = cell.settings.planted_cost_us
    if cell.scheme == "none":
        return Expected("none", None, None, False, planted_cost_us=planted)
    cache = cell.settings.store_cache_s
    if cell.kind.is_session:
        return Expected("session", None, cell.store, False, planted_cost_us=planted,
                        store_cache_s=cache)  # fmt: skip
    return Expected("jwt", cell.alg, "redis", cell.denylist, cell.introspect, planted, cache,
                    library=cell.settings.library)  # fmt: skip


def set_aside(cell_dir: Path) -> None:
    """Keep an unfinished attempt's raw files under another name; never overwrite them."""
    attempt = 1
    while (target := cell_dir.with_name(f"{cell_dir.name}.attempt{attempt}")).exists():
        attempt += 1
    cell_dir.rename(target)


@dataclass
class GroupServices:
    """What a group of cells runs against: nodes, their Redis, and an optional balancer."""

    nodes: list[TargetNode] | list[ExternalNode]
    redis_url: str | None
    balancer: NginxBalancer | None
    redis_idle_cpu_s_per_s: float | None = None
    proxy: DelayProxy | None = None
    store_delay_measured_ms: float | None = None
    private_redis: PrivateRedis | None = None
    issuer: TargetNode | None = None  # split: the issuer; ``nodes`` are the resource nodes
    expected: Expected | None = None  # what the nodes must report, when not the cell's own

    @property
    def node_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def issuer_url(self) -> str | None:
        return self.issuer.url if self.issuer else None

    @property
    def load_urls(self) -> list[str]:
        """Where Locust sends requests: the balancer, or every node in turn."""
        return [self.balancer.url] if self.balancer else self.node_urls


@contextmanager
def group_services(run: Run, cell: Cell, redis_url: str | None) -> Iterator[GroupServices]:
    """Redis (private unless REDIS_URL), nodes and balancer of one group; stopped on exit.
    A --target-url run starts nothing: the nodes are the user's, and so is REDIS_URL if set."""
    if run.target is not None:
        idle = idle_redis_cpu(redis_url) if redis_url else None
        nodes = list(run.target.nodes)
        yield GroupServices(nodes, redis_url, None, idle, expected=run.target.expected)
        return
    private: PrivateRedis | None = None
    if cell.store == "redis" and redis_url is None:
        private = PrivateRedis(append_only=cell.settings.persistence == "aof")
    nodes: list[TargetNode] = []
    issuer: TargetNode | None = None
    balancer: NginxBalancer | None = None
    proxy: DelayProxy | None = None
    measured: float | None = None
    try:
        if private is not None:
            private.start(run.cpus.servers)
        url = private.url if private else (redis_url if cell.store == "redis" else None)
        if url and private is None:
            _check_reachable(url)
        node_url = url
        if url and cell.settings.store_delay_ms > 0:
            # The store one zone away: the nodes reach Redis through the delay proxy, which
            # runs on the generator's CPU; the sampler still reads Redis directly.
            proxy = DelayProxy(url, cell.settings.store_delay_ms, run.cpus.generator)
            proxy.start()
            node_url = proxy.url
            measured = added_round_trip_ms(url, proxy.url)
        env = {"REDIS_URL": node_url} if node_url else {}
        if cell.is_split:
            issuer, nodes = start_split(cell, run.keys_dir, env, run.cpus.servers)
        else:
            args = [*cell.server_args(), "--keys-dir", str(run.keys_dir)]
            nodes = start_nodes(args, cell.nodes, env, run.cpus.servers)
        if cell.settings.balancer == "nginx":
            balancer = NginxBalancer([node.url for node in nodes], run.cpus.servers)
            balancer.start()
        idle = idle_redis_cpu(url) if url else None
        yield GroupServices(nodes, url, balancer, idle, proxy, measured, private, issuer)
    finally:
        if balancer is not None:
            balancer.close()
        if proxy is not None:
            proxy.close()
        for node in [*nodes, *([issuer] if issuer else [])]:
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
    run: Run,
    cell: Cell,
    repetition: int,
    services: GroupServices,
    progress: Progress,
    cell_dir: Path | None = None,
    verified: dict[str, Any] | None = None,
    stop_above_ms: float | None = None,
) -> dict[str, Any]:
    """Verify, then measure one cell; write its folder; return its metrics row.

    ``verified``: the gate's record from an earlier cell on these same services (a capacity
    search's later probes), which then stands for this cell's. ``stop_above_ms``: a capacity
    probe's SLO bound, at which a lone Locust ends the window once its p99 is certain to
    exceed it (see :mod:`loadtests.load.recorder`).
    """
    cell_id = cell.cell_id(repetition)
    cell_dir = cell_dir or run.cells_dir / cell_id
    if cell_dir.exists():
        set_aside(cell_dir)
    cell_dir.mkdir(parents=True)
    meta: dict[str, Any] = {
        "cell_id": cell_id,
        "repetition": repetition,
        "cell": cell.describe(),
        "status": "running",
        "started": utc_now(),
        "nodes": services.node_urls,
        "load_balancing": _balancing(services, cell),
        "generator_ceiling_rps": run.ceilings.get(cell.settings.generator_processes),
        "redis_idle_cpu_s_per_s": services.redis_idle_cpu_s_per_s,
        "store_delay_measured_ms": services.store_delay_measured_ms,
        **run.cpus.describe(),
    }
    write_json(cell_dir / "cell.json", meta)
    injector: FaultInjector | None = None
    try:
        injector = _injector(run, cell, cell_dir, services)
        meta["verify"] = verified or _verify(services, cell, progress)
        progress.phase(
            f"warm-up {cell.settings.warmup_s:g}s, measure {cell.settings.duration_s:g}s"
        )
        processes, counters = _watched(services)
        if services.issuer is not None:
            meta["split"] = {"issuer": services.issuer.url, "can_mint": can_mint(cell)}
        split = counters if services.issuer is not None else None
        window = (cell_dir / WINDOW_OPEN_MARKER, cell.settings.duration_s)
        with Sampler(processes, services.redis_url, split, window) as sampler:
            extra = _locust_settings(run, cell, services, stop_above_ms)
            if "AUTHBENCH_STOP_ABOVE_MS" in extra:
                meta["stop_above_ms"] = stop_above_ms
            locust = LocustRun(cell, services.load_urls, cell_dir, run.cpus.generator, extra)
            try:
                if injector is not None:
                    injector.start()
                sampler.add_process("generator", locust.pid)
                locust.wait()
            finally:
                locust.stop()
                if injector is not None:
                    write_json(cell_dir / "fault.json", injector.undo())
        sampler.save(cell_dir / "samples.csv")
        _record_service_state(meta, services, counters)
        expect_results(cell_dir, cell.settings.duration_s)
        meta["status"] = "complete"
    except VerifyFailed as exc:
        meta.update(status="failed", reason=f"verify gate: {exc}")
    except (LocustFailed, FaultUnavailable) as exc:
        meta.update(status="failed", reason=str(exc))
    except BaseException:
        meta.update(status="interrupted", reason="run interrupted during this cell")
        raise
    finally:
        meta["ended"] = utc_now()
        write_json(cell_dir / "cell.json", meta)
    return cell_row(cell_dir)


def _record_service_state(
    meta: dict[str, Any], services: GroupServices, counters: dict[str, str]
) -> None:
    """What the services hold after the window: a split's counters (read at the window's
    edge) and the memory Redis spends on credentials."""
    if services.issuer is not None:
        meta["split"]["counters"] = {name: service_counters(url) for name, url in counters.items()}
    if services.redis_url:
        meta["redis_key_memory"] = redis_key_memory(services.redis_url)


def _locust_settings(
    run: Run, cell: Cell, services: GroupServices, stop_above_ms: float | None
) -> dict[str, str]:
    """The run-level settings a cell's Locust reads beside the cell's own: the keys, the
    split's issuer, and a capacity probe's SLO bound (a lone Locust only)."""
    extra = {"AUTHBENCH_KEYS_DIR": str(run.keys_dir)}
    if stop_above_ms is not None and cell.settings.generator_processes == 1:
        extra["AUTHBENCH_STOP_ABOVE_MS"] = f"{stop_above_ms:g}"
    if services.issuer is not None:
        extra["AUTHBENCH_ISSUER"] = services.issuer.url
    return extra


def _injector(
    run: Run, cell: Cell, cell_dir: Path, services: GroupServices
) -> FaultInjector | None:
    """The cell's fault injector (None when nothing is injected, as in a kid flood)."""
    if not cell.settings.fault or not fault_named(cell.settings.fault).injected:
        return None
    return FaultInjector(
        cell, cell_dir, services.private_redis, services.nodes, services.issuer, run.keys_dir
    )


def _watched(services: GroupServices) -> tuple[dict[str, int], dict[str, str]]:
    """The processes whose CPU the sampler reads, and the services whose counters it reads."""
    processes = {
        f"node{index}": node.pid for index, node in enumerate(services.nodes) if node.pid
    }  # a target's node without --target-pid: its CPU is not measured
    counters = {f"node{index}": url for index, url in enumerate(services.node_urls)}
    if services.issuer is not None:
        processes["issuer"] = services.issuer.pid
        counters["issuer"] = services.issuer.url
    if services.balancer is not None and services.balancer.pid is not None:
        processes["balancer"] = services.balancer.pid
    if services.proxy is not None and services.proxy.pid is not None:
        processes["proxy"] = services.proxy.pid
    return processes, counters


def _verify(services: GroupServices, cell: Cell, progress: Progress) -> dict[str, Any]:
    """The verify gate over the nodes (and the balancer): what cell.json records of it."""
    progress.phase("verify")
    verified = _verify_nodes(services, cell)
    if services.balancer is not None:
        verify_target([services.balancer.url], expected_identity(cell))
        verified.checks[THROUGH_BALANCER] = True
    return {
        "checks": verified.checks,
        "credential_header": verified.credential_header,
        "credential_bytes": verified.credential_bytes,
    }


def _verify_nodes(services: GroupServices, cell: Cell) -> Any:
    """The gate over every node; memory sessions live in one node, so each is its own target;
    in split, the issuer logs in and out and every resource node must judge alike."""
    expected = services.expected or expected_identity(cell)
    node_urls = services.node_urls
    if services.issuer is not None:
        return verify_target(node_urls, expected, issuer=services.issuer.url)
    if not cell.sticky_users:
        return verify_target(node_urls, expected)
    for node in node_urls[1:]:
        verify_target([node], expected)
    return verify_target(node_urls[:1], expected)


def _balancing(services: GroupServices, cell: Cell) -> str | None:
    if services.balancer is not None:
        return "nginx round-robin with upstream keepalive"
    if cell.sticky_users:
        return "client-side, each user sticks to one node"
    return "client round-robin" if len(services.nodes) > 1 else None


WINDOW_SHORTFALL = 0.95  # a window closed before this share of its duration was cut short


def expect_results(cell_dir: Path, duration_s: float) -> dict[str, Any]:
    """Locust left every file, and its window lasted as long as asked: a window cut short
    (Locust stopped before the recorder closed it) fails the cell, which --resume retries,
    unless the recorder ended it on purpose (a probe whose p99 was certain to fail).
    The window it read (window.json)."""
    for name in ("hdr.json", "window.json", "locust_stats.csv"):
        if not (cell_dir / name).exists():
            raise LocustFailed(f"locust left no {name} (see {cell_dir / 'locust.log'})")
    window = json.loads((cell_dir / "window.json").read_text())
    lasted = window["window_end"] - window["window_start"]
    if lasted < WINDOW_SHORTFALL * duration_s and not window.get("stopped_early"):
        raise LocustFailed(f"the window lasted {lasted:.3f} s of {duration_s:g} s: cut short")
    return window
