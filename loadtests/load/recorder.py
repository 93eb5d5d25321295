"""Locust event listeners that record every measured request into HDR histograms.

Only requests that start inside the measured window are recorded: after every user has started
(Locust's spawning_complete) and the warm-up (``AUTHBENCH_WARMUP_S``) after that, and, when
``AUTHBENCH_DURATION_S`` is set, for that long. Users start over about a second and each logs in
as it starts (a password hash and a signature per user): a window opened during that ramp timed
its first requests behind the logins' queue (capacity probes failed on 300 ms p99s at a third of
their capacity). Locust's own
statistics are reset when the window opens, so both start with the same window.

Successful requests go to ``latency_us``, failed ones to ``failed_us``: a fast 401 never
flatters a percentile. In the open model a request is timed from its intended start (no
coordinated omission), the lateness (intended → actual send) of every send made in the window
goes to ``lateness_us``, and the process counts how many sends its users' schedules planned
inside the window: the planned ones that were never sent are the ``unsent`` requests, the worst
tail of all. After the window, a drain of at most ``AUTHBENCH_STOP_AFTER_WINDOW`` seconds lets
the requests planned inside it be sent and answered (a lone process stops as soon as they all
are). When the test stops (after the drain and Locust's stop timeout), every request of
the window that has no answer yet, whether still in flight or never sent, is recorded in
``censored_us`` at (stop - intended start): its latency is at least that, and the percentiles
count it so, rather than dropping the slowest requests of all.

A fault cell (``AUTHBENCH_TIMELINE``) also keeps a timeline: per 100 ms of the window (by each
request's intended start), per node and per status code (0: no answer) how many requests, and
the latency of each successful one, and the instant each 401 answer arrived. Scenarios may
``tally`` named outcomes of requests made in the window (the validation scenario's false accepts
and rejects).

A capacity probe (``AUTHBENCH_STOP_ABOVE_MS``, a lone process only) ends its window as soon as
its p99 is certain to exceed that bound: once more than 1% of the requests its schedules planned
for the whole window have been answered slower than it, no later request can bring the p99
back under it. The probe has failed either way; measuring it to the end would only cost time.
The part says so (``stopped_early``), and the window's length is what it measured.

Every Locust process (a lone one, or each worker) writes its own part file at its end into
``generator-parts/`` beside ``AUTHBENCH_HDR_OUT``; :mod:`loadtests.load.generator_parts` merges the
parts exactly once every process has finished, so no worker's last requests are lost.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent.event import Event
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.load.generator_parts import (
    DRAIN_ANSWERED,
    DRAIN_BOUND,
    WINDOW_OPEN_MARKER,
    merge_parts,
    part_path,
    write_part,
)
from loadtests.load.histograms import (
    AUTH,
    AUTH_COMPUTE,
    CENSORED,
    FAILED,
    KDF,
    LATENCY,
    LATENESS,
    STORE,
    HistogramSet,
    parse_server_timing,
)
from loadtests.run.schedule import Schedule

INTENDED_START = "intended_start"
CLIENT = "client"  # fault cells: which simulated user sent the request
CENSORED_NAME = "no answer by the stop"
TIMELINE_BUCKET_S = 0.1
UNAUTHORIZED = 401
MAX_REFUSALS_KEPT = 100_000
SPAWN_WAIT_S = 3.0  # the window opens after this at the latest, spawning complete or not
DRAIN_POLL_S = 0.01  # how often a lone process checks whether its window's requests are answered


class WindowRecorder:
    """Histograms and counters of one Locust process, gated by the measured window."""

    def __init__(self) -> None:
        self.histograms = HistogramSet()
        self.environment: Environment | None = None
        self.warmup_s = float(os.environ.get("AUTHBENCH_WARMUP_S", "0") or 0)
        duration = os.environ.get("AUTHBENCH_DURATION_S")
        self.duration_s = float(duration) if duration else None
        self.timeline = bool(os.environ.get("AUTHBENCH_TIMELINE"))
        bound = os.environ.get("AUTHBENCH_STOP_ABOVE_MS")
        self.stop_above_us = float(bound) * 1000.0 if bound else None
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new test starts."""
        self.histograms.clear()
        self.window_start: float | None = None
        self.window_end: float | None = None
        self.schedules: list[Schedule] = []
        self.in_flight: Counter[float] = Counter()  # intended starts sent and not yet answered
        self.stopped = False
        self.sent_on_schedule = 0
        self.seen_since_open = 0
        self.locust_since_open = 0
        self.timeline_counts: Counter[str] = Counter()
        self.timeline_ok_ms: defaultdict[int, list[float]] = defaultdict(list)
        self.refused: list[tuple[float, str]] = []  # (when, which user) of each 401
        self.tallies: Counter[str] = Counter()
        self.above_bound = 0  # answered slower than AUTHBENCH_STOP_ABOVE_MS, in the window
        self.planned_for_window = 0  # what the schedules plan for the whole window
        self.stopped_early: str | None = None
        self.drain_ended: str | None = None  # DRAIN_ANSWERED or DRAIN_BOUND (open model)
        self.spawned = Event()  # every user of this process has started

    def open_window(self) -> None:
        """Start recording now (and stop after the duration, when one is set).

        The instant is also written to ``window-open`` beside the histograms (first process
        wins), so the runner can place a fault relative to the window.
        """
        self.window_start = time.time()
        if self.duration_s is not None:
            self.window_end = self.window_start + self.duration_s
        hdr_out = os.environ.get("AUTHBENCH_HDR_OUT")
        marker = Path(hdr_out).parent / WINDOW_OPEN_MARKER if hdr_out else None
        if marker is not None and not marker.exists():
            marker.write_text(f"{self.window_start!r}\n")

    def tally(self, outcome: str, began: float) -> None:
        """Count a named outcome of a request that began (intended start) at ``began``."""
        if self.measuring(began):
            self.tallies[outcome] += 1

    def close_window(self) -> None:
        """The test stopped: the window ends now, or earlier where the duration ended it."""
        now = time.time()
        self.window_end = now if self.window_end is None else min(self.window_end, now)

    def add_schedule(self, schedule: Schedule) -> None:
        """An open-model user's send times."""
        self.schedules.append(schedule)

    def send_started(self, intended: float) -> None:
        """An open-model request (timed from ``intended``) was handed to the client."""
        self.in_flight[intended] += 1

    def planned_in_window(self) -> int:
        """Sends the open-model schedules planned inside the window."""
        if self.window_start is None or self.window_end is None:
            return 0
        return sum(s.planned_between(self.window_start, self.window_end) for s in self.schedules)

    def settled(self) -> bool:
        """Whether every request the schedules planned inside the window was sent and answered
        (nothing left to censor)."""
        if self.window_start is None or self.window_end is None:
            return False
        start, end = self.window_start, self.window_end
        if any(start <= intended < end for intended in self.in_flight):
            return False
        return all(schedule.next_send() >= end for schedule in self.schedules)

    def censor(self, stop: float) -> None:
        """Record every request of the window still unanswered at ``stop`` as at least that long.

        Those are the requests in flight and the planned ones never sent: the tail that
        coordinated omission would otherwise hide at the window's end.
        """
        if self.window_start is None or self.window_end is None:
            return
        unanswered = [t for t, count in self.in_flight.items() for _ in range(count)]
        for schedule in self.schedules:
            unanswered += schedule.unsent_between(self.window_start, self.window_end)
        for intended in unanswered:
            if self.measuring(intended):
                self.histograms.record(CENSORED, CENSORED_NAME, (stop - intended) * 1e6)

    def measuring(self, start_time: float) -> bool:
        """Whether a request that started at ``start_time`` (epoch s) is in the window."""
        if self.window_start is None or start_time < self.window_start:
            return False
        return self.window_end is None or start_time < self.window_end

    def on_request(
        self,
        name: str,
        response_time: float,
        start_time: float,
        context: dict[str, Any],
        response: Any = None,
        exception: Exception | None = None,
        url: str | None = None,
        **_: Any,
    ) -> None:
        if self.window_start is not None:
            self.seen_since_open += 1
        intended = context.get(INTENDED_START) if context else None
        if intended is not None:
            self._answered(intended)
        if intended is not None and self.measuring(start_time):
            # Lateness of every send made in the window, even one planned before it: a generator
            # far behind its schedule shows here, not only in its unsent count.
            self.histograms.record(LATENESS, name, (start_time - intended) * 1e6)
        began = intended if intended is not None else start_time
        if not self.measuring(began):
            return
        latency_us = (start_time - began) * 1e6 + response_time * 1000.0
        if intended is not None:
            self.sent_on_schedule += 1
        if self.timeline:
            answered = start_time + response_time / 1000.0
            client = str(context.get(CLIENT, "")) if context else ""
            self._on_timeline(began, answered, url, response, latency_us, exception is None, client)
        if exception is not None:
            self.histograms.record(FAILED, name, latency_us)
            return
        self.histograms.record(LATENCY, name, latency_us)
        if self.stop_above_us is not None and latency_us > self.stop_above_us:
            self._count_above_bound()
        headers = getattr(response, "headers", None)
        timing = parse_server_timing(headers.get("server-timing") if headers else None)
        if "auth" not in timing:
            return
        self.histograms.record(AUTH, name, timing["auth"])
        if "store" in timing:
            self.histograms.record(STORE, name, timing["store"])
        if "kdf" in timing:
            self.histograms.record(KDF, name, timing["kdf"])
        # The auth step's own work, per request: never a difference of means over other requests.
        compute = timing["auth"] - timing.get("store", 0.0) - timing.get("kdf", 0.0)
        self.histograms.record(AUTH_COMPUTE, name, max(compute, 0.0))

    def _count_above_bound(self) -> None:
        """One more answer slower than the bound: end the window once the p99 is certain to
        exceed it (every request the window can still record is among the planned ones)."""
        self.above_bound += 1
        if self.stopped_early or self.window_start is None or self.duration_s is None:
            return
        if not self.planned_for_window:
            # Certain only once every user's schedule is known: a user still starting would
            # plan more requests into the window.
            if len(self.schedules) < int(os.environ.get("AUTHBENCH_LOAD_USERS", "0") or 0):
                return
            end = self.window_start + self.duration_s
            self.planned_for_window = sum(
                schedule.planned_between(self.window_start, end) for schedule in self.schedules
            )
        planned = self.planned_for_window
        if not planned or self.above_bound <= 0.01 * planned:
            return
        self.stopped_early = (
            f"{self.above_bound} of at most {planned} requests above "
            f"{self.stop_above_us / 1000.0:g} ms: the p99 can only be above it"
        )
        self.close_window()
        runner = self.environment.runner if self.environment is not None else None
        if runner is not None and not isinstance(runner, WorkerRunner):
            gevent.spawn(runner.quit)

    def _answered(self, intended: float) -> None:
        left = self.in_flight[intended] - 1
        if left > 0:
            self.in_flight[intended] = left
        else:
            del self.in_flight[intended]

    def _on_timeline(
        self,
        began: float,
        answered: float,
        url: str | None,
        response: Any,
        latency_us: float,
        ok: bool,
        client: str,
    ) -> None:
        assert self.window_start is not None
        bucket = int((began - self.window_start) / TIMELINE_BUCKET_S)
        node = urlsplit(url).netloc if url else ""
        status = int(getattr(response, "status_code", 0) or 0)
        self.timeline_counts[f"{bucket}|{node}|{status}"] += 1
        if status == UNAUTHORIZED and len(self.refused) < MAX_REFUSALS_KEPT:
            self.refused.append((round(answered, 4), client))  # when a user was logged out
        if ok:
            self.timeline_ok_ms[bucket].append(round(latency_us / 1000.0, 3))

    def part(self) -> dict[str, Any]:
        """What this process measured, for its part file."""
        return {
            "window_start": self.window_start,
            "window_end": self.window_end,
            "planned_in_window": self.planned_in_window(),
            "sent_on_schedule": self.sent_on_schedule,
            "seen_since_open": self.seen_since_open,
            "locust_since_open": self.locust_since_open,
            "histograms": self.histograms.encode(),
            "timeline": {
                "bucket_s": TIMELINE_BUCKET_S,
                "counts": dict(self.timeline_counts),
                "ok_latency_ms": {str(b): v for b, v in self.timeline_ok_ms.items()},
                "refused": self.refused,
            }
            if self.timeline
            else None,
            "tallies": dict(self.tallies),
            "stopped_early": self.stopped_early,
            "drain_ended": self.drain_ended,
        }


