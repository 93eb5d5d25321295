"""Two runs side by side: every figure of both, judged as one family, none dropped silently.

Each figure is B ÷ A, judged by :mod:`analysis.verdicts` (better or worse, equivalent within
its family's margin, undecided, or no interval), Holm-corrected over every judged figure of the
comparison. Two runs differ by more than their own repetitions show (the machine's speed moves
between runs), so CPU, throughput and p50 are compared *relative to the machine's shift*: B ÷ A
of each scheme (Welch's t on the repetitions) divided by the median B ÷ A of every scheme
measured at the same load, with the median's own uncertainty added (see
:func:`without_common_shift`). Dividing by ``none`` alone was tried and rejected: its own noise
is as large as any scheme's and independent of theirs, so it widened every interval. Tails (p99:
set by stalls, not speed) and capacities (over their searches) are compared raw, and say so.
A p99 is judged only when every repetition's own p99 (what the test compares) rests on at
least 50 requests above it; otherwise it is shown, not judged.

Cells match on every measurement axis; equal-load cells match whatever rate each run chose,
and are judged only when the rates agree (else listed, with both rates). Cells found in one run
only, or measured under other conditions (window, KDF cost, population, …), are listed, never
dropped. The calibration ratio and differing package versions head the comparison.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analysis.page import Heading, Image, Items, Page, Table, render_html, render_markdown
from analysis.palette import scheme_rank
from analysis.stats import MIN_TAIL_REQUESTS, Estimate, estimate
from analysis.tidy import RunData
from analysis.verdicts import (
    HIGHER,
    LOWER,
    METRIC_FAMILY,
    NO_INTERVAL,
    LogRatio,
    Margin,
    Verdict,
    decide_family,
    margins_from,
    unpaired_log_ratio,
)
from loadtests.measure.calibration_figures import calibration_ratio
from loadtests.run.matrix import CONDITIONS, MEASUREMENT_AXES, PLANTED

# Cells match on what was measured; a self-test's planted arm is a cell of its own.
MATCH_KEY = [*MEASUREMENT_AXES, *PLANTED]
MIN_SCHEMES_FOR_SHIFT = 3
# The share of a repetition's requests above each tail percentile: the test compares the
# repetitions' own percentiles, so each must rest on MIN_TAIL_REQUESTS requests above it.
TAIL_SHARE = {"p99_ms": 0.01}
# What each load model's cells are compared on: (metric, label, digits, which way is better).
CLOSED_METRICS = (
    ("server_cpu_us_per_req", "server CPU µs/req", 0, "lower"),
    ("rps", "throughput req/s", 0, "higher"),
    ("p50_ms", "p50 ms", 2, "lower"),
    ("p99_ms", "p99 ms", 2, "lower"),
)
OPEN_METRICS = (
    ("server_cpu_us_per_req", "server CPU µs/req", 0, "lower"),
    ("p50_ms", "p50 ms", 3, "lower"),
    ("p99_ms", "p99 ms", 2, "lower"),
)
HEADERS = ["cell", "figure", "A", "B", "B ÷ A", "verdict"]
# Figures the machine's speed moves alike for every scheme: the common shift is removed. Tails
# are set by stalls, not speed: p99 is compared raw.
COMMON_SHIFT_METRICS = ("server_cpu_us_per_req", "rps", "p50_ms")
NOT_JUDGED = "not judged"


@dataclass(frozen=True)
class Figure:
    """One figure of a cell in both runs, and how B ÷ A is estimated."""

    cell: str
    metric: str
    label: str
    digits: int
    better: str
    a: Estimate
    b: Estimate
    ratio: LogRatio | None
    basis: str  # how B ÷ A is estimated: relative to the machine's shift, or raw
    unjudged: str = ""  # why the figure is shown but not judged ("" when it is judged)
    group: tuple[object, ...] = ()  # figures that share the machine's shift (one metric, load)
    raw: LogRatio | None = None  # B ÷ A before the shift was removed

    @property
    def judged(self) -> bool:
        return not self.unjudged

    @property
    def scheme(self) -> str:
        return self.cell.split(" ")[0]


@dataclass(frozen=True)
class Comparison:
    """Every figure with its verdict (None: not judged), and the cells that could not match."""

    figures: list[tuple[Figure, Verdict | None]]
    unmatched: list[str]
    family: int


def _plain(value: object) -> object:
    """NaN (a setting that does not apply) as None, so equal settings compare equal."""
    return None if isinstance(value, float) and value != value else value


def _key(row: pd.Series, columns: list[str]) -> tuple[object, ...]:
    """A row's key on the columns; an equal-load cell's rate is whatever its run chose."""
    return tuple(
        "equal load" if column == "rate" and bool(row["equal_load"]) else _plain(row[column])
        for column in columns
    )


GROUP_KEY = ["scenario", "topology", "nodes", "balancer", "users", "model", "rate", "fault"]


def _label(row: pd.Series) -> str:
    load = f"open {row['rate']:g} req/s" if row["model"] == "open" else "closed"
    planted = f" +{row['planted_cost_us']} µs planted" if row.get("planted_cost_us") else ""
    return f"{row['scheme']} {row['scenario']} {row['topology']}-{row['nodes']} {load}{planted}"


def _repetitions(run: RunData, metric: str) -> dict[tuple[object, ...], dict[int, float]]:
    """Each usable cell's value per repetition, keyed like the summary rows."""
    found: dict[tuple[object, ...], dict[int, float]] = {}
    for _, row in run.usable_cells().iterrows():
        value = row[metric]
        if value == value and value is not None:
            found.setdefault(_key(row, MATCH_KEY), {})[int(row["repetition"])] = float(value)
    return found


