"""The decision table: per scheme, the costs and properties a team weighs, and a verdict.

Every figure carries its measured interval; a figure from a saturated or late cell is shown
with a mark (``†`` generator-saturated, ``‡`` offered load not applied) and never used for the
verdict. Verdicts are sentences built from the values: an overhead or a rank is named only
where the intervals separate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.claims import MIN_PAIRS
from analysis.palette import ordered
from analysis.resilience import when_redis_down
from analysis.stats import Estimate, difference, paired_difference
from analysis.tidy import RunData, via_balancer
from common.schemes import parse_scheme
from loadtests.load.verify import NO_PUBLIC_KEY

SATURATED_MARK = "†"
LATE_MARK = "‡"
HEADERS = [
    "scheme",
    "equal load: p50 / p99, server CPU",
    "at saturation (closed)",
    "capacity at SLO",
    "issuance (login)",
    "store load",
    "revocation (observed)",
    "credential",
    "multi-node",
    "when Redis is down",
    "verdict",
]


def not_measured(run: RunData, matrix: str, planned: str = "cells", **axes: Any) -> str:
    """A figure this run did not measure, and where to get it: the shipped matrix that measures
    it (``full`` measures everything), or, when this run planned it (a cell of its manifest's
    ``planned`` list matches ``axes``), that it failed or was unusable here."""
    listed = run.manifest.get("matrix", {}).get(planned) or []
    if axes and any(all(cell.get(k) == v for k, v in axes.items()) for cell in listed):
        return "not measured (failed or unusable in this run: see warnings)"
    if run.manifest.get("matrix", {}).get("name") == matrix:
        matrix = "full"
    return f"not measured (matrix {matrix})"


@dataclass(frozen=True)
class DecisionRow:
    """One scheme's line of the decision table."""

    scheme: str
    cells: list[str]


def shown(run: RunData, metric: str, digits: int, unit: str, **axes: Any) -> str:
    """A figure with its interval, marked when its cell was saturated or late."""
    found = run.get_flagged(metric, **axes)
    if found is None:
        return "n/a"
    estimate, flagged = found
    if not flagged:
        return estimate.text(digits, unit)
    rows = run.headline(**axes)
    mark = SATURATED_MARK if bool(rows.iloc[0]["saturated"]) else LATE_MARK
    return f"{estimate.text(digits, unit)} {mark}"


def _at(figure: str, operating_point: str) -> str:
    """A CPU figure with the load it was measured at (nothing to add to 'n/a'), before its
    saturated or late mark."""
    if figure == "n/a":
        return figure
    if figure.endswith((SATURATED_MARK, LATE_MARK)):
        return f"{figure[:-2]} at {operating_point} {figure[-1]}"
    return f"{figure} at {operating_point}"


def equal_axes(run: RunData) -> dict[str, Any]:
    """The equal-load read cells' axes (rate None when the run has none)."""
    return {"scenario": "read", "topology": "single", "model": "open",
            "rate": run.equal_load_rate("read")}  # fmt: skip


def _equal_load(run: RunData, scheme: str) -> str:
    axes = equal_axes(run)
    planned = {"scheme": scheme, "scenario": "read", "topology": "single", "equal_load": True}
    if axes["rate"] is None or run.get_flagged("p50_ms", scheme=scheme, **axes) is None:
        return not_measured(run, "quick", **planned)
    cpu = shown(run, "server_cpu_us_per_req", 0, "µs CPU", scheme=scheme, **axes)
    rate = f"{axes['rate']:g} req/s"
    return (
        f"{shown(run, 'p50_ms', 2, '', scheme=scheme, **axes)} / "
        f"{shown(run, 'p99_ms', 2, 'ms', scheme=scheme, **axes)}; {_at(cpu, rate)}"
    )


