"""A run's folder under ``results/``: its id, its manifest, and the ``latest`` pointer.

A folder is created once and never overwritten; the manifest records where, when, with what
code and on what machine the numbers were made, with a ``schema_version`` for the analysis.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# 2: failures apart from latency, open-model honesty columns, observed revocation, structured
# verify checks, capacity.csv, calibration and equal-load rates in the manifest.
SCHEMA_VERSION = 2
MEASURED_PACKAGES = (
    "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pyjwt", "joserfc", "jwcrypto",
    "cryptography", "redis", "locust", "hdrhistogram", "psutil", "pandas", "matplotlib",
)  # fmt: skip


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def measured_seconds(run_dir: Path) -> float:
    """Seconds of measured windows in the run folder: every cell's and every capacity probe's
    (the generator ceiling and the warm-ups are not measurements of the matrix)."""
    windows = [*run_dir.glob("cells/*/window.json"), *run_dir.glob("capacity/*/*/window.json")]
    total = 0.0
    for path in windows:
        window = json.loads(path.read_text())
        total += window["window_end"] - window["window_start"]
    return round(total, 1)


def elapsed_seconds(started: str, ended: str) -> float:
    """Wall-clock seconds between two of the manifest's timestamps."""
    delta = dt.datetime.fromisoformat(ended) - dt.datetime.fromisoformat(started)
    return round(delta.total_seconds(), 1)


def create_run_folder(results_root: Path, label: str) -> Path:
    """A new, empty ``results/<run-id>/``; the id is UTC time plus the label."""
    results_root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(100):
        run_id = f"{stamp}-{label}" + (f"-{attempt}" if attempt else "")
        try:
            (results_root / run_id).mkdir()
            return results_root / run_id
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run id under {results_root} for {stamp}-{label}")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in MEASURED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, Any]:
    """Machine and software facts that a reader needs to trust or compare a number."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "packages": _versions(),
    }


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Write a table as CSV atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def point_latest(results_root: Path, run_dir: Path) -> None:
    """Make ``results/latest`` a relative symlink to the run folder."""
    link = results_root / "latest"
    tmp = results_root / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)
