"""What a fault did to users, from a cell's raw ``timeline.json`` and ``fault.json``.

The timeline counts answers per 100 ms of the window (by intended start), per node and status
(0: no connection). Against the fault's start and end (``fault.json``, epoch seconds):

- ``ok_share_during_fault``: the share of 2xx answers among requests that began during the fault
  (for an instant fault, ``node-kill`` or ``key-rotation``, during the ``AFTER_KILL_S`` after
  it);
- ``spurious_401``: 401 answers (to credentials valid before the fault) given while the fault
  lasted, i.e. before the runner began restoring Redis: a fault must never log users out (an
  instant fault lasts to the window's end: the node stays dead, the new key stays; for a key
  rotation these are its false rejects);
- ``sessions_lost``: the distinct users answered 401 from the fault's start to the window's end
  (each logs in again, as the read scenario does, and may be refused again: counted once), e.g.
  every session of a Redis that restarts without persistence;
- ``recovery_s``: from the fault's end to the end of the last disturbed stretch, where the
  100 ms buckets from the fault's start on are joined into stretches of at least
  ``MIN_STRETCH_REQUESTS`` answers (a p99 of 40 requests is their maximum: one outlier is not
  a disturbance) and a stretch is disturbed when an answer failed (5xx, no connection) or its
  p99 exceeds ``SLOWER_THAN_BEFORE`` times the highest p99 of the stretches before the fault
  (like with like: what noise alone gave a stretch of that size); empty when the window ended
  disturbed.

The validation scenario's tallies (``tallies.json``: ``kind|outcome`` → count) give
``false_accepts`` and ``false_rejects``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from loadtests.faults import fault_named

ACCEPTED_KINDS = ("valid", "held")  # the validation scenario's credentials a server must accept
AFTER_KILL_S = 1.0
SLOWER_THAN_BEFORE = 2.0  # a bucket whose p99 exceeds this many times the p99 before is disturbed
SLACK_MS = 1.0  # … plus this much, so a sub-millisecond baseline is not a hair trigger
MIN_STRETCH_REQUESTS = 100  # recovery is judged on stretches of buckets holding this many
COLUMNS = [
    "fault_started_s", "fault_ended_s", "ok_share_during_fault", "spurious_401",
    "sessions_lost", "recovery_s", "fault_failures", "false_accepts", "false_rejects",
    "validation_errors",
]  # fmt: skip


def p99(values: list[float]) -> float:
    """The 99th percentile of a list (nearest rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _failed(status: int) -> bool:
    return status == 0 or status >= 500


def fault_figures(cell_dir: Path) -> dict[str, Any]:
    """The fault columns of one finished fault cell ({} when it has no fault record)."""
    try:
        fault = json.loads((cell_dir / "fault.json").read_text())
        timeline = json.loads((cell_dir / "timeline.json").read_text())
    except (OSError, ValueError):
        return {}
    if "started" not in fault or "ended" not in fault:
        return {}
    origin, width = timeline["window_start"], timeline["bucket_s"]
    start, end = fault["started"] - origin, fault["ended"] - origin
    first = math.floor(start / width)
    instant = not fault_named(fault["fault"]).lasts  # node-kill, key-rotation: nothing to restore
    during_end = start + AFTER_KILL_S if instant else end
    last_during = max(first, math.ceil(during_end / width) - 1)
    # A 401 is spurious when the server gave it while the store was down or frozen (before the
    # runner began restoring it); after that, Redis answers and a 401 is a session it lost.
    refused_until = math.inf if instant else fault.get("restoring", fault["ended"])
    refused = [(t, user) for t, user in _refusals(timeline) if t >= fault["started"]]
    answered: dict[int, int] = defaultdict(int)
    ok: dict[int, int] = defaultdict(int)
    failed: dict[int, int] = defaultdict(int)
    for bucket, _node, status, count in timeline["counts"]:
        answered[bucket] += count
        ok[bucket] += count if 200 <= status < 300 else 0
        failed[bucket] += count if _failed(status) else 0
    during = [bucket for bucket in answered if first <= bucket <= last_during]
    latencies = {int(b): values for b, values in timeline["ok_latency_ms"].items()}
    return {
        "fault_started_s": round(start, 3),
        "fault_ended_s": round(end, 3),
        "ok_share_during_fault": (
            round(sum(ok[b] for b in during) / sum(answered[b] for b in during), 4)
            if during
            else None
        ),
        "spurious_401": sum(1 for t, _ in refused if t < refused_until),
        "sessions_lost": len({user for _, user in refused}),
        "recovery_s": _recovery_s(answered, failed, latencies, first, end, width),
        "fault_failures": sum(failed[b] for b in answered if b >= first),
    }


def _refusals(timeline: dict[str, Any]) -> list[tuple[float, str]]:
    """(when, which user) of every 401; timelines before users were recorded: one user each."""
    if "refused" in timeline:
        return [(float(t), str(user)) for t, user in timeline["refused"]]
    return [(float(t), f"#{index}") for index, t in enumerate(timeline.get("refused_at", []))]


def stretches(buckets: list[int], answered: dict[int, int], least: int) -> list[list[int]]:
    """Consecutive buckets joined until each stretch holds ``least`` answers (a short last
    stretch joins the one before it)."""
    joined: list[list[int]] = []
    current: list[int] = []
    for bucket in buckets:
        current.append(bucket)
        if sum(answered[b] for b in current) >= least:
            joined.append(current)
            current = []
    if current:
        if joined:
            joined[-1].extend(current)
        else:
            joined.append(current)
    return joined


def _p99_of(stretch: list[int], latencies: dict[int, list[float]]) -> float | None:
    """The p99 of the answered latencies of a stretch of buckets (None when it has none)."""
    values = [value for bucket in stretch for value in latencies.get(bucket, [])]
    return p99(values) if values else None


def _recovery_s(
    answered: dict[int, int],
    failed: dict[int, int],
    latencies: dict[int, list[float]],
    first: int,
    end: float,
    width: float,
) -> float | None:
    """Fault end → the first bucket after which nothing failed and latency was as before."""
    before = stretches(sorted(b for b in answered if b < first), answered, MIN_STRETCH_REQUESTS)
    noise = [found for stretch in before if (found := _p99_of(stretch, latencies)) is not None]
    # Like with like: the noisiest stretch of the same size before the fault, not the pooled
    # p99 of all of them (a 100-answer stretch's p99 is nearly its maximum: noise alone lifts
    # it above a pooled p99, and a window would then end "disturbed" by one scheduler hiccup).
    bound = SLOWER_THAN_BEFORE * max(noise) + SLACK_MS if noise else math.inf
    buckets = sorted(bucket for bucket in answered if bucket >= first)
    joined = stretches(buckets, answered, MIN_STRETCH_REQUESTS)
    disturbed = []
    for stretch in joined:
        found = _p99_of(stretch, latencies)
        if any(failed[bucket] for bucket in stretch) or (found is not None and found > bound):
            disturbed.append(stretch)
    if not disturbed:
        return 0.0
    if disturbed[-1] is joined[-1]:
        return None  # still disturbed when the window ended
    return round(max(0.0, (disturbed[-1][-1] + 1) * width - end), 3)


def validation_figures(cell_dir: Path) -> dict[str, Any]:
    """False accepts, false rejects and errors over every kind of the validation scenario."""
    try:
        tallies = json.loads((cell_dir / "tallies.json").read_text())
    except (OSError, ValueError):
        return {}
    totals: dict[str, int] = defaultdict(int)
    for key, count in tallies.items():
        totals[key.split("|", 1)[1]] += count
    return {
        "false_accepts": totals["false_accept"],
        "false_rejects": totals["false_reject"],
        "validation_errors": totals["error"],
    }
