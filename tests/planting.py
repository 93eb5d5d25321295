"""Known changes planted into a copy of a run folder's raw files, for tests of what finds them."""

from __future__ import annotations

import csv
from pathlib import Path


def scale_server_cpu(run_dir: Path, factor: float, cells: str = "*") -> None:
    """Every server process's CPU counter × factor, in the cells whose id matches ``cells``."""
    for samples in run_dir.glob(f"cells/{cells}/samples.csv"):
        with samples.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            if row["source"].startswith("node") and row["metric"] == "cpu_s":
                row["value"] = str(float(row["value"]) * factor)
        with samples.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["t", "source", "metric", "value"])
            writer.writeheader()
            writer.writerows(rows)
