"""The compose stack built and run for real: ``make compose-test`` and ``make compose-bench``.

``test`` starts dockerd when none runs (configured for the 198.18.0.0/15 benchmark range only
when it has no configuration yet), builds the images (local stand-ins from Debian packages when
the upstream ones are not on the machine and no registry answers: ``deploy/local-images.sh``),
brings up Redis, two app replicas, nginx, a Locust master and two workers, passes the verify
gate through nginx, runs a short read load through it, checks that both replicas answered
(their node ids) and that the merged HDR count is the sum over the workers, and writes the run
in the usual run-folder layout. Everything it started is torn down, on failure and Ctrl-C too:
containers, network, volume, and the dockerd it started. Each step's wall time is printed.

``collect DIR`` turns what a compose load run left in DIR (the workers' parts, Locust's CSVs)
into ``results/<run-id>/``, so ``python -m analysis report`` reads it like any other run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil

from common.command_line import OneLineParser
from loadtests.load.generator_parts import PARTS_DIR, merge_parts
from loadtests.load.http_probe import call
from loadtests.load.locust_process import USER_CLASSES
from loadtests.load.verify import Expected, verify_target
from loadtests.measure.cell_metrics import write_metrics
from loadtests.run.run_folder import (
    SCHEMA_VERSION,
    create_run_folder,
    environment,
    point_latest,
    utc_now,
    write_json,
)
from loadtests.services.ports import free_port, wait_for_port
from loadtests.services.processes import stop_on_sigterm_like_ctrl_c

ROOT = Path(__file__).resolve().parent.parent
DAEMON_JSON = Path("/etc/docker/daemon.json")
DAEMON_CONFIG = {
    "bip": "198.18.0.1/24",
    "default-address-pools": [{"base": "198.18.16.0/20", "size": 24}],
}
PROJECT = "authbench-test"
BENCHMARK_RANGE = ipaddress.ip_network("198.18.0.0/15")
LOCAL_IMAGES = {
    "BASE_IMAGE": "authbench-python:local",
    "REDIS_IMAGE": "authbench-redis:local",
    "NGINX_IMAGE": "authbench-nginx:local",
}
UPSTREAM_IMAGES = ("python:3.11-slim", "redis:7-alpine", "nginx:1.27-alpine")
REPLICAS = 2
WORKERS = 2
MIN_REPLICA_CPU_S = 0.2  # a replica that served its share of 4 s of load used far more


class ComposeFailed(Exception):
    """A step of the compose stack failed; the message says which and why, in one line."""


def _run(command: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)  # fmt: skip
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ComposeFailed(f"{' '.join(command[:4])} failed: {' | '.join(tail)}")
    return done.stdout


@contextmanager
def timed(step: str, times: dict[str, float]) -> Iterator[None]:
    """Say what a step does, then how long it took."""
    print(f"compose-test: {step}…", flush=True)
    started = time.monotonic()
    try:
        yield
    finally:
        times[step] = round(time.monotonic() - started, 1)
        print(f"compose-test: {step} took {times[step]} s", flush=True)


def docker_answers() -> bool:
    """Whether a Docker engine answers on this machine."""
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@contextmanager
def docker_engine() -> Iterator[None]:
    """dockerd for the duration: the running one, or one started (and stopped) here."""
    if docker_answers():
        yield
        return
    configured = json.loads(DAEMON_JSON.read_text()) if DAEMON_JSON.exists() else {}
    if any(key not in configured for key in DAEMON_CONFIG):
        DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
        DAEMON_JSON.write_text(json.dumps({**DAEMON_CONFIG, **configured}, indent=1) + "\n")
    with Path("/tmp/authbench-dockerd.log").open("wb") as log:
        daemon = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not docker_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise ComposeFailed("dockerd did not start (see /tmp/authbench-dockerd.log)")
            time.sleep(0.5)
        yield
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def image_settings() -> dict[str, str]:
    """Upstream images when all are on the machine, else the local stand-ins (built if needed)."""
    present = all(
        subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0
        for image in UPSTREAM_IMAGES
    )
    if present:
        return {}
    subprocess.run([str(ROOT / "deploy" / "local-images.sh")], check=True, cwd=ROOT)
    return dict(LOCAL_IMAGES)


class Stack:
    """docker-compose with this project's name and settings; ``down`` removes everything."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.env = {**os.environ, **settings}

    def compose(self, *args: str, timeout: float = 600) -> str:
        command = ["docker-compose", "-p", PROJECT, "--profile", "sut", "--profile", "loadgen"]
        return _run([*command, *args], self.env, timeout)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", timeout=120)


