"""Decide until decided: more interleaved repetitions, only where a primary comparison is open.

After a finished run, its primary comparison families (the matrix's ``primary``: by default the
seed's claims on latency and on CPU) are judged. While some comparison is undecided and the time
budget allows, the cells of the undecided comparisons (and only those) get more repetitions,
interleaved and rotated like the run's own, and the families are judged again. A round adds as
many repetitions as the power estimate says the slowest undecided comparison needs, cut to
what the remaining budget holds. The number of looks is fixed before the first look
(``PLANNED_LOOKS``) and every test is made at 5% ÷ looks (Bonferroni over looks): stopping as
soon as a verdict appears cannot inflate the error. The state is printed after every look and
recorded in the manifest; the run's report reads its verdicts with the same correction.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from analysis.claims import PRIMARY, Side, judged_primary
from analysis.tidy import RunData, RunFolderError, load_run
from analysis.verdicts import EQUIVALENT, HIGHER, LOWER, MOST_REPETITIONS, Verdict
from loadtests.run.matrix import Cell
from loadtests.run.run_folder import write_json
from loadtests.run.runner import resumed_run, run_extra_round

PLANNED_LOOKS = 3
DECIDED = (HIGHER, LOWER, EQUIVALENT)


@dataclass(frozen=True)
class Open:
    """An undecided primary comparison: its family, sides and verdict."""

    family: str
    mine: Side
    other: Side
    verdict: Verdict


def _state(run: RunData) -> tuple[list[str], list[Open]]:
    """Each primary comparison's verdict as a line, and the ones still undecided."""
    lines, undecided = [], []
    for name in run.manifest.get("primary", list(PRIMARY)):
        primary = PRIMARY[name]
        pairs = primary.comparisons(run)
        if not pairs:
            lines.append(f"{name}: not measured in this run")
            continue
        for (mine, other), (verdict, _) in zip(pairs, judged_primary(run, primary), strict=True):
            lines.append(f"{name}: {mine.label} vs {other.label}: {verdict.short()}")
            if verdict.kind not in DECIDED:
                undecided.append(Open(name, mine, other, verdict))
    return lines, undecided


def _cells_of(run_cells: tuple[Cell, ...], sides: list[Side]) -> list[Cell]:
    """The matrix cells a comparison's sides were read from."""
    wanted = {
        (
            s.axes["scheme"],
            s.axes["scenario"],
            s.axes["topology"],
            s.axes.get("model", "closed"),
        )
        for s in sides
    }
    return [
        cell
        for cell in run_cells
        if (cell.scheme, cell.scenario, cell.topology, cell.settings.model) in wanted
        and (cell.settings.model == "closed" or cell.settings.equal_load)
    ]


def _seconds_per_cell(run_dir: Path) -> float:
    """The mean wall time of the run's finished cells, from their cell.json (start to end)."""
    spans = []
    for path in (run_dir / "cells").glob("*/cell.json"):
        meta = json.loads(path.read_text())
        if meta.get("status") == "complete" and meta.get("ended"):
            start = datetime.fromisoformat(meta["started"])
            end = datetime.fromisoformat(meta["ended"])
            spans.append((end - start).total_seconds())
    return 1.5 * sum(spans) / len(spans) if spans else 10.0  # services start between cells


def _record(run_dir: Path, **fields: Any) -> dict[str, Any]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    record = manifest.setdefault("until_decided", {})
    for key, value in fields.items():
        if key == "look":
            record.setdefault("looks", []).append(value)
        else:
            record[key] = value
    write_json(run_dir / "manifest.json", manifest)
    return manifest


def until_decided(run_dir: Path, budget_s: float, say: Any = print) -> bool:
    """Add repetitions round by round until every primary comparison is decided or the budget
    ends; True when all are decided. The run's manifest records every look."""
    started = time.monotonic()
    data = load_run(run_dir)
    if data.manifest.get("status") != "complete":
        raise RunFolderError(f"{run_dir}: finish the run first (make resume RUN=…)")
    if data.manifest.get("until_decided"):
        raise RunFolderError(f"{run_dir}: already decided adaptively once; start a new run")
    _record(run_dir, planned_looks=PLANNED_LOOKS, budget_s=budget_s)
    for look in range(1, PLANNED_LOOKS + 1):
        data = load_run(run_dir)
        lines, undecided = _state(data)
        say(f"look {look} of {PLANNED_LOOKS} (every test at 5% ÷ {PLANNED_LOOKS}):")
        for line in lines:
            say(f"  {line}")
        _record(run_dir, look={"look": look, "state": lines})
        if not undecided:
            say("every primary comparison is decided")
            return True
        if look == PLANNED_LOOKS:
            break
        needed = max(o.verdict.needed or MOST_REPETITIONS for o in undecided)
        have = min(o.verdict.ratio.n if o.verdict.ratio else 0 for o in undecided)
        run = resumed_run(str(run_dir), run_dir.parent)
        cells = _cells_of(run.matrix.cells, [s for o in undecided for s in (o.mine, o.other)])
        per_round = _seconds_per_cell(run_dir) * len(cells)
        left = budget_s - (time.monotonic() - started)
        rounds = min(max(needed - have, 1), int(left // per_round))
        if rounds < 1:
            say(f"the budget ends: {left:.0f} s left, a round of {len(cells)} cells takes "
                f"≈ {per_round:.0f} s")  # fmt: skip
            _finish(run)
            break
        say(
            f"adding {rounds} interleaved repetition(s) of {len(cells)} cells (≈ "
            f"{rounds * per_round:.0f} s; {needed} repetitions would decide the slowest)"
        )
        try:
            for _ in range(rounds):
                if budget_s - (time.monotonic() - started) < per_round:
                    say("the budget ends before the next repetition")
                    break
                run_extra_round(run, cells)
        finally:
            _finish(run)
    say("undecided when the looks or the budget ended: the report says what would decide it")
    return False


def _finish(run: Any) -> None:
    """Mark the run complete again and drop the round's temporary keys."""
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    manifest["status"] = "complete"
    write_json(run.run_dir / "manifest.json", manifest)
    shutil.rmtree(run.keys_dir, ignore_errors=True)
