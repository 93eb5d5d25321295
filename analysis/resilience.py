"""The resilience section: what users saw when Redis was far, gone or frozen, a node died, or
credentials were bad, from the fault, distance and validation cells of the run.

Tables are built from the tidy cell rows (``metrics.csv``), the per-kind validation table from
each cell's raw ``tallies.json``; the charts live in :mod:`analysis.fault_charts`. A fault
figure with several repetitions is shown as its median with the range over the repetitions:
fault outcomes are counts and moments, not means.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.charts import Chart
from analysis.fault_charts import distance_chart, timeline_charts
from analysis.palette import ordered
from analysis.tidy import RunData
from loadtests.faults import fault_named, sectioned
from loadtests.measure.fault_metrics import ACCEPTED_KINDS

USER_FAULTS = sectioned("resilience")  # the split's key faults: microservices section
FAULT_HEADERS = [
    "scheme", "fault", "OK during the fault", "spurious 401", "sessions lost (of users)",
    "failed requests", "recovery", "p99 over the window",
]  # fmt: skip
DISTANCE_HEADERS = ["scheme", "store delay asked → measured", "p50", "p99", "server CPU",
                    "throughput at saturation (closed)"]  # fmt: skip
VALIDATION_HEADERS = ["scheme", "kind", "expected", "correct", "false accepts", "false rejects",
                      "errors"]  # fmt: skip


@dataclass
class Table:
    """One table of the section with the sentence that introduces it."""

    intro: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """A report section: tables, then charts, then notes."""

    title: str
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _values(rows: pd.DataFrame, column: str, fmt: str) -> str:
    """Each repetition's value, joined: 'n/a' where none was measured."""
    shown = [format(float(v), fmt) for v in rows[column] if pd.notna(v) and v != ""]
    return " / ".join(shown) if shown else "n/a"


def _median_range(rows: pd.DataFrame, column: str, fmt: str) -> str:
    """Median [lowest–highest] over the repetitions (n); one value as it is; 'n/a' if none."""
    values = sorted(float(v) for v in rows[column] if pd.notna(v) and v != "")
    if not values:
        return "n/a"
    if len(values) == 1:
        return format(values[0], fmt)
    median = format(statistics.median(values), fmt)
    low, high = format(values[0], fmt), format(values[-1], fmt)
    if low == high:
        return f"{median} (all {len(values)})"
    return f"{median} [{low}–{high}] (n={len(values)})"


def _recovery(rows: pd.DataFrame) -> str:
    """Median and range of the recoveries seen, and how many windows ended still disturbed."""
    missing = sum(1 for v in rows["recovery_s"] if pd.isna(v) or v == "")
    shown = _median_range(rows, "recovery_s", ".2f")
    text = "" if shown == "n/a" else f"{shown} s"
    if missing:
        text += f"{'; ' if text else ''}{missing} of {len(rows)} not within the window"
    return text


def fault_table(run: RunData) -> list[list[str]]:
    """One row per fault cell (repetitions side by side)."""
    cells = run.complete()
    cells = cells[cells["fault"].isin(USER_FAULTS)]
    table = []
    for (scheme, _fault, _persistence), rows in cells.groupby(
        ["scheme", "fault", "persistence"], sort=False
    ):
        first = rows.iloc[0]
        lost = _median_range(rows, "sessions_lost", ".0f")
        table.append(
            [
                f"{scheme}{' (sticky)' if first['store'] == 'memory' else ''}",
                fault_named(str(first["fault"])).title(first),
                _median_range(rows, "ok_share_during_fault", ".1%"),
                _median_range(rows, "spurious_401", ".0f"),
                f"{lost} (of {int(first['users'])})",
                _median_range(rows, "fault_failures", ".0f"),
                _recovery(rows),
                _median_range(rows, "p99_ms", ".1f") + " ms",
            ]
        )
    order = {scheme: index for index, scheme in enumerate(ordered(cells["scheme"].unique()))}
    return sorted(table, key=lambda r: (r[1], order.get(r[0].split(" ")[0], 99)))


def distance_rows(run: RunData, model: str = "open") -> pd.DataFrame:
    """Read cells without a fault whose store delay was swept: at a fixed open-model rate, or
    (``model="closed"``) at saturation."""
    cells = run.complete()
    chosen = cells[
        (cells["fault"].fillna("") == "")
        & (cells["scenario"] == "read")
        & (cells["model"] == model)
        & (cells["topology"] == "single")
        & ~cells["equal_load"].astype(bool)
    ]
    delays = chosen.groupby(["scheme", "sliding_session"])["store_delay_ms"].nunique()
    swept = {key for key, count in delays.items() if count > 1}
    keep = [key in swept for key in zip(chosen["scheme"], chosen["sliding_session"], strict=True)]
    return chosen[keep]


def scheme_label(scheme: str, sliding: bool) -> str:
    """The scheme id, with sliding sessions named."""
    return f"{scheme} (sliding)" if sliding else scheme