def _conditions(run: RunData) -> dict[tuple[object, ...], set[tuple[object, ...]]]:
    done = run.cells[run.cells["status"] == "complete"]
    found: dict[tuple[object, ...], set[tuple[object, ...]]] = {}
    for _, row in done.iterrows():
        found.setdefault(_key(row, MATCH_KEY), set()).add(tuple(_plain(row[c]) for c in CONDITIONS))
    return found


class _Side:
    """One run's figures, indexed for matching."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.rows = {_key(row, MATCH_KEY): row for _, row in run.summary.iterrows()}
        self.conditions = _conditions(run)
        self.cache: dict[str, dict[tuple[object, ...], dict[int, float]]] = {}

    def values(self, metric: str, key: tuple[object, ...]) -> dict[int, float]:
        if metric not in self.cache:
            self.cache[metric] = _repetitions(self.run, metric)
        return self.cache[metric].get(key, {})


def _figure(
    a_side: _Side, b_side: _Side, key: tuple[object, ...], metric: tuple[str, str, int, str]
) -> Figure:
    name, label, digits, better = metric
    row_a, row_b = a_side.rows[key], b_side.rows[key]
    a, b = row_a[name], row_b[name]
    values_a, values_b = a_side.values(name, key), b_side.values(name, key)
    common = dict(cell=_label(row_b), metric=name, label=label, digits=digits, better=better)
    if bool(row_a["equal_load"]) and row_a["rate"] != row_b["rate"]:
        why = f"{NOT_JUDGED}: equal-load rates differ ({row_a['rate']:g} vs {row_b['rate']:g})"
        return Figure(**common, a=a, b=b, ratio=None, basis="—", unjudged=why)
    raw = unpaired_log_ratio(list(values_b.values()), list(values_a.values()))
    share = TAIL_SHARE.get(name)
    if share is not None:
        counts = [*a_side.values("requests", key).values()]
        counts += b_side.values("requests", key).values()
        fewest = min(counts, default=0) * share
        if fewest < MIN_TAIL_REQUESTS:
            why = (
                f"{NOT_JUDGED}: a repetition's {label.split()[0]} rests on {fewest:.0f} requests "
                f"above it (fewer than {MIN_TAIL_REQUESTS})"
            )
            return Figure(**common, a=a, b=b, ratio=raw, basis="raw", unjudged=why)
    if name not in COMMON_SHIFT_METRICS:
        return Figure(**common, a=a, b=b, ratio=raw, basis="raw (a tail is set by stalls)")
    return Figure(**common, a=a, b=b, ratio=raw, basis="raw", group=(*_key(row_b, GROUP_KEY), name))


def without_common_shift(figures: list[Figure]) -> list[Figure]:
    """Each figure's B ÷ A divided by the machine's shift: the median B ÷ A of its group.

    A group is one metric at one load (same scenario, topology, nodes, users, load model) over
    every scheme measured there. With three or more schemes the median of their log ratios is
    taken as what moved them all (the machine between the runs) and removed from each, its
    uncertainty added: var(median) ≈ π/2 · mean(se²) / k. A single scheme that changed does not
    move the median much; a change that moves most schemes alike is read as the machine's (the
    raw ratio stays in the table). With fewer than three, figures stay raw and say so.
    """
    groups: dict[tuple[object, ...], list[Figure]] = {}
    for figure in figures:
        if figure.group and figure.judged and figure.ratio is not None:
            groups.setdefault(figure.group, []).append(figure)
    adjusted: dict[int, Figure] = {}
    for members in groups.values():
        if len(members) < MIN_SCHEMES_FOR_SHIFT:
            for f in members:
                basis = f"raw (fewer than {MIN_SCHEMES_FOR_SHIFT} schemes to find the shift)"
                adjusted[id(f)] = replace(f, basis=basis)
            continue
        shift = statistics.median(f.ratio.log_mean for f in members)  # type: ignore[union-attr]
        mean_variance = statistics.fmean(f.ratio.stderr**2 for f in members)  # type: ignore[union-attr]
        shift_variance = math.pi / 2 * mean_variance / len(members)
        for f in members:
            ratio = f.ratio
            assert ratio is not None
            moved = LogRatio(
                ratio.log_mean - shift,
                math.sqrt(ratio.stderr**2 + shift_variance),
                ratio.degrees,
                ratio.n,
                ratio.unit_variance,
                ratio.paired,
            )
            basis = (
                f"relative to the machine's shift ×{math.exp(shift):.3f}, the median of "
                f"{len(members)} schemes; raw ×{ratio.ratio:.3f}"
            )
            adjusted[id(f)] = replace(f, ratio=moved, basis=basis, raw=ratio)
    return [adjusted.get(id(f), f) for f in figures]


def _capacity_figures(before: RunData, after: RunData) -> tuple[list[Figure], list[str]]:
    columns = ["scheme", "scenario", "topology", "nodes", "slo_p99_ms"]

    def indexed(run: RunData) -> dict[tuple[object, ...], pd.Series]:
        if run.capacity.empty:
            return {}
        return {_key(row, columns): row for _, row in run.capacity.iterrows()}

    a_rows, b_rows = indexed(before), indexed(after)
    figures, unmatched = [], []
    for key in sorted(a_rows.keys() | b_rows.keys(), key=str):
        label = f"{key[0]} {key[1]} {key[2]}-{key[3]} capacity at p99 ≤ {key[4]:g} ms"
        if key not in a_rows or key not in b_rows:
            unmatched.append(f"{label}: searched in {'A' if key in a_rows else 'B'} only")
            continue
        searches_a = [float(v) for v in str(a_rows[key]["capacity_by_search"]).split()]
        searches_b = [float(v) for v in str(b_rows[key]["capacity_by_search"]).split()]
        figures.append(
            Figure(
                cell=label,
                metric="capacity_rps",
                label="capacity req/s",
                digits=0,
                better="higher",
                a=estimate(searches_a),
                b=estimate(searches_b),
                ratio=unpaired_log_ratio(searches_b, searches_a),
                basis="raw, over the searches",
            )
        )
    return figures, unmatched


def compare_runs(before: RunData, after: RunData) -> Comparison:
    """Every figure both runs measured, judged as one family, and every cell that was not."""
    a_side, b_side = _Side(before), _Side(after)
    figures: list[Figure] = []
    unmatched: list[str] = []
    ordered = sorted(
        a_side.rows.keys() | b_side.rows.keys(),
        key=lambda k: (str(k[MATCH_KEY.index("scenario")]), scheme_rank(str(k[0])), str(k)),
    )
    for key in ordered:
        row = b_side.rows.get(key, a_side.rows.get(key))
        if key not in a_side.rows or key not in b_side.rows:
            unmatched.append(
                f"{_label(row)}: measured in {'A' if key in a_side.rows else 'B'} only"
            )
            continue
        if a_side.conditions.get(key) != b_side.conditions.get(key):
            changed = [
                name
                for index, name in enumerate(CONDITIONS)
                if {c[index] for c in a_side.conditions.get(key, ())}
                != {c[index] for c in b_side.conditions.get(key, ())}
            ]
            unmatched.append(
                f"{_label(row)}: not compared, conditions differ ({', '.join(changed)})"
            )
            continue
        metrics = OPEN_METRICS if row["model"] == "open" else CLOSED_METRICS
        for metric in metrics:
            figure = _figure(a_side, b_side, key, metric)
            figures.append(figure)
            if figure.unjudged.startswith(f"{NOT_JUDGED}: equal-load"):
                unmatched.append(f"{figure.cell}: {figure.unjudged}")
    figures = without_common_shift(figures)
    capacity, capacity_unmatched = _capacity_figures(before, after)
    figures += capacity
    unmatched += capacity_unmatched
    margins = margins_from(after.manifest)
    figures = [below_resolution(f, margins[METRIC_FAMILY[f.metric]]) for f in figures]
    judged = [f for f in figures if f.judged]
    verdicts = decide_family(
        [(f.ratio, margins[METRIC_FAMILY[f.metric]].around(f.a.value)) for f in judged]
    )
    by_figure = dict(zip(map(id, judged), verdicts, strict=True))
    return Comparison(
        [(f, by_figure.get(id(f))) for f in figures], list(dict.fromkeys(unmatched)), len(judged)
    )


def below_resolution(figure: Figure, margin: Margin) -> Figure:
    """A figure smaller than its family's absolute smallest effect (a refused replay's p50 of a
    few µs against 0.1 ms) decides nothing: "equivalent within ±2500%" would be noise."""
    if not figure.judged or margin.around(figure.a.value) <= 1:
        return figure
    unit = "ms" if METRIC_FAMILY[figure.metric] == "latency" else ""
    return replace(
        figure,
        unjudged=f"{NOT_JUDGED}: below {margin.absolute:g} {unit}, the smallest effect of interest",
    )


def change(figure: Figure, verdict: Verdict | None) -> str:
    """The verdict in a figure's own words: better/worse, equivalent, undecided, no interval."""
    if verdict is None:
        return figure.unjudged
    if verdict.kind in (HIGHER, LOWER):
        went_up = verdict.kind == HIGHER
        word = "better" if went_up == (figure.better == "higher") else "worse"
        return f"{word}: {verdict.short()}"
    if verdict.kind == NO_INTERVAL:
        return "no interval (fewer than 2 repetitions in a run): decides nothing"
    return verdict.short()


