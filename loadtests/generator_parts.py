"""One part file per Locust process, merged exactly into the cell's ``hdr.json`` and friends.

A lone Locust process, or each worker of a distributed run, writes what it measured into
``generator-parts/<process>.json`` when its test stops. Merging reads every part: the histograms
add exactly, the window is the mean of the processes' windows (they open within milliseconds of
each other), and ``generators.json`` keeps each process's counts beside the totals, so a reader
can check that the merged count is the sum over the processes.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from loadtests.histograms import FAILED, LATENCY, HistogramSet

PARTS_DIR = "generator-parts"
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
    (folder / "window.json").write_text(json.dumps(window, indent=1) + "\n")
    totals = {counter: sum(p[counter] for p in per_process.values()) for counter in COUNTERS}
    generators = {
        "processes": per_process,
        "merged_requests": merged.total(LATENCY),
        "merged_failures": merged.total(FAILED),
        **totals,
        "unsent": max(0, totals["planned_in_window"] - totals["sent_on_schedule"]),
    }
    (folder / "generators.json").write_text(json.dumps(generators, indent=1) + "\n")
    return generators
