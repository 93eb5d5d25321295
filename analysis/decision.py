"""The decision table: per scheme, the costs and properties a team weighs, and a verdict."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from analysis.palette import ordered
from analysis.stats import Estimate
from analysis.tidy import RunData, via_balancer

HEADERS = [
    "scheme",
    "hot path (read)",
    "issuance (login)",
    "store load",
    "revocation delay",
    "credential",
    "multi-node",
    "verdict",
]


@dataclass(frozen=True)
class DecisionRow:
    """One scheme's line of the decision table."""

    scheme: str
    cells: list[str]


def _first(estimates: Iterable[Estimate | None]) -> Estimate | None:
    return next((e for e in estimates if e is not None), None)


def _fmt(estimate: Estimate | None, digits: int, unit: str) -> str:
    return "n/a" if estimate is None else estimate.text(digits, unit)


def _overhead(run: RunData, scheme: str) -> float | None:
    own = run.get("server_cpu_us_per_req", scheme=scheme, scenario="read", topology="single")
    base = run.get("server_cpu_us_per_req", scheme="none", scenario="read", topology="single")
    if own is None or base is None:
        return None
    return own.value - base.value


def _revocation(run: RunData, scheme: str) -> str:
    measured = run.get("p50_ms", scheme=scheme, scenario="revocation", topology="single")
    if measured is None:
        measured = run.get("p50_ms", scheme=scheme, scenario="revocation", topology="multi")
    if measured is not None:
        return f"{measured.text(1, 'ms')} (measured)"
    if scheme == "none":
        return "n/a"
    if scheme.startswith("session-") or scheme.endswith("+deny"):
        checks = run.verify_checks(scheme)
        return "at once (verified)" if "logout seen by every node" in checks else "at once"
    meta = run.cell_meta(scheme)
    ttl = meta.get("cell", {}).get("access_ttl", "access TTL")
    return f"at expiry (≤ {ttl} s)"


def _multi(run: RunData, scheme: str) -> str:
    if scheme == "session-memory":
        return "single node only (sticky routing)"
    closed = run.closed_model()
    rows = closed[
        (closed["scheme"] == scheme)
        & (closed["scenario"] == "read")
        & (closed["topology"] == "multi")
    ]
    single = run.get("server_cpu_us_per_req", scheme=scheme, scenario="read", topology="single")
    if rows.empty or single is None:
        return "not measured"
    parts = []
    for _, row in rows.sort_values("nodes").iterrows():
        ratio = row["server_cpu_us_per_req"].value / single.value
        parts.append(f"{row['nodes']} nodes{via_balancer(row)}: CPU/req ×{ratio:.2f}")
    return "; ".join(parts) + " (verified across nodes)"


def _verdict(run: RunData, scheme: str, rank: dict[str, int]) -> str:
    extra = _overhead(run, scheme)
    cost = f"+{extra:.0f} µs CPU/request over none" if extra is not None else "cost not measured"
    position = ""
    if rank and scheme in rank:
        if rank[scheme] == 0:
            position = "cheapest authenticated hot path; "
        elif rank[scheme] == len(rank) - 1:
            position = "most expensive hot path; "
    if scheme == "none":
        return "Baseline: the framework without authentication."
    if scheme == "session-memory":
        return (
            f"{position}{cost}; state lives in one process: no multi-node without sticky routing."
        )
    if scheme == "session-redis":
        return f"{position}{cost}; one store round trip per request; revocation is instant."
    if scheme.endswith("+deny"):
        return f"{position}{cost}; revocable at once, paying a store lookup per request."
    alg = scheme.removeprefix("jwt-")
    if alg.startswith("HS"):
        return f"{position}{cost}; stateless, but every verifier holds the signing secret."
    if alg.startswith(("RS", "PS")):
        return (
            f"{position}{cost}; stateless, public-key verify; signing (login) is the costly side."
        )
    return f"{position}{cost}; stateless, public-key verify, small signatures."


def decision_rows(run: RunData) -> list[DecisionRow]:
    """A row per scheme that has a single-node read or login cell."""
    single = run.summary[run.summary["topology"] == "single"]
    schemes = ordered(single["scheme"].tolist())
    overheads = {s: _overhead(run, s) for s in schemes if s != "none"}
    known = sorted((v, s) for s, v in overheads.items() if v is not None and not math.isnan(v))
    rank = {scheme: index for index, (_, scheme) in enumerate(known)}
    rows = []
    for scheme in schemes:
        cpu = run.get("server_cpu_us_per_req", scheme=scheme, scenario="read", topology="single")
        p50 = run.get("p50_ms", scheme=scheme, scenario="read", topology="single")
        issue = run.get("cpu_auth_us", scheme=scheme, scenario="login", topology="single")
        commands = run.get("redis_cmds_per_req", scheme=scheme, scenario="read", topology="single")
        memory = _first(
            run.get("redis_bytes_per_session", scheme=scheme, scenario=scenario, topology="single")
            for scenario in ("read", "login")
        )
        credential = run.get("credential_bytes", scheme=scheme, scenario="read", topology="single")
        hot = f"{_fmt(cpu, 0, 'µs CPU')}, p50 {_fmt(p50, 2, 'ms')}"
        store = "no store" if commands is None else f"{commands.value:.1f} cmd/request"
        if memory is not None:
            kept = "session" if scheme.startswith("session-") else "refresh family"
            store += f"; {memory.value:.0f} B per login ({kept})"
        rows.append(
            DecisionRow(
                scheme,
                [
                    scheme,
                    hot,
                    f"auth step {_fmt(issue, 0, 'µs')}",
                    store,
                    _revocation(run, scheme),
                    "0 B" if credential is None else f"{credential.value:.0f} B",
                    _multi(run, scheme),
                    _verdict(run, scheme, rank),
                ],
            )
        )
    return rows
