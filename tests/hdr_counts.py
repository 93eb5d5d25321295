"""Request counts read straight from the raw HDR encodings with hdrh, not through the suite's
HistogramSet: a merge that dropped or doubled a part cannot agree with them by construction."""

from __future__ import annotations

import json
from pathlib import Path

from hdrh.histogram import HdrHistogram


def answered(encoded: dict[str, dict[str, str]]) -> int:
    """Successful requests in one set of encoded histograms (``latency_us``, every name)."""
    return sum(
        HdrHistogram.decode(text.encode()).get_total_count()
        for text in encoded.get("latency_us", {}).values()
    )


def answered_in_parts(cell_dir: Path) -> dict[str, int]:
    """Per generator process, what its own part file recorded."""
    return {
        path.stem: answered(json.loads(path.read_text())["histograms"])
        for path in sorted((cell_dir / "generator-parts").glob("*.json"))
    }


def answered_in_merge(cell_dir: Path) -> int:
    """What the merged ``hdr.json`` holds."""
    return answered(json.loads((cell_dir / "hdr.json").read_text()))
