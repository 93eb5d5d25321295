"""Thresholds checked on a finished run: the matrix's ``[thresholds]`` and ``--fail-on`` rules,
and, against a baseline run, every figure ``compare`` calls worse.

A rule is checked on every figure it selects: a summarised metric on each matching cell's
figure across repetitions (the mean, or the merged-histogram percentile), a count column of
``metrics.csv`` on each repetition, a ``capacity.csv`` column on each search summary, a verdict
on its claim. A rule that selects nothing fails: a typo must not pass CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.claims import Claim
from analysis.compare import Comparison, change, compare_runs
from analysis.stats import Estimate
from analysis.tidy import SUMMARISED, RunData
from loadtests.run.thresholds import VERDICT, Threshold, parse_threshold

WORSE = "worse"


@dataclass(frozen=True)
class Check:
    """One rule's outcome: whether it held, and the figures that broke it (or why none)."""

    rule: str
    passed: bool
    detail: str
    figures: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        """The outcome in one line."""
        return f"{'held' if self.passed else 'VIOLATED'}: {self.rule}: {self.detail}"


def _selected(frame: pd.DataFrame, rule: Threshold) -> tuple[pd.DataFrame, str]:
    """The rows a rule's WHERE selects, or an empty frame and the reason."""
    rows = frame
    for part in rule.where:
        if part == "equal_load":
            if "equal_load" not in rows:
                return rows.iloc[0:0], "equal_load applies to cells, not to capacity"
            rows = rows[rows["equal_load"].astype(bool) & (rows["model"] == "open")]
        elif part == "saturation":
            if "model" not in rows:
                return rows.iloc[0:0], "saturation applies to cells, not to capacity"
            rows = rows[rows["model"] == "closed"]
        else:
            column, value = part.split("=", 1)
            if column not in rows:
                return rows.iloc[0:0], f"no column {column!r} where {rule.metric} is"
            rows = rows[rows[column].astype(str) == value]
    return rows, ""


def _label(row: pd.Series) -> str:
    parts = [str(row.get(key)) for key in ("scheme", "scenario", "topology") if key in row]
    if row.get("model") == "open" and row.get("rate") == row.get("rate"):
        parts.append(f"{float(row['rate']):g} req/s")
    if "repetition" in row:
        parts.append(f"r{row['repetition']}")
    return " ".join(parts)


def _figure(value: Any) -> tuple[float, str]:
    if isinstance(value, Estimate):
        shown = value.text(3, "") if value.has_interval else f"{value.value:.3g}"
        return value.value, shown
    number = float(value)
    return number, f"{number:g}"


def check_rule(run: RunData, rule: Threshold, claims: list[Claim]) -> Check:
    """Whether one rule holds on a run."""
    if rule.metric == VERDICT:
        key = rule.where[0]
        found = next((claim for claim in claims if claim.key == key), None)
        if found is None:
            known = ", ".join(claim.key for claim in claims)
            return Check(rule.text, False, f"no claim {key!r} (claims: {known})")
        ok = rule.holds(found.verdict)
        return Check(rule.text, ok, f"{key} is {found.verdict!r}",
                     [{"cell": key, "value": found.verdict, "ok": ok}])  # fmt: skip
    if rule.metric in run.capacity.columns:
        frame = run.capacity
    elif rule.metric in SUMMARISED:
        frame = run.summary
    elif rule.metric in run.cells.columns:
        frame = run.complete()
    else:
        return Check(rule.text, False, f"no figure {rule.metric!r} in metrics.csv or capacity.csv")
    rows, why = _selected(frame, rule)
    figures = []
    for _, row in rows.iterrows():
        value = row[rule.metric]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        number, shown = _figure(value)
        if math.isnan(number):
            continue
        figures.append({"cell": _label(row), "value": number, "shown": shown,
                        "ok": rule.holds(number)})  # fmt: skip
    if not figures:
        return Check(rule.text, False, why or "no figure matched: nothing was checked")
    broken = [f for f in figures if not f["ok"]]
    if broken:
        shown = "; ".join(f"{f['cell']}: {f['shown']}" for f in broken[:4])
        more = f" (and {len(broken) - 4} more)" if len(broken) > 4 else ""
        return Check(rule.text, False, f"{len(broken)} of {len(figures)}: {shown}{more}", figures)
    return Check(rule.text, True, f"{len(figures)} figure(s) checked", figures)


def regressions(comparison: Comparison, baseline_id: str) -> Check:
    """Every figure the comparison with the baseline calls worse, as one check."""
    worse = [
        {"cell": figure.cell, "figure": figure.label, "verdict": change(figure, verdict)}
        for figure, verdict in comparison.figures
        if verdict is not None and change(figure, verdict).startswith(WORSE)
    ]
    rule = f"no regression against {baseline_id}"
    if worse:
        shown = "; ".join(f"{w['cell']} {w['figure']}: {w['verdict']}" for w in worse[:4])
        return Check(rule, False, f"{len(worse)} figure(s) worse: {shown}", worse)
    return Check(rule, True, f"{len(comparison.figures)} figure(s) compared, none worse")


def check_thresholds(
    run: RunData, rules: list[str], claims: list[Claim], baseline: RunData | None = None
) -> list[Check]:
    """Every rule's outcome, then the comparison with the baseline run when one is given."""
    checks = [check_rule(run, parse_threshold(text), claims) for text in rules]
    if baseline is not None:
        checks.append(regressions(compare_runs(baseline, run), baseline.run_id))
    return checks
