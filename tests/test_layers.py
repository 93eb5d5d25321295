"""The floors hold: ``lint-imports`` keeps them on this tree and catches a planted violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("authbench", "analysis", "loadtests", "targets", "common")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        capture_output=True, text=True, timeout=120, cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )  # fmt: skip


def test_the_contracts_hold_on_this_tree() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_analysis_importing_the_servers_code_breaks_the_contract(tmp_path: Path) -> None:
    """Even through another module: analysis → loadtests → targets is caught, not only direct."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "loadtests" / "load" / "histograms.py").open("a") as module:
        module.write("\nimport targets.settings  # planted: analysis.percentiles imports this\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "analysis is not allowed to import targets" in done.stdout
    assert "loadtests.load.histograms -> targets.settings" in done.stdout
