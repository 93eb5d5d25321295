"""Two runs side by side: the same cells' figures, and only non-overlapping intervals marked.

A difference is called a change only when the 95% intervals of the two runs do not overlap (with
one repetition, the assumed noise bands); everything else is ``same within noise``.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from analysis.palette import scheme_rank
from analysis.stats import Estimate
from analysis.tidy import CELL_KEY, RunData

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


def comparison_rows(before: RunData, after: RunData) -> list[list[str]]:
    """One row per cell measured in both runs: ``A → B (verdict)`` per metric."""
    merged = before.summary.merge(after.summary, on=CELL_KEY, suffixes=("_a", "_b"))
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
    merged = before.summary.merge(after.summary, on=CELL_KEY, suffixes=("_a", "_b"))
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
    markdown = f"# {title}\n\n" + "\n".join(table) + f"\n\n![comparison]({chart.name})\n"
    e = html.escape
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{e(title)}</title><h1>{e(title)}</h1>"
        f"<table border=1 cellpadding=4><tr>{''.join(f'<th>{e(h)}</th>' for h in HEADERS)}"
        f"</tr>{body}</table><img src='{chart.name}' alt='comparison'>"
    )
    md_path, html_path = out / "comparison.md", out / "comparison.html"
    md_path.write_text(markdown)
    html_path.write_text(page)
    return [md_path, html_path, chart]
