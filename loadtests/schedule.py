"""The open model's schedule: when each user means to send, and how many sends fall in a window.

Each open-model user sends at ``first``, ``first + interval``, ``first + 2·interval``, …; over
all users that is the offered rate. Counting the schedule points inside the measured window tells
how many requests the generator *should* have sent there, so the ones it did not send are
counted, not silently lost.
"""

from __future__ import annotations

import math


def planned_sends(first: float, interval: float, start: float, end: float) -> int:
    """How many of the times first + k·interval (k ≥ 0) fall in [start, end)."""
    if interval <= 0 or end <= start:
        return 0
    low = max(0, math.ceil((start - first) / interval))
    high = math.ceil((end - first) / interval)  # first k at or past the end
    return max(0, high - low)
