"""The progress line: share of the work done, a weighted ETA, and no phase chatter in CI logs."""

from __future__ import annotations

import pytest

from loadtests.run import console
from loadtests.run.console import Progress


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_eta_weighs_what_remains_by_its_expected_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    progress = Progress(total=3, done=0, work_left=10.0 + 10.0 + 40.0)  # two cells, one search
    progress.begin("cell a", 10.0)
    clock.now += 20.0  # the machine runs at half the expected speed
    progress.end("ok")
    progress.begin("cell b", 10.0)
    clock.now += 20.0
    progress.end("ok")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("ok | ETA 1m40s")  # (10 + 40) × 2 s per unit of work
    assert lines[1].endswith("ok | ETA 1m20s")  # the 40-unit search alone, at 2 s per unit
    assert lines[1].startswith("[2/3  17% 20s] cell b")  # 10 of 60 units were done when b began


def test_phases_stay_out_of_a_log_and_each_item_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    progress = Progress(total=2)
    progress.begin("cell a")
    progress.phase("warm-up 0.5s")
    progress.end("1000 rps")
    out = capsys.readouterr().out
    assert "warm-up" not in out
    assert out.count("\n") == 1 and "cell a" in out and "1000 rps" in out