recorder = WindowRecorder()
events.request.add_listener(recorder.on_request)


def _open_window(environment: Environment) -> None:
    """Open the window and reset Locust's statistics at the same instant (no yield between).

    With ``AUTHBENCH_STOP_AFTER_WINDOW`` set (the runner sets it), the lone process or the
    master ends the test once the window and the drain after it are over, rather than at
    Locust's whole-second ``--run-time``, which stays as the upper bound.
    """
    recorder.spawned.wait(SPAWN_WAIT_S)
    if recorder.warmup_s > 0:
        gevent.sleep(recorder.warmup_s)
    recorder.open_window()
    if environment.stats is not None:
        environment.stats.reset_all()
    runner = environment.runner
    stop_after = os.environ.get("AUTHBENCH_STOP_AFTER_WINDOW")
    if stop_after and recorder.duration_s is not None and not isinstance(runner, WorkerRunner):
        gevent.sleep(recorder.duration_s)
        _drain(runner, float(stop_after))
        if runner is not None:
            runner.quit()


def _drain(runner: Any, bound_s: float) -> None:
    """Wait up to ``bound_s`` for the window's planned requests to be sent and answered.

    A lone process sees its own users' schedules, so it stops as soon as nothing of the window
    is left (a fast server's drain then costs milliseconds, not the whole bound); a master cannot
    see its workers' users and waits out the bound.
    """
    if bound_s <= 0:  # the closed model: no schedule, nothing planned to wait for
        return
    deadline = time.time() + bound_s
    if not isinstance(runner, MasterRunner):
        while time.time() < deadline:
            if recorder.settled():
                recorder.drain_ended = DRAIN_ANSWERED
                return
            gevent.sleep(DRAIN_POLL_S)
    gevent.sleep(max(0.0, deadline - time.time()))
    recorder.drain_ended = DRAIN_BOUND