def replica_cpu_s(stack: Stack) -> dict[str, float]:
    """CPU seconds each app replica has used so far, read from its processes on this host."""
    used = {}
    for container in stack.compose("ps", "-q", "app").split():
        name, pid = _run(["docker", "inspect", "-f", "{{.Name}} {{.State.Pid}}", container]).split()
        process = psutil.Process(int(pid))
        used[name.lstrip("/")] = sum(
            p.cpu_times().user + p.cpu_times().system
            for p in [process, *process.children(recursive=True)]
        )
    return used


def nodes_answering(url: str, tries: int = 20) -> dict[str, int]:
    """How many of ``tries`` health checks through the balancer each node id answered."""
    seen: dict[str, int] = {}
    for _ in range(tries):
        node = (call(url, "GET", "/healthz").body or {}).get("node")
        seen[str(node)] = seen.get(str(node), 0) + 1
    return seen


def collect(source: Path, results_root: Path, meta: dict[str, Any]) -> Path:
    """A compose load run's files as results/<run-id>/ with one complete cell."""
    merged = merge_parts(source / "hdr.json")
    if merged is None:
        raise ComposeFailed(f"{source}: no generator parts to collect")
    run_dir = create_run_folder(results_root, "compose")
    scenario = meta["scenario"]
    cell_id = (
        f"{meta['scheme']}__compose-{meta['replicas']}__{scenario}__closed-{meta['users']}u__r1"
    )
    cell_dir = run_dir / "cells" / cell_id
    cell_dir.mkdir(parents=True)
    shutil.copytree(source / PARTS_DIR, cell_dir / PARTS_DIR)
    for path in source.iterdir():
        if path.is_file():
            shutil.copyfile(path, cell_dir / path.name)
    (cell_dir / "samples.csv").write_text("t,source,metric,value\n")  # sampled in containers: none
    scheme, alg = meta["scheme"], meta.get("alg") or ""
    cell = {"scheme": scheme, "alg": alg, "store": "redis" if scheme != "none" else "",
            "denylist": False, "topology": "compose", "nodes": meta["replicas"],
            "scenario": scenario, "users": meta["users"], "model": "closed", "rate": 0.0,
            "warmup_s": meta["warmup_s"], "duration_s": meta["duration_s"], "repetitions": 1,
            "population": meta["population"], "kdf_iterations": meta["kdf_iterations"],
            "access_ttl": 300, "generator_processes": meta["workers"], "balancer": "nginx",
            "equal_load": False}  # fmt: skip
    write_json(cell_dir / "cell.json", {
        "cell_id": cell_id, "repetition": 1, "cell": cell, "status": "complete",
        "load_balancing": "nginx in compose", "generator_cpus": None, "server_cpus": None,
    })  # fmt: skip
    write_json(run_dir / "manifest.json", {
        "schema_version": SCHEMA_VERSION, "run_id": run_dir.name, "status": "complete",
        "started": meta["started"], "ended": utc_now(),
        "matrix": {"name": "compose", "description": "the compose stack", "repetitions": 1,
                   "cells": [{"cell_id": cell_id, **cell}]},
        "topology": "compose", "images": meta["images"], "replicas": meta["replicas"],
        "workers": meta["workers"], "pinning": {"pinned": False}, "calibration": {},
        "equal_load": {}, "environment": environment(),
    })  # fmt: skip
    write_metrics(run_dir)
    point_latest(results_root, run_dir)
    return run_dir


