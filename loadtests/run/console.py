"""What a run prints: one progress line per cell with its phase and an ETA, then a summary.

On a terminal each line shows the cell's phases as they happen; under CI (``CI`` set) or when
stdout is not a terminal, a cell's line is printed once, when it ends, without the phases.
Every line starts with the cells done, the share of the expected work done and the elapsed
time; the ETA weighs what remains by each cell's window and each capacity search's probes.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

SUMMARY_COLUMNS = (
    ("scheme", 16, "{}"),
    ("library", 8, "{}"),
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


def interactive() -> bool:
    """Whether phases may be shown as they happen: a terminal, and not under CI."""
    return sys.stdout.isatty() and not os.environ.get("CI")


class Progress:
    """Cell counter, share of the work done, elapsed time and an ETA.

    ``work`` is the expected seconds of every item (cells and capacity searches) in order of
    their weight units; the ETA scales what remains by how long the finished work really took.
    """

    def __init__(self, total: int, done: int = 0, work_left: float | None = None) -> None:
        self.total = total
        self.done = done
        self.started: float | None = None  # the first item's start: set-up time is not work
        self.work_left = float(total - done) if work_left is None else work_left
        self.work_total = self.work_left
        self.work_done_here = 0.0
        self.current = 1.0
        self.live = interactive()
        self._pending = ""

    def begin(self, label: str, work: float = 1.0) -> None:
        """Announce the next item, with its expected work (seconds, or 1 when unweighted)."""
        self.current = work
        if self.started is None:
            self.started = time.monotonic()
        share = 1 - self.work_left / self.work_total if self.work_total else 1.0
        elapsed = _duration(time.monotonic() - self.started)
        position = f"[{self.done + 1:>{len(str(self.total))}}/{self.total} {share:>4.0%} {elapsed}]"
        self._pending = f"{position} {label} "
        if self.live:
            self._flush()

    def phase(self, name: str) -> None:
        """Show the item's current phase (on a terminal only)."""
        if self.live:
            self._write(f"{name}… ")

    def end(self, outcome: str) -> None:
        """Close the item's line with its outcome and the ETA of the rest."""
        self.done += 1
        self.work_left = max(0.0, self.work_left - self.current)
        self.work_done_here += self.current
        per_work = (time.monotonic() - (self.started or 0.0)) / self.work_done_here
        eta = f" | ETA {_duration(per_work * self.work_left)}" if self.done < self.total else ""
        self._pending += f"{outcome}{eta}\n"
        self._flush()

    def note(self, message: str) -> None:
        """A line of its own."""
        self._write(message + "\n")

    def _flush(self) -> None:
        self._write(self._pending)
        self._pending = ""

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
