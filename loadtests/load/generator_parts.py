"""One part file per Locust process, merged exactly into the cell's ``hdr.json`` and friends.

A lone Locust process, or each worker of a distributed run, writes what it measured into
``generator-parts/<process>.json`` when its test stops. Merging reads every part: the histograms
add exactly, the window is the mean of the processes' windows (they open within milliseconds of
each other), and ``generators.json`` keeps each process's counts beside the totals, so a reader
can check that the merged count is the sum over the processes. A fault cell's timelines merge
into ``timeline.json`` (counts add, latencies join; buckets are relative to each process's own
window start), and tallied outcomes into ``tallies.json``.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from loadtests.load.histograms import CENSORED, FAILED, LATENCY, HistogramSet

PARTS_DIR = "generator-parts"
WINDOW_OPEN_MARKER = "window-open"  # the first process to open its window writes the instant
DRAIN_ANSWERED = "answered"  # a process's drain ended once every request of its window was answered
DRAIN_BOUND = "bound"  # a process's drain lasted its whole bound
COUNTERS = ("planned_in_window", "sent_on_schedule", "seen_since_open", "locust_since_open")


def part_path(hdr_out: str | Path, process: str) -> Path:
    """Where one process's part goes, beside the merged ``hdr.json``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in process)
    return Path(hdr_out).parent / PARTS_DIR / f"{safe}.json"


def write_part(path: Path, part: dict[str, Any]) -> None:
    """Write a part atomically (a merge never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(part) + "\n")
    os.replace(tmp, path)


def read_parts(folder: Path) -> dict[str, dict[str, Any]]:
    """Every part in a cell folder, by process name."""
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((folder / PARTS_DIR).glob("*.json"))
    }


def merge_parts(hdr_out: str | Path) -> dict[str, Any] | None:
    """Merge the parts into hdr.json, window.json and generators.json; None without parts."""
    hdr_path = Path(hdr_out)
    folder = hdr_path.parent
    parts = read_parts(folder)
    opened = {name: p for name, p in parts.items() if p["window_start"] is not None}
    if not opened:
        return None
    merged = HistogramSet()
    per_process: dict[str, dict[str, Any]] = {}
    for name, part in opened.items():
        own = HistogramSet()
        own.merge_encoded(part["histograms"])
        merged.merge_encoded(part["histograms"])
        per_process[name] = {
            "requests": own.total(LATENCY),
            "failures": own.total(FAILED),
            **{counter: part[counter] for counter in COUNTERS},
        }
    merged.save(hdr_path)
    window = {
        "window_start": statistics.fmean(p["window_start"] for p in opened.values()),
        "window_end": statistics.fmean(p["window_end"] for p in opened.values()),
        "processes": {n: [p["window_start"], p["window_end"]] for n, p in opened.items()},
    }
    early = [p["stopped_early"] for p in opened.values() if p.get("stopped_early")]
    if early:
        window["stopped_early"] = early[0]
    # Only a lone process records how its drain ended (a master writes no part, and its
    # workers do not drain): at most one part carries it.
    drained = [p["drain_ended"] for p in opened.values() if p.get("drain_ended")]
    if drained:
        window["drain_ended"] = drained[0]
    (folder / "window.json").write_text(json.dumps(window, indent=1) + "\n")
    totals = {counter: sum(p[counter] for p in per_process.values()) for counter in COUNTERS}
    generators = {
        "processes": per_process,
        "merged_requests": merged.total(LATENCY),
        "merged_failures": merged.total(FAILED),
        "censored": merged.total(CENSORED),
        **totals,
        "unsent": max(0, totals["planned_in_window"] - totals["sent_on_schedule"]),
    }
    (folder / "generators.json").write_text(json.dumps(generators, indent=1) + "\n")
    _merge_timelines(folder, window["window_start"], list(opened.values()))
    tallies: Counter[str] = Counter()
    for part in opened.values():
        tallies.update(part.get("tallies") or {})
    if tallies:
        (folder / "tallies.json").write_text(json.dumps(dict(sorted(tallies.items())), indent=1))
    return generators


def _merge_timelines(folder: Path, window_start: float, parts: list[dict[str, Any]]) -> None:
    timelines = [part["timeline"] for part in parts if part.get("timeline")]
    if not timelines:
        return
    counts: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    refused: list[list[Any]] = []
    for timeline in timelines:
        counts.update(timeline["counts"])
        refused.extend(timeline.get("refused", []))
        for bucket, values in timeline["ok_latency_ms"].items():
            latencies.setdefault(bucket, []).extend(values)
    rows = []
    for key, count in counts.items():
        bucket, node, status = key.split("|")
        rows.append([int(bucket), node, int(status), count])
    merged = {
        "window_start": window_start,
        "bucket_s": timelines[0]["bucket_s"],
        "counts": sorted(rows),
        "ok_latency_ms": {b: sorted(v) for b, v in sorted(latencies.items(), key=_bucket)},
        "refused": sorted(refused),
    }
    (folder / "timeline.json").write_text(json.dumps(merged) + "\n")


def _bucket(item: tuple[str, Any]) -> int:
    return int(item[0])