def _locust_count(environment: Environment) -> int:
    """Requests Locust itself counted since its statistics were last reset (failed included)."""
    return environment.stats.total.num_requests if environment.stats is not None else 0


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    recorder.reset()
    recorder.environment = environment
    gevent.spawn(_open_window, environment)


@events.spawning_complete.add_listener
def _on_spawning_complete(**_: Any) -> None:
    recorder.spawned.set()


@events.report_to_master.add_listener
def _count_shipped(client_id: str, data: dict[str, Any]) -> None:
    """A worker is about to ship (and clear) its statistics: count them first.

    This listener was registered when the locustfile was imported, before the runner added
    Locust's own, so it sees the statistics before they are cleared.
    """
    if recorder.window_start is not None and recorder.environment is not None:
        recorder.locust_since_open += _locust_count(recorder.environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    """Close the window and write this process's part, once per test.

    Locust fires test_stop twice when its ``--run-time`` limit calls quit() while the recorder's
    own quit is still waiting for users to finish (Locust only ignores a second stop once the
    first is over): counting Locust's statistics twice doubled its count.
    """
    hdr_out = os.environ.get("AUTHBENCH_HDR_OUT")
    if isinstance(environment.runner, MasterRunner) or not hdr_out or recorder.stopped:
        return
    recorder.stopped = True
    recorder.close_window()
    recorder.censor(time.time())
    recorder.locust_since_open += _locust_count(environment)
    runner = environment.runner
    name = runner.client_id if isinstance(runner, WorkerRunner) else "local"
    write_part(part_path(hdr_out, name), recorder.part())
    if not isinstance(runner, WorkerRunner):
        merge_parts(hdr_out)
