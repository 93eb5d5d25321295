"""What a run prints: one progress line per cell with its phase and an ETA, then a summary."""

from __future__ import annotations

import sys
import time
from typing import Any

SUMMARY_COLUMNS = (
    ("scheme", 16, "{}"),
    ("topology", 8, "{}"),
    ("nodes", 5, "{}"),
    ("balancer", 8, "{}"),
    ("scenario", 10, "{}"),
    ("users", 5, "{}"),
    ("rps", 8, "{:.0f}"),
    ("p50_ms", 7, "{:.2f}"),
    ("p99_ms", 7, "{:.2f}"),
    ("server_cpu_us_per_req", 9, "{:.0f}"),
    ("auth_p50_us", 8, "{:.0f}"),
)
HEADINGS = {"server_cpu_us_per_req": "cpu µs/r", "auth_p50_us": "auth µs"}


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Cell counter, phase display and ETA from the average time of finished cells."""

    def __init__(self, total: int, done: int = 0) -> None:
        self.total = total
        self.done = done
        self.started = time.monotonic()
        self.finished_here = 0

    def begin(self, label: str) -> None:
        """Announce the next cell."""
        position = f"[{self.done + 1:>{len(str(self.total))}}/{self.total}]"
        self._write(f"{position} {label} ")

    def phase(self, name: str) -> None:
        """Show the cell's current phase."""
        self._write(f"{name}… ")

    def end(self, outcome: str) -> None:
        """Close the cell's line with its outcome and the ETA of the rest."""
        self.done += 1
        self.finished_here += 1
        remaining = self.total - self.done
        per_cell = (time.monotonic() - self.started) / self.finished_here
        eta = f" | ETA {_duration(per_cell * remaining)}" if remaining else ""
        self._write(f"{outcome}{eta}\n")

    def note(self, message: str) -> None:
        """A line of its own."""
        self._write(message + "\n")

    @staticmethod
    def _write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def cell_outcome(row: dict[str, Any]) -> str:
    """The short result shown at the end of a cell's progress line."""
    if row["status"] != "complete":
        return f"{row['status'].upper()}: {row.get('reason')}"
    parts = [
        f"{row['rps']:.0f} rps",
        f"p50 {row['p50_ms']:.2f} ms",
        f"p99 {row['p99_ms']:.2f} ms",
    ]
    if row["server_cpu_us_per_req"] is not None:
        parts.append(f"cpu {row['server_cpu_us_per_req']:.0f} µs/req")
    if row["saturated"]:
        parts.append("SATURATED")
    return ", ".join(parts)


def summary_table(rows: list[dict[str, Any]]) -> str:
    """One screen: the numbers that matter per cell, and its flags."""
    head = "".join(f"{HEADINGS.get(name, name):>{width}} " for name, width, _ in SUMMARY_COLUMNS)
    lines = [head + " flags"]
    for row in rows:
        cells = []
        for name, width, form in SUMMARY_COLUMNS:
            value = row.get(name)
            text = "-" if value is None or value == "" else form.format(value)
            cells.append(f"{text:>{width}} ")
        flags = []
        if row["status"] != "complete":
            flags.append(row["status"])
        if row.get("saturated"):
            flags.append("saturated")
        if row.get("failures"):
            flags.append(f"{row['failures']} failures")
        lines.append("".join(cells) + " " + ",".join(flags))
    return "\n".join(lines)
