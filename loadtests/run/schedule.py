"""The open model's schedule: when each user means to send, and which sends it never made.

Each open-model user is one arrival stream with a mean gap of ``interval`` seconds; over all
users that is the offered rate. Gaps are exponential (``poisson``: the superposition of the
streams is a Poisson process, with the bursts real clients make) or all equal (``uniform``:
evenly spaced arrivals, almost no burstiness). A schedule keeps every send time it planned, so
the runner can count how many sends fell inside the measured window and list the ones that were
planned there but never sent: those are censored requests, not silently lost ones.
"""

from __future__ import annotations

import bisect
import random

ARRIVALS = ("poisson", "uniform")


class Schedule:
    """One open-model user's planned send times, and how many of them it has sent.

    Times are kept as offsets from the stream's start: added to an epoch time (about 1.8e9 s,
    whose float spacing is 0.24 µs) gap after gap, they would drift by a rounding error per gap.
    """

    def __init__(
        self, start: float, interval: float, arrivals: str, rng: random.Random | None = None
    ) -> None:
        """A stream from ``start`` on: its first send one gap later (uniform: a random phase)."""
        if arrivals not in ARRIVALS:
            raise ValueError(f"arrivals must be one of {', '.join(ARRIVALS)}, not {arrivals!r}")
        if interval <= 0:
            raise ValueError(f"the mean interval must be positive, not {interval!r}")
        self.start = start
        self.interval = interval
        self.poisson = arrivals == "poisson"
        self.rng = rng or random.Random()
        # Uniform streams start at random phases, so together they are evenly spread.
        self.phase = (
            self.rng.expovariate(1.0 / interval) if self.poisson else self.rng.uniform(0, interval)
        )
        self.offsets = [self.phase]
        self.sent = 0

    @property
    def times(self) -> list[float]:
        """The planned send times so far, in epoch seconds."""
        return [self.start + offset for offset in self.offsets]

    def _plan_one(self) -> None:
        if self.poisson:
            self.offsets.append(self.offsets[-1] + self.rng.expovariate(1.0 / self.interval))
        else:
            self.offsets.append(self.phase + len(self.offsets) * self.interval)

    def _planned_until(self, end: float) -> None:
        while self.start + self.offsets[-1] < end:
            self._plan_one()

    def next_send(self) -> float:
        """The earliest planned send time not yet sent."""
        if self.sent >= len(self.offsets):
            self._plan_one()
        return self.start + self.offsets[self.sent]

    def mark_sent(self) -> None:
        """The send returned by ``next_send`` was made."""
        self.sent += 1

    def planned_between(self, start: float, end: float) -> int:
        """How many planned send times fall in [start, end)."""
        if end <= start:
            return 0
        self._planned_until(end)
        low, high = start - self.start, end - self.start
        return bisect.bisect_left(self.offsets, high) - bisect.bisect_left(self.offsets, low)

    def unsent_between(self, start: float, end: float) -> list[float]:
        """Planned send times in [start, end) that were never sent."""
        if end <= start:
            return []
        self._planned_until(end)
        low, high = start - self.start, end - self.start
        return [self.start + o for o in self.offsets[self.sent :] if low <= o < high]