def distance_table(rows: pd.DataFrame, saturated: pd.DataFrame) -> list[list[str]]:
    """p50, p99 and server CPU per scheme and store delay at the fixed rate, and the closed
    model's throughput at the same distance (repetitions side by side; † generator-bound)."""
    table = []
    for (scheme, sliding, delay), group in rows.groupby(
        ["scheme", "sliding_session", "store_delay_ms"], sort=True
    ):
        measured = _values(group, "store_delay_measured_ms", ".2f")
        closed = saturated[
            (saturated["scheme"] == scheme)
            & (saturated["sliding_session"] == sliding)
            & (saturated["store_delay_ms"] == delay)
        ]
        throughput = _values(closed, "rps", ".0f")
        if not closed.empty:
            throughput += " req/s" + (" †" if closed["saturated"].any() else "")
        table.append(
            [
                scheme_label(scheme, bool(sliding)),
                f"{float(delay):g} ms → {measured if float(delay) else '0'} ms",
                _values(group, "p50_ms", ".2f") + " ms",
                _values(group, "p99_ms", ".2f") + " ms",
                _values(group, "server_cpu_us_per_req", ".0f") + " µs/req",
                throughput if not closed.empty else "not measured",
            ]
        )
    return table


def validation_table(run: RunData) -> list[list[str]]:
    """Per scheme and kind of credential: how the answers were classified (raw tallies)."""
    cells = run.complete()
    cells = cells[cells["scenario"] == "validation"]
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for _, row in cells.iterrows():
        path = run.run_dir / "cells" / str(row["cell_id"]) / "tallies.json"
        try:
            tallies = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key, count in tallies.items():
            kind, outcome = key.split("|", 1)
            slot = counts.setdefault((str(row["scheme"]), kind), {})
            slot[outcome] = slot.get(outcome, 0) + int(count)
    order = {scheme: index for index, scheme in enumerate(ordered(cells["scheme"].unique()))}
    table = []
    for (scheme, kind), outcome in sorted(counts.items(), key=lambda i: (order[i[0][0]], i[0][1])):
        table.append(
            [
                scheme,
                kind,
                "accept" if kind in ACCEPTED_KINDS else "refuse",
                str(outcome.get("correct", 0)),
                str(outcome.get("false_accept", 0)),
                str(outcome.get("false_reject", 0)),
                str(outcome.get("error", 0)),
            ]
        )
    return table


def when_redis_down(run: RunData, scheme: str) -> str:
    """The decision table's 'when Redis is down' cell, from the scheme's outage cells."""
    cells = run.complete()
    outage = cells[(cells["fault"] == "redis-outage") & (cells["scheme"] == scheme)]
    if outage.empty:
        return "not needed" if scheme == "none" else "not measured (matrix faults)"
    parts = []
    for persistence, rows in outage.groupby("persistence", sort=True):
        share = _values(rows, "ok_share_during_fault", ".0%")
        spurious = _values(rows, "spurious_401", ".0f")
        lost = _values(rows, "sessions_lost", ".0f")
        parts.append(
            f"{share} of reads OK, {spurious} spurious 401, back in {_recovery(rows)}; "
            f"{lost} of {int(rows.iloc[0]['users'])} users logged out after the restart "
            f"({'AOF' if persistence == 'aof' else 'no persistence'})"
        )
    return "; ".join(parts)


def resilience_section(run: RunData, figures_dir: Path) -> Section | None:
    """The section, or None when the run has no fault, distance sweep or validation cells."""
    faults = fault_table(run)
    distance = distance_rows(run)
    validation = validation_table(run)
    if not faults and distance.empty and not validation:
        return None
    section = Section("Resilience: faults, store distance, bad credentials")
    if faults:
        section.tables.append(
            Table(
                "Each fault injected into an open-model window at a fixed rate. OK during the "
                "fault: the share of 2xx answers to requests that began while it lasted (a node "
                "kill: in the second after it). Spurious 401: refusals of a valid credential "
                "given while Redis was down or frozen (must be 0). Sessions lost: distinct users "
                "refused with 401 from the fault on, who had to log in again. Recovery: from the "
                "fault's end to the end of the last disturbed stretch (100 ms buckets joined into "
                "stretches of at least 100 answers; disturbed: a failed answer, or a p99 above "
                "twice its value before the fault). Several repetitions: median [lowest–highest] "
                "(n).",
                FAULT_HEADERS,
                faults,
            )
        )
    if not distance.empty:
        section.tables.append(
            Table(
                "Reads at one fixed open-model rate with Redis reached through the delay proxy "
                "(the asked delay per round trip, and what a PING through it really added), "
                "and the closed model's throughput at the same distance (the server's limit "
                "when every request waits on the distant store).",
                DISTANCE_HEADERS,
                distance_table(distance, distance_rows(run, "closed")),
            )
        )
    if validation:
        section.tables.append(
            Table(
                "Valid and invalid credentials mixed at load, every answer classified: a 200 "
                "for an invalid credential or naming another user is a false accept, a 4xx for "
                "a valid one a false reject, a 5xx or no answer an error.",
                VALIDATION_HEADERS,
                validation,
            )
        )
    section.charts = [*timeline_charts(run, figures_dir, USER_FAULTS)]
    chart = distance_chart(run, distance, distance_rows(run, "closed"), figures_dir)
    if chart is not None:
        section.charts.append(chart)
    repetitions = run.complete()
    if not faults and not validation:
        return section
    if (repetitions[repetitions["fault"].isin(USER_FAULTS)]["repetition"] == 1).all():
        section.notes.append(
            "One repetition per fault cell: these are observed counts and times, not intervals."
        )
    return section