def _ratio_text(figure: Figure) -> str:
    if figure.ratio is None:
        return "—"
    low, high = figure.ratio.interval()
    how = "paired" if figure.ratio.paired else "Welch"
    return f"{figure.ratio.ratio:.3f} [{low:.3f}, {high:.3f}] ({figure.basis}; {how})"


def comparison_rows(comparison: Comparison) -> list[list[str]]:
    """One row per figure: cell, figure, A, B, B ÷ A with its basis, verdict."""
    return [
        [
            figure.cell,
            figure.label,
            figure.a.text(figure.digits),
            figure.b.text(figure.digits),
            _ratio_text(figure),
            change(figure, verdict),
        ]
        for figure, verdict in comparison.figures
    ]


def warnings(before: RunData, after: RunData) -> list[str]:
    """The calibration ratio and every difference that could explain a change."""
    notes = []
    cal_a = before.manifest.get("calibration", {}).get("start")
    cal_b = after.manifest.get("calibration", {}).get("start")
    if cal_a and cal_b:
        ratios = calibration_ratio(cal_a, cal_b)
        notes.append(
            "calibration B ÷ A (above 1: B's machine was slower): "
            + ", ".join(f"{k.removesuffix('_us')} ×{v:.2f}" for k, v in ratios.items())
            + " (its workloads jump even within one run here: a machine shift is read from the "
            "schemes themselves instead)"
        )
    else:
        notes.append("calibration missing in one run: absolute figures cannot be compared")
    packages_a = before.manifest.get("environment", {}).get("packages", {})
    packages_b = after.manifest.get("environment", {}).get("packages", {})
    for name in sorted(set(packages_a) | set(packages_b)):
        if packages_a.get(name) != packages_b.get(name):
            notes.append(f"{name}: {packages_a.get(name)} in A, {packages_b.get(name)} in B")
    cpu_a = before.manifest.get("environment", {}).get("cpu_model")
    cpu_b = after.manifest.get("environment", {}).get("cpu_model")
    if cpu_a != cpu_b:
        notes.append(f"different CPUs: {cpu_a} vs {cpu_b}")
    notes.append("every run over time, calibration-normalised: `make history` → results/history/")
    return notes