def _saturation(run: RunData, scheme: str) -> str:
    axes = {"scheme": scheme, "scenario": "read", "topology": "single"}
    if run.get_flagged("rps", **axes) is None:
        return not_measured(run, "quick", **axes, model="closed")
    return (
        f"{shown(run, 'rps', 0, 'req/s', **axes)}; "
        f"{_at(shown(run, 'server_cpu_us_per_req', 0, 'µs CPU', **axes), 'saturation')}; "
        f"p50 {shown(run, 'p50_ms', 2, 'ms', **axes)} at saturation"
    )


def capacity_text(row: Any, per_core: bool, detail: str = "") -> str:
    """A capacity with its interval over the searches; a generator-bound one is a floor.
    ``detail`` joins the parenthesis that says how many searches it rests on."""
    more = f"; {detail}" if detail else ""
    suffix = "_per_server_cpu" if per_core else ""
    value = float(row[f"capacity_rps{suffix}"])
    low = row.get(f"capacity_lo{suffix}", math.nan)
    high = row.get(f"capacity_hi{suffix}", math.nan)
    searches = int(row.get("searches", 1) or 1)
    if row["bound"] == "generator":
        return f"≥ {value:.0f} req/s (a floor: the load generator's limit, not the server's{more})"
    unit = "req/s per server core" if per_core else "req/s"
    if searches < 2 or low is None or low != low:
        return f"{value:.0f} {unit} (one search, no interval{more})"
    return f"{value:.0f} [{float(low):.0f}, {float(high):.0f}] {unit} ({searches} searches{more})"


def read_capacity(run: RunData, scheme: str) -> pd.Series | None:
    """capacity.csv's row of the scheme's single-node read search, if the run made one."""
    if run.capacity.empty:
        return None
    rows = run.capacity[
        (run.capacity["scheme"] == scheme)
        & (run.capacity["scenario"] == "read")
        & (run.capacity["topology"] == "single")
    ]
    return None if rows.empty else rows.iloc[0]


def _capacity(run: RunData, scheme: str) -> str:
    row = read_capacity(run, scheme)
    if row is None:
        planned = {"scheme": scheme, "scenario": "read", "topology": "single"}
        return not_measured(run, "quick", "capacity", **planned)
    detail = f"p99 ≤ {row['slo_p99_ms']:g} ms; stopped by {row['bound']}"
    return capacity_text(row, per_core=True, detail=detail)


def _store(run: RunData, scheme: str) -> str:
    if scheme == "none":
        return "no store"
    found = run.get_flagged("redis_cmds_per_req", scheme=scheme, scenario="read")
    if found is None:
        return not_measured(run, "quick", scheme=scheme, scenario="read")
    text = f"{found[0].value:.1f} cmd/request"
    for scenario in ("read", "login"):
        memory = run.get_flagged("redis_bytes_per_session", scheme=scheme, scenario=scenario)
        if memory is not None:
            kept = "session" if parse_scheme(scheme).is_session else "refresh family"
            return f"{text}; {memory[0].value:.0f} B per login ({kept})"
    return text


def _revocation(run: RunData, scheme: str) -> str:
    if scheme == "none":
        return "n/a"
    delay = run.get_flagged("revocation_delay_ms", scheme=scheme, scenario="revocation")
    longest = run.get_flagged("max_ms", scheme=scheme, scenario="revocation")
    if delay is None or longest is None:
        return not_measured(run, "quick", scheme=scheme, scenario="revocation")
    rows = run.headline(scheme=scheme, scenario="revocation")
    method = rows.iloc[0]["revocation_method"]
    ttl = rows.iloc[0]["access_ttl"]
    text = f"{delay[0].value:.1f} ms median, ≤ {longest[0].value:.1f} ms ({method})"
    if parse_scheme(scheme).plain_jwt:
        text += f"; access TTL {ttl:g} s"
    return text


def _multi(run: RunData, scheme: str) -> str:
    if scheme == "session-memory":
        return "single node only (sticky routing)"
    multi = run.matching(scheme=scheme, scenario="read", topology="multi")
    single = run.get("server_cpu_us_per_req", scheme=scheme, scenario="read", topology="single")
    if multi.empty or single is None:
        return not_measured(run, "full")
    parts = []
    for _, row in multi.sort_values("nodes").iterrows():
        ratio = row["server_cpu_us_per_req"].value / single.value
        parts.append(f"{row['nodes']} nodes{via_balancer(row)}: CPU/req ×{ratio:.2f}")
    return "; ".join(parts) + " (verified across nodes)"


