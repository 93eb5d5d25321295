"""``make decide``: size a team's workload on a run's measurements and put it in the report.

The workload file is copied into the run folder as ``workload.toml`` (so the report's section is
rebuilt from the run folder alone, like every other figure), the report is rebuilt, and the
table is returned for the console.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from analysis.cost import OPERATING_POINT, cheapest, sizing_table, sizings, unmet_windows
from analysis.report import WORKLOAD_FILE, write_report
from analysis.tidy import RunData
from analysis.workload import WorkloadError, load_workload


def decide(run: RunData, workload_path: Path) -> str:
    """Validate the workload and size it; only then keep a copy with the run and rebuild the
    report (a run that cannot size anything is refused with nothing written); the console text."""
    workload = load_workload(workload_path)
    rows = sizings(run, workload)
    if not rows:
        raise WorkloadError(
            f"{run.run_dir}: no scheme has the single-node read figures sizing needs "
            "(a run of the quick or full matrix has them)"
        )
    _, verdict = cheapest(rows)
    verdict = "\n".join([*unmet_windows(rows, workload), verdict])
    table = sizing_table(rows, workload).drop(columns=["notes"]).to_string(index=False)
    shutil.copyfile(workload_path, run.run_dir / WORKLOAD_FILE)
    write_report(run)
    return (
        f"{table}\n\n{verdict}\nOperating point: {OPERATING_POINT}.\n"
        f"report: {run.run_dir / 'report.html'}"
    )