def _family_note(comparison: Comparison, after: RunData) -> str:
    margins = margins_from(after.manifest)
    described = ", ".join(
        f"{family} {margin.describe('ms' if family == 'latency' else '')}".strip()
        for family, margin in margins.items()
    )
    return (
        f"{comparison.family} judged figures, one Holm family; margins of equivalence: {described}"
    )


def _chart(comparison: Comparison, before: RunData, after: RunData, out: Path) -> Path:
    shown = [
        (f, v)
        for f, v in comparison.figures
        if f.metric == "server_cpu_us_per_req" and " read " in f.cell and " closed" in f.cell
    ]
    labels = [f.cell.removesuffix(" closed").replace(" read", "") for f, _ in shown]
    figure, axis = plt.subplots(figsize=(max(6, 0.6 * len(labels) + 2), 4.2))
    for offset, side, name in ((-0.2, "a", before.run_id), (0.2, "b", after.run_id)):
        estimates = [getattr(f, side) for f, _ in shown]
        axis.bar(
            [i + offset for i in range(len(labels))],
            [e.value for e in estimates],
            0.4,
            yerr=[
                [e.value - e.low if e.has_interval else 0 for e in estimates],
                [e.high - e.value if e.has_interval else 0 for e in estimates],
            ],
            capsize=3,
            label=name,
        )
    for index, (f, verdict) in enumerate(shown):
        words = change(f, verdict).split(":")[0]
        if words in ("better", "worse"):
            axis.annotate(
                words, (index, f.b.value), ha="center", va="bottom", fontsize=7, color="red"
            )
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("server CPU per read request (µs)")
    axis.set_title("read, closed model: A vs B (better/worse marked where the verdict says so)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "comparison.png"
    figure.savefig(path, dpi=110)
    figure.savefig(out / "comparison.svg")
    plt.close(figure)
    return path


def write_comparison(
    before: RunData, after: RunData, out: Path, comparison: Comparison | None = None
) -> list[Path]:
    """comparison.md, comparison.html and the chart in ``out`` (of ``comparison`` when the
    caller has already compared the runs)."""
    out.mkdir(parents=True, exist_ok=True)
    comparison = comparison or compare_runs(before, after)
    rows = comparison_rows(comparison)
    title = f"authbench compare: {before.run_id} (A) → {after.run_id} (B)"
    chart = _chart(comparison, before, after, out)
    notes = [*warnings(before, after), _family_note(comparison, after)]
    unmatched = comparison.unmatched or ["every cell was measured in both runs alike"]
    page = Page(title, [
        Items(notes), Table(HEADERS, rows, "comparison"),
        Heading("Not compared", anchor="not-compared"), Items(unmatched),
        Image("Comparison", "each matched figure of B against A, with its interval", chart,
               embed=False),
    ])  # fmt: skip
    md_path, html_path = out / "comparison.md", out / "comparison.html"
    md_path.write_text(render_markdown(page, out))
    html_path.write_text(render_html(page))
    json_path = out / "comparison.json"
    json_path.write_text(json.dumps(comparison_summary(comparison, before, after), indent=2) + "\n")
    return [md_path, html_path, json_path, chart]


def _estimate(found: Estimate) -> dict[str, float | int | None]:
    has = found.has_interval
    return {
        "value": None if math.isnan(found.value) else found.value,
        "low": found.low if has else None,
        "high": found.high if has else None,
        "n": found.n,
    }


def comparison_summary(comparison: Comparison, before: RunData, after: RunData) -> dict[str, Any]:
    """The comparison for machines: every figure with B ÷ A and its verdict, what did not
    match, and whether any figure got worse (what ``--fail-on-regression`` exits 3 on)."""
    figures = []
    for figure, verdict in comparison.figures:
        low, high = figure.ratio.interval() if figure.ratio is not None else (None, None)
        figures.append({
            "cell": figure.cell, "metric": figure.metric, "a": _estimate(figure.a),
            "b": _estimate(figure.b), "ratio": None if figure.ratio is None else figure.ratio.ratio,
            "ratio_low": low, "ratio_high": high, "basis": figure.basis,
            "verdict": change(figure, verdict),
        })  # fmt: skip
    return {
        "schema_version": 1, "a": before.run_id, "b": after.run_id, "family": comparison.family,
        "figures": figures, "not_compared": comparison.unmatched,
        "worse": sum(1 for f in figures if str(f["verdict"]).startswith("worse")),
    }  # fmt: skip
