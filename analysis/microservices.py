"""The microservices section: the split topology's cost per user request against the length of
the call chain, issuer load, store load, who can mint tokens, key rotation and a kid flood.

It checks the seed's inter-service claim ("services can trust the data in a verified JWT without
querying the authentication service") against this run: local verification must show no issuer
call per request where introspection shows one per hop.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis.charts import Chart, save_figure
from analysis.fault_charts import timeline_charts
from analysis.palette import colour, ordered
from analysis.resilience import Section, Table
from analysis.stats import Estimate
from analysis.tidy import RunData
from common.schemes import parse_scheme

COST_HEADERS = [
    "scheme", "hops", "p50", "p99", "server CPU per user request", "issuer CPU per request",
    "resource CPU per hop", "issuer calls per request", "Redis commands per request",
    "can mint tokens",
]  # fmt: skip
ROTATION_HEADERS = ["scheme", "false rejects", "JWKS fetches it caused",
                    "rotation → new key accepted on every node", "p99 over the window"]  # fmt: skip
FLOOD_HEADERS = ["scheme", "share of reads with a made-up kid", "made-up-kid requests",
                 "JWKS fetches (cooldown bound)", "failed valid reads", "valid p99"]  # fmt: skip


def _text(value: object, digits: int, unit: str = "") -> str:
    if isinstance(value, Estimate):
        return value.text(digits, unit)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}{' ' + unit if unit else ''}"


def _divided(value: object, by: int) -> object:
    """An estimate (or plain value) divided by a whole number, interval included."""
    if not isinstance(value, Estimate):
        return value
    return replace(value, value=value.value / by, low=value.low / by, high=value.high / by,
                   spread=value.spread / by)  # fmt: skip


def _split_summary(run: RunData) -> pd.DataFrame:
    rows = run.summary
    return rows[(rows["topology"] == "split") & (rows["fault"].fillna("") == "")]


def operating_point(run: RunData) -> str:
    """Where the split cost figures were measured: at saturation, or at an offered rate."""
    summary = _split_summary(run)
    if not summary.empty and (summary["model"] == "closed").all():
        return "at saturation (closed model: CPU per request at that operating point)"
    rates = sorted({f"{float(r):g}" for r in summary["rate"].dropna()})
    return f"at {' and '.join(rates) or 'one'} req/s offered (open model)"


def cost_table(run: RunData) -> list[list[str]]:
    """Per scheme and chain length: latency, CPU per user request, issuer and store load."""
    summary = _split_summary(run)
    cells = run.complete()
    can_mint = cells[cells["topology"] == "split"].groupby("scheme")["can_mint"].max()
    table = []
    for scheme in ordered(summary["scheme"].unique().tolist()):
        for _, row in summary[summary["scheme"] == scheme].sort_values("hops").iterrows():
            hops = int(row["hops"])
            per_hop = _divided(row["resource_cpu_us_per_req"], hops)
            table.append(
                [
                    f"{scheme}{' ‡' if row['late'] else ''}",
                    str(hops),
                    _text(row["p50_ms"], 2, "ms"),
                    _text(row["p99_ms"], 2, "ms"),
                    _text(row["server_cpu_us_per_req"], 0, "µs"),
                    _text(row["issuer_cpu_us_per_req"], 0, "µs"),
                    _text(per_hop, 0, "µs"),
                    _text(row["issuer_calls_per_req"], 2),
                    _text(row["redis_cmds_per_req"], 2),
                    _text(can_mint.get(scheme), 0),
                ]
            )
    return table


def _faulted(run: RunData, fault: str) -> pd.DataFrame:
    cells = run.complete()
    return cells[(cells["topology"] == "split") & (cells["fault"] == fault)]


def rotation_table(run: RunData) -> list[list[str]]:
    """What a key rotation under load did, per cell."""
    return [
        [
            str(row["scheme"]),
            _text(row["spurious_401"], 0),
            _text(row["rotation_jwks_fetches"], 0),
            _text(row["rotation_first_accept_ms"], 0, "ms"),
            _text(row["p99_ms"], 2, "ms"),
        ]
        for _, row in _faulted(run, "key-rotation").iterrows()
    ]


def flood_table(run: RunData) -> list[list[str]]:
    """What a flood of unknown kids cost, per cell, beside the same scheme without it."""
    rows = []
    for _, row in _faulted(run, "kid-flood").iterrows():
        rows.append(
            [
                str(row["scheme"]),
                f"{float(row['kid_flood_share']):.0%}",
                _text(row["unknown_kid_requests"], 0),
                f"{_text(row['jwks_fetches'], 0)} (at most {_text(row['jwks_fetch_bound'], 0)})",
                _text(row["failures"], 0),
                _text(row["p99_ms"], 2, "ms"),
            ]
        )
    return rows


def claim_lines(run: RunData) -> list[str]:
    """The seed's inter-service claim against this run's issuer calls per request."""
    summary = _split_summary(run)
    lines: list[str] = []
    local = summary[[
        parse_scheme(s).is_jwt and not parse_scheme(s).introspect for s in summary["scheme"]
    ]]  # fmt: skip
    calls = [r["issuer_calls_per_req"] for _, r in local.iterrows()]
    values = [c.value for c in calls if isinstance(c, Estimate) and not math.isnan(c.value)]
    if values:
        verdict = "supported" if max(values) == 0 else "not supported"
        lines.append(
            f"Services trust a verified JWT without asking the issuer: {verdict} (locally "
            f"verified JWT schemes made {max(values):.2f} issuer calls per user request at most; "
            "introspection asks once per service in the chain)."
        )
    return lines


def cost_chart(run: RunData, out: Path) -> Chart | None:
    """Server CPU per user request against the chain's length, per scheme."""
    summary = _split_summary(run)
    if summary["hops"].nunique() < 2:
        return None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for scheme in ordered(summary["scheme"].unique().tolist()):
        rows = summary[summary["scheme"] == scheme].sort_values("hops")
        cpu = [r["server_cpu_us_per_req"] for _, r in rows.iterrows()]
        values = [c.value if isinstance(c, Estimate) else math.nan for c in cpu]
        errors = [
            [c.value - c.low if isinstance(c, Estimate) and c.has_interval else 0 for c in cpu],
            [c.high - c.value if isinstance(c, Estimate) and c.has_interval else 0 for c in cpu],
        ]
        axis.errorbar(rows["hops"].astype(int), values, yerr=errors, marker="o", capsize=3,
                      label=scheme, color=colour(scheme.removesuffix("+introspect")),
                      linestyle="--" if parse_scheme(scheme).introspect else "-")  # fmt: skip
    axis.set_xlabel("services that authenticate each user request (hops)")
    axis.set_ylabel("server CPU per user request (µs)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    png, svg = save_figure(figure, run, out, "split-cost-vs-hops")
    return Chart(
        "split-cost-vs-hops",
        "Cost per user request against the call chain",
        f"CPU of the issuer and every resource service per user request, {operating_point(run)}, "
        "mean and 95% interval over repetitions; dashed: introspection at the issuer.",
        png,
        svg,
    )


def microservices_section(run: RunData, figures_dir: Path) -> Section | None:
    """The section, or None when the run has no split cells."""
    costs = cost_table(run)
    rotation, flood = rotation_table(run), flood_table(run)
    if not (costs or rotation or flood):
        return None
    section = Section("Microservices: issuer, resource services, call chains")
    if costs:
        section.tables.append(
            Table(
                f"One issuer and resource services, {operating_point(run)}: each user request is "
                "authenticated by every service of its chain. Issuer calls per request: 0 for "
                "local verification, one per hop for uncached introspection. Can mint tokens: "
                "processes holding a key that signs (with HMAC every resource service does).",
                COST_HEADERS,
                costs,
            )
        )
    if rotation:
        section.tables.append(
            Table(
                "The issuer signs with a new key mid-window; resource services must learn it "
                "from the JWKS at the first token that carries it. False rejects: 401s to valid "
                "tokens after the rotation (must be 0).",
                ROTATION_HEADERS,
                rotation,
            )
        )
    if flood:
        section.tables.append(
            Table(
                "A share of reads present a token under a made-up kid: each may trigger a JWKS "
                "fetch, at most one per cooldown per node, and valid reads must not suffer.",
                FLOOD_HEADERS,
                flood,
            )
        )
    chart = cost_chart(run, figures_dir)
    if chart is not None:
        section.charts.append(chart)
    section.charts += timeline_charts(run, figures_dir, ("key-rotation",))
    section.notes = claim_lines(run)
    return section