def over_none(run: RunData, scheme: str, metric: str) -> Estimate | None:
    """A figure over none's at equal load: paired by repetition, else combined intervals."""
    axes = equal_axes(run)
    own = run.get(metric, scheme=scheme, **axes)
    base = run.get(metric, scheme="none", **axes)
    if own is None or base is None:
        return None
    pairs = run.pairs(metric, {"scheme": scheme, **axes}, {"scheme": "none", **axes})
    return paired_difference(pairs) if len(pairs) >= MIN_PAIRS else difference(own, base)


def _rank(run: RunData, schemes: list[str]) -> dict[str, str]:
    """'cheapest'/'most expensive' hot path, only where the interval separates from every other."""
    axes = equal_axes(run)
    costs = {
        s: e
        for s in schemes
        if s != "none" and (e := run.get("server_cpu_us_per_req", scheme=s, **axes)) is not None
    }
    ranks = {}
    for scheme, cost in costs.items():
        others = [e for s, e in costs.items() if s != scheme]
        if others and all(not cost.overlaps(o) and cost.value < o.value for o in others):
            ranks[scheme] = "cheapest authenticated hot path (separated from every other)"
        if others and all(not cost.overlaps(o) and cost.value > o.value for o in others):
            ranks[scheme] = "most expensive hot path (separated from every other)"
    return ranks


def _verdict(run: RunData, scheme: str, rank: dict[str, str]) -> str:
    if scheme == "none":
        return "Baseline: the framework without authentication."
    parts = [rank[scheme]] if scheme in rank else []
    extra = over_none(run, scheme, "server_cpu_us_per_req")
    if extra is None:
        parts.append("CPU over none at equal load not measured")
    elif extra.has_interval and (extra.low > 0 or extra.high < 0):
        rate = equal_axes(run)["rate"]
        parts.append(f"{extra.text(0, 'µs')} CPU/request over none at {rate:g} req/s (equal load)")
    else:
        shown = extra.text(0, "µs") if extra.has_interval else "no interval"
        parts.append(f"CPU/request over none at equal load undecided ({shown}: may be 0)")
    commands = run.get_flagged("redis_cmds_per_req", scheme=scheme, scenario="read")
    if commands is not None and commands[0].value >= 0.5:
        parts.append(f"{commands[0].value:.0f} store round trip per request")
    elif commands is not None:
        parts.append("no store on the hot path")
    if scheme == "session-memory":
        parts.append("state in one process: sticky routing only")
    if run.verify_checks(scheme).get(NO_PUBLIC_KEY):
        parts.append("every verifier holds the signing secret")
    return "; ".join(parts) + "."


def decision_rows(run: RunData) -> list[DecisionRow]:
    """A row per scheme measured on a single node."""
    single = run.summary[run.summary["topology"] == "single"]
    schemes = ordered(single["scheme"].unique().tolist())
    rank = _rank(run, schemes)
    rows = []
    for scheme in schemes:
        credential = run.get_flagged("credential_bytes", scheme=scheme)
        login_axes = {"scheme": scheme, "scenario": "login", "topology": "single"}
        rows.append(
            DecisionRow(
                scheme,
                [
                    scheme,
                    _equal_load(run, scheme),
                    _saturation(run, scheme),
                    _capacity(run, scheme),
                    "auth step "
                    + _at(shown(run, "auth_compute_mean_us", 0, "µs", **login_axes), "saturation"),
                    _store(run, scheme),
                    _revocation(run, scheme),
                    "0 B" if credential is None else f"{credential[0].value:.0f} B",
                    _multi(run, scheme),
                    when_redis_down(run, scheme),
                    _verdict(run, scheme, rank),
                ],
            )
        )
    return rows