def compose_test(results_root: Path) -> dict[str, Any]:
    """Build, run, check and tear down the stack; the figures for the console."""
    times: dict[str, float] = {}
    port = free_port()
    load = {"WARMUP_S": "1", "DURATION_S": "4", "RUN_TIME": "7s", "LOCUST_USERS": "8",
            "WORKERS": str(WORKERS), "TARGET": "http://nginx:80", "SCHEME": "session",
            "STORE": "redis", "USERS": "100", "KDF_ITERATIONS": "1000",
            "SUT_PORT": str(port)}  # fmt: skip
    started = utc_now()
    source = ROOT / "results" / "compose"
    with ExitStack() as running:
        with timed("daemon", times):
            running.enter_context(docker_engine())
        with timed("images", times):
            images = image_settings()
        stack = Stack({**images, **load})
        running.callback(lambda: _timed_down(stack, times))
        with timed("app image", times):
            stack.compose("build", "--force-rm", "app")
        with timed("up", times):
            stack.compose("up", "-d", "--scale", f"app={REPLICAS}", "redis", "app", "nginx")
            url = f"http://127.0.0.1:{port}"
            if not wait_for_port("127.0.0.1", port, 60):
                raise ComposeFailed(f"nginx did not listen on {url}")
            _wait_healthy(url)
            _check_addresses(stack)
            verify_target([url], Expected("session", None, "redis", False))
        with timed("load", times):
            shutil.rmtree(source, ignore_errors=True)
            before = replica_cpu_s(stack)
            stack.compose("up", "--scale", f"locust-worker={WORKERS}",
                          "--abort-on-container-exit", "--exit-code-from", "locust-master",
                          "locust-master", "locust-worker", timeout=300)  # fmt: skip
            after = replica_cpu_s(stack)
        answered = nodes_answering(url)
        replica_cpu = {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
    run_dir = collect(source, results_root, {
        "scheme": "session-redis", "scenario": "read", "replicas": REPLICAS, "workers": WORKERS,
        "users": 8, "warmup_s": 1.0, "duration_s": 4.0, "population": 100, "kdf_iterations": 1000,
        "started": started, "images": images or "upstream",
    })  # fmt: skip
    generators = json.loads(next(run_dir.glob("cells/*/generators.json")).read_text())
    per_worker = {name: part["requests"] for name, part in generators["processes"].items()}
    return {"times": times, "nodes": answered, "per_worker": per_worker, "replica_cpu": replica_cpu,
            "merged": generators["merged_requests"], "run_dir": run_dir}  # fmt: skip


def _check_addresses(stack: Stack) -> None:
    """Refuse to go on when the stack's network is outside the benchmark range 198.18.0.0/15."""
    network = f"{PROJECT}_default"
    subnets = _run(["docker", "network", "inspect", network, "--format",
                    "{{range .IPAM.Config}}{{.Subnet}} {{end}}"], stack.env).split()  # fmt: skip
    for subnet in subnets:
        if not ipaddress.ip_network(subnet).subnet_of(BENCHMARK_RANGE):
            raise ComposeFailed(
                f"{network} has {subnet}, outside {BENCHMARK_RANGE}: configure dockerd's "
                f"default-address-pools as {DAEMON_CONFIG['default-address-pools']}"
            )


def _timed_down(stack: Stack, times: dict[str, float]) -> None:
    with timed("down", times):
        stack.down()


def _wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if call(url, "GET", "/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise ComposeFailed(f"{url}/healthz never answered 200")


def check(figures: dict[str, Any]) -> list[str]:
    """What compose-test requires of a finished run; problems, one line each."""
    problems = []
    if len(figures["nodes"]) != REPLICAS:
        problems.append(f"expected {REPLICAS} replicas to answer, saw {figures['nodes']}")
    busy = [name for name, cpu_s in figures["replica_cpu"].items() if cpu_s >= MIN_REPLICA_CPU_S]
    if len(busy) != REPLICAS:
        problems.append(
            f"expected every replica to serve the load, CPU s: {figures['replica_cpu']}"
        )
    if len(figures["per_worker"]) != WORKERS or min(figures["per_worker"].values()) <= 0:
        problems.append(f"expected {WORKERS} workers with requests, saw {figures['per_worker']}")
    if figures["merged"] != sum(figures["per_worker"].values()):
        problems.append(f"merged {figures['merged']} != sum over workers {figures['per_worker']}")
    return problems


def main(argv: list[str] | None = None) -> None:
    """``python -m loadtests.compose_stack test`` or ``collect DIR``."""
    parser = _ComposeParser(prog="python -m loadtests.compose_stack")
    parser.add_argument("--results", default="results", help="results root (default: results)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_ComposeParser)
    commands.add_parser("test", help="build, run, check and tear down the compose stack")
    collect_parser = commands.add_parser("collect", help="a compose load run as a run folder")
    collect_parser.add_argument("folder", help="where the load run left its files")
    try:
        args = parser.parse_args(argv)
    except ComposeInputError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    stop_on_sigterm_like_ctrl_c()
    results_root = Path(args.results)
    prog = "compose-bench" if args.command == "collect" else "compose-test"
    try:
        if args.command == "collect":
            meta = meta_from_env(os.environ)
            print(f"run folder: {collect(Path(args.folder), results_root, meta)}")
            return
        figures = compose_test(results_root)
    except ComposeInputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (ComposeFailed, OSError, subprocess.SubprocessError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("compose-test: interrupted; everything it started was stopped", file=sys.stderr)
        sys.exit(130)
    print(f"compose-test: step times (s): {figures['times']}")
    print(f"compose-test: node ids answering through nginx: {figures['nodes']}")
    print(f"compose-test: CPU seconds per replica during the load: {figures['replica_cpu']}")
    print(f"compose-test: requests per worker {figures['per_worker']}, merged {figures['merged']}")
    print(f"compose-test: run folder {figures['run_dir']}")
    problems = check(figures)
    for problem in problems:
        print(f"compose-test: FAILED: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print("compose-test: passed")


class ComposeInputError(ValueError):
    """A make variable that cannot describe a compose-bench run; the message names it."""


class _ComposeParser(OneLineParser):
    error_class = ComposeInputError


def _env_number(env: Mapping[str, str], name: str, default: str, kind: type = int) -> Any:
    text = env.get(name) or default
    try:
        return kind(text)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        raise ComposeInputError(f"{name}={text!r} is not a {noun}") from None


def meta_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """What a compose-bench load run was, from the variables docker-compose used."""
    kind, alg = env.get("SCHEME", "jwt"), env.get("ALG", "") or "RS256"
    scheme = {"jwt": f"jwt-{alg}", "session": f"session-{env.get('STORE') or 'redis'}"}
    scenarios = {user_class: scenario for scenario, user_class in USER_CLASSES.items()}
    user_class = env.get("SCENARIO") or "ReadUser"
    if user_class not in scenarios:
        raise ComposeInputError(f"SCENARIO={user_class!r}: choose from {', '.join(scenarios)}")
    return {
        "scheme": scheme.get(kind, kind), "alg": alg if kind == "jwt" else "",
        "scenario": scenarios[user_class],
        "replicas": _env_number(env, "REPLICAS", "2"), "workers": _env_number(env, "WORKERS", "2"),
        "users": _env_number(env, "LOCUST_USERS", "64"),
        "warmup_s": _env_number(env, "WARMUP_S", "10", float),
        "duration_s": _env_number(env, "DURATION_S", "60", float),
        "population": _env_number(env, "USERS", "1000"),
        "kdf_iterations": _env_number(env, "KDF_ITERATIONS", "10000"), "started": utc_now(),
        "images": {k: env[k] for k in ("BASE_IMAGE", "REDIS_IMAGE", "NGINX_IMAGE") if k in env}
        or "upstream",
    }  # fmt: skip


if __name__ == "__main__":
    main()
