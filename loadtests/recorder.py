"""Locust event listeners that record every measured request into HDR histograms.

Only requests that start inside the measured window are recorded: after the warm-up
(``AUTHBENCH_WARMUP_S``) and, when ``AUTHBENCH_DURATION_S`` is set, for that long. Locust's own
statistics are reset when the window opens, so both start with the same window. A request
whose user set an intended start time (the open model) is recorded from that time, which keeps
coordinated omission out of the numbers. Workers ship their histograms to the master with each
report; the master (or a lone process) writes the merged set to ``AUTHBENCH_HDR_OUT`` and the
window's bounds to ``AUTHBENCH_WINDOW_OUT`` at the end.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.histograms import AUTH, KDF, LATENCY, STORE, HistogramSet, parse_server_timing

HDR_KEY = "authbench_hdr"
INTENDED_START = "intended_start"


class WindowRecorder:
    """Histograms of one Locust process, gated by the measured window."""

    def __init__(self) -> None:
        self.histograms = HistogramSet()
        self.worker_requests: dict[str, int] = {}
        self.warmup_s = float(os.environ.get("AUTHBENCH_WARMUP_S", "0") or 0)
        duration = os.environ.get("AUTHBENCH_DURATION_S")
        self.duration_s = float(duration) if duration else None
        self.window_start: float | None = None
        self.window_end: float | None = None

    def open_window(self) -> None:
        """Start recording now (and stop after the duration, when one is set)."""
        self.window_start = time.time()
        if self.duration_s is not None:
            self.window_end = self.window_start + self.duration_s

    def close_window(self) -> None:
        """The test stopped: the window ends now, or earlier where the duration ended it."""
        now = time.time()
        self.window_end = now if self.window_end is None else min(self.window_end, now)

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
        **_: Any,
    ) -> None:
        intended = context.get(INTENDED_START) if context else None
        began = intended if intended is not None else start_time
        if not self.measuring(began):
            return
        latency_us = (start_time - began) * 1e6 + response_time * 1000.0
        self.histograms.record(LATENCY, name, latency_us)
        headers = getattr(response, "headers", None)
        timing = parse_server_timing(headers.get("server-timing") if headers else None)
        if "auth" in timing:
            self.histograms.record(AUTH, name, timing["auth"])
        if "store" in timing:
            self.histograms.record(STORE, name, timing["store"])
        if "kdf" in timing:
            self.histograms.record(KDF, name, timing["kdf"])


recorder = WindowRecorder()
events.request.add_listener(recorder.on_request)


def _open_window(environment: Environment) -> None:
    if recorder.warmup_s > 0:
        gevent.sleep(recorder.warmup_s)
    recorder.open_window()
    if environment.stats is not None and not isinstance(environment.runner, WorkerRunner):
        environment.stats.reset_all()


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    recorder.histograms.clear()
    recorder.worker_requests.clear()
    recorder.window_start = recorder.window_end = None
    gevent.spawn(_open_window, environment)


@events.report_to_master.add_listener
def _ship_to_master(client_id: str, data: dict[str, Any]) -> None:
    data[HDR_KEY] = recorder.histograms.encode()
    recorder.histograms.clear()


@events.worker_report.add_listener
def _merge_from_worker(client_id: str, data: dict[str, Any]) -> None:
    if HDR_KEY not in data:
        return
    shipped = HistogramSet()
    shipped.merge_encoded(data[HDR_KEY])
    count = shipped.total(LATENCY)
    recorder.worker_requests[client_id] = recorder.worker_requests.get(client_id, 0) + count
    recorder.histograms.merge_encoded(data[HDR_KEY])


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    recorder.close_window()
    if isinstance(environment.runner, WorkerRunner):
        return
    if isinstance(environment.runner, MasterRunner):
        gevent.sleep(1.5)  # the workers' last reports carry their last histograms
    hdr_out = os.environ.get("AUTHBENCH_HDR_OUT")
    if hdr_out:
        recorder.histograms.save(Path(hdr_out))
        generators = {
            "worker_requests": recorder.worker_requests,
            "merged_requests": recorder.histograms.total(LATENCY),
        }
        (Path(hdr_out).parent / "generators.json").write_text(json.dumps(generators) + "\n")
    window_out = os.environ.get("AUTHBENCH_WINDOW_OUT")
    if window_out:
        bounds = {"window_start": recorder.window_start, "window_end": recorder.window_end}
        Path(window_out).write_text(json.dumps(bounds) + "\n")
