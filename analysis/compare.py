"""Two runs side by side: the same cells' figures, and only non-overlapping intervals marked.

A difference is called a change only when the measured 95% intervals of the two runs do not
overlap (a cell with one repetition has no interval and never changes); everything else is
``same within noise``. Cells are matched on every axis *and* every setting (windows, KDF cost,
token lifetime, population, generator processes); a cell whose settings differ is refused, not
compared. The machine's speed is part of the answer: the calibration ratio (B ÷ A of the fixed
reference workload) heads the comparison, and differing package versions are warned about.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analysis.palette import scheme_rank
from analysis.stats import Estimate
from analysis.tidy import RunData
from loadtests.calibration import calibration_ratio
from loadtests.matrix import CONDITIONS, MEASUREMENT_AXES

# Two runs' cells match on what was measured; how (window, population, …) must agree too.
MATCH_KEY = list(MEASUREMENT_AXES)
SETTINGS = CONDITIONS

METRICS = (
    ("server_cpu_us_per_req", "server CPU µs/req", 0, "lower"),
    ("rps", "throughput req/s", 0, "higher"),
    ("p50_ms", "p50 ms", 2, "lower"),
    ("p99_ms", "p99 ms", 2, "lower"),
)
HEADERS = ["cell", *[label for _, label, _, _ in METRICS]]


def change(before: Estimate, after: Estimate, better: str) -> str:
    """``better``/``worse`` when the intervals do not overlap, else ``same within noise``."""
    if before.overlaps(after):
        return "same within noise"
    went_up = after.value > before.value
    return "better" if went_up == (better == "higher") else "worse"


def _settings(run: RunData) -> dict[tuple[object, ...], tuple[object, ...]]:
    """Each measured cell's settings (from its raw cell.json), keyed like the summary rows."""
    done = run.cells[run.cells["status"] == "complete"]
    return {
        _key(group.iloc[0]): tuple(
            sorted({_plain(tuple(r)) for r in group[list(SETTINGS)].to_numpy()}, key=str)
        )
        for _, group in done.groupby(MATCH_KEY, sort=False, dropna=False)
    }


def _plain(values: tuple[object, ...]) -> tuple[object, ...]:
    """NaN (a setting that does not apply) as None, so equal settings compare equal."""
    return tuple(None if isinstance(v, float) and v != v else v for v in values)


def _key(row: object) -> tuple[object, ...]:
    return _plain(tuple(row[k] for k in MATCH_KEY))  # type: ignore[index]


def matched(before: RunData, after: RunData) -> tuple[pd.DataFrame, list[str]]:
    """Cells measured in both runs with the same settings, and why others were refused."""
    merged = before.summary.merge(after.summary, on=MATCH_KEY, suffixes=("_a", "_b"))
    settings_a, settings_b = _settings(before), _settings(after)
    keep, refused = [], []
    for index, row in merged.iterrows():
        key = _key(row)
        a, b = settings_a.get(key), settings_b.get(key)
        if a != b:
            changed = [
                name
                for index, name in enumerate(SETTINGS)
                if {s[index] for s in a or ()} != {s[index] for s in b or ()}
            ]
            refused.append(
                f"{row['scheme']} {row['scenario']} {row['topology']}-{row['nodes']}: not "
                f"compared, settings differ ({', '.join(changed) or 'unknown'})"
            )
        else:
            keep.append(index)
    return merged.loc[keep], refused


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
            + "; a change of that size is the machine, not the code"
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
    return notes + matched(before, after)[1]


def comparison_rows(before: RunData, after: RunData) -> list[list[str]]:
    """One row per cell measured in both runs: ``A → B (verdict)`` per metric."""
    merged = matched(before, after)[0]
    merged = merged.sort_values(
        by=["scenario", "topology", "nodes", "scheme"],
        key=lambda col: col.map(scheme_rank) if col.name == "scheme" else col,
    )
    rows = []
    for _, row in merged.iterrows():
        label = f"{row['scheme']} {row['scenario']} {row['topology']}-{row['nodes']}"
        cells = [label]
        for metric, _, digits, better in METRICS:
            a, b = row[f"{metric}_a"], row[f"{metric}_b"]
            cells.append(f"{a.text(digits)} → {b.text(digits)} ({change(a, b, better)})")
        rows.append(cells)
    return rows


def _chart(rows_source: tuple[RunData, RunData], out: Path) -> Path:
    before, after = rows_source
    merged = matched(before, after)[0]
    merged = merged[merged["scenario"] == "read"]
    labels = [
        f"{s} {t}-{n}"
        for s, t, n in zip(merged["scheme"], merged["topology"], merged["nodes"], strict=True)
    ]
    figure, axis = plt.subplots(figsize=(max(6, 0.6 * len(labels) + 2), 4.2))
    for offset, suffix, name in ((-0.2, "_a", before.run_id), (0.2, "_b", after.run_id)):
        estimates = merged[f"server_cpu_us_per_req{suffix}"].tolist()
        axis.bar(
            [i + offset for i in range(len(labels))],
            [e.value for e in estimates],
            0.4,
            yerr=[[e.value - e.low for e in estimates], [e.high - e.value for e in estimates]],
            capsize=3,
            label=name,
        )
    for index, (_, row) in enumerate(merged.iterrows()):
        verdict = change(row["server_cpu_us_per_req_a"], row["server_cpu_us_per_req_b"], "lower")
        if verdict != "same within noise":
            axis.annotate(
                verdict,
                (index, row["server_cpu_us_per_req_b"].high),
                ha="center",
                va="bottom",
                fontsize=7,
                color="red",
            )
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("server CPU per read request (µs)")
    axis.set_title("read: A vs B (changes marked only where intervals do not overlap)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "comparison.png"
    figure.savefig(path, dpi=110)
    figure.savefig(out / "comparison.svg")
    plt.close(figure)
    return path


def write_comparison(before: RunData, after: RunData, out: Path) -> list[Path]:
    """comparison.md, comparison.html and the chart in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(before, after)
    title = f"authbench compare: {before.run_id} (A) → {after.run_id} (B)"
    chart = _chart((before, after), out)
    table = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    notes = warnings(before, after)
    markdown = (
        f"# {title}\n\n" + "".join(f"- {note}\n" for note in notes) + "\n" + "\n".join(table)
        + f"\n\n![comparison]({chart.name})\n"
    )  # fmt: skip
    e = html.escape
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title><h1>{e(title)}</h1>"
        f"<ul>{''.join(f'<li>{e(note)}</li>' for note in notes)}</ul>"
        f"<table border=1 cellpadding=4><tr>{''.join(f'<th>{e(h)}</th>' for h in HEADERS)}"
        f"</tr>{body}</table><img src='{chart.name}' alt='comparison'>"
    )
    md_path, html_path = out / "comparison.md", out / "comparison.html"
    md_path.write_text(markdown)
    html_path.write_text(page)
    return [md_path, html_path, chart]
