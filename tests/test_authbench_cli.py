"""The ``authbench`` command: subcommands, thresholds and exit codes, summary.json, and every bad
input of the CI issue answered in one line with exit 2 and the run folder left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from analysis.summary import MAX_MARKDOWN_LINES, SCHEMA_FILE
from authbench.cli import BAD_INPUT, SUBCOMMANDS, THRESHOLD
from loadtests.compose_stack import ComposeInputError, meta_from_env
from loadtests.run.matrix import MATRICES_DIR, MatrixError, load_matrix
from loadtests.run.runner import new_run
from loadtests.run.thresholds import ThresholdError, parse_threshold
from loadtests.services.ports import free_port, wait_for_port
from tests.planting import scale_server_cpu

FIXTURE = Path(__file__).parent / "data" / "run-fixture"


def authbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authbench", *args],
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})},
    )  # fmt: skip


def folder_state(folder: Path) -> dict[str, str]:
    """Every file under a folder with a digest of its bytes: what 'unchanged' means."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == BAD_INPUT, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture()
def run_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / FIXTURE.name))


def test_help_lists_every_subcommand() -> None:
    done = authbench("--help")
    assert done.returncode == 0
    for command in SUBCOMMANDS:
        assert f"    {command} " in done.stdout, command
    assert "3: a threshold was violated" in done.stdout


@pytest.mark.parametrize(
    ("text", "metric", "where", "operator", "value"),
    [
        ("p99_ms@equal_load<10", "p99_ms", ("equal_load",), "<", 10.0),
        ("false_accepts==0", "false_accepts", (), "==", 0.0),
        ("capacity_rps@scheme=jwt-HS256>=2000", "capacity_rps", ("scheme=jwt-HS256",), ">=", 2000),
        ("rps @ saturation , scheme=none > 1.5", "rps", ("saturation", "scheme=none"), ">", 1.5),
        ("verdict@revocation!=not supported", "verdict", ("revocation",), "!=", "not supported"),
    ],
)
def test_threshold_rules_parse(
    text: str, metric: str, where: tuple[str, ...], operator: str, value: float | str
) -> None:
    rule = parse_threshold(text)
    assert (rule.metric, rule.where, rule.operator, rule.value) == (metric, where, operator, value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("p99_ms<", "not a rule"),
        ("p99_ms@equal<3", "neither equal_load nor saturation"),
        ("p99_ms<fast", "not a number"),
        ("verdict@revocation<3", "compare it with == or !="),
        ("verdict==supported", "name one claim"),
    ],
)
def test_a_bad_threshold_rule_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ThresholdError, match=problem):
        parse_threshold(text)


def test_bounds_hold_or_break_as_written() -> None:
    assert parse_threshold("p99_ms<10").holds(9.99) and not parse_threshold("p99_ms<10").holds(10)
    assert parse_threshold("rps>=5").holds(5) and not parse_threshold("rps>=5").holds(4.9)
    assert parse_threshold("verdict@hmac-cpu==supported").holds("supported")
    assert not parse_threshold("verdict@hmac-cpu!=supported").holds("supported")


def test_a_matrix_threshold_is_parsed_before_the_run_and_reaches_the_manifest(
    tmp_path: Path,
) -> None:
    base = (Path(__file__).parent / "data" / "fixture-matrix.toml").read_text()
    good = tmp_path / "good.toml"
    good.write_text(base + '\n[thresholds]\nfail_on = ["p99_ms@equal_load<10"]\n')
    run = new_run(str(good), tmp_path / "results")
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["thresholds"] == ["p99_ms@equal_load<10"]
    bad = tmp_path / "bad.toml"
    bad.write_text(base + '\n[thresholds]\nfail_on = ["p99_ms@typo<10"]\n')
    with pytest.raises(MatrixError, match=r"thresholds\.fail_on: 'p99_ms@typo<10'"):
        load_matrix(str(bad))


def test_a_violated_threshold_exits_3_and_is_reported_in_the_summary(run_copy: Path) -> None:
    """One rule from the run's matrix (the manifest), one from the command line."""
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["thresholds"] = ["p99_ms@equal_load<0.001"]
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    done = authbench("report", str(run_copy), "--fail-on", "rps@saturation>0")
    assert done.returncode == THRESHOLD, done.stderr
    assert "VIOLATED: p99_ms@equal_load<0.001" in done.stdout
    assert "held: rps@saturation>0" in done.stdout
    summary = json.loads((run_copy / "summary.json").read_text())
    jsonschema.validate(summary, json.loads(SCHEMA_FILE.read_text()))
    outcome = {check["rule"]: check["passed"] for check in summary["thresholds"]}
    assert outcome == {"p99_ms@equal_load<0.001": False, "rps@saturation>0": True}
    assert summary["thresholds_passed"] is False
    assert {claim["key"] for claim in summary["claims"]} >= {"sessions-latency", "hmac-cpu"}
    hs256 = next(s for s in summary["schemes"] if s["scheme"] == "jwt-HS256")
    p99 = hs256["equal_load"]["p99_ms"]
    assert p99["low"] <= p99["value"] <= p99["high"] and p99["n"] == 3
    short = (run_copy / "summary.md").read_text().splitlines()
    assert len(short) <= MAX_MARKDOWN_LINES
    assert any("VIOLATED `p99_ms@equal_load<0.001`" in line for line in short)
    report = (run_copy / "report.md").read_text()
    assert report.index("## Answer") < report.index("## Decision table")
    assert "## Thresholds" in report and "| []" not in report


def test_a_rule_that_selects_nothing_fails(run_copy: Path) -> None:
    """A typo in a column or a condition must never pass CI silently."""
    from analysis.claims import check_claims
    from analysis.thresholds import check_rule
    from analysis.tidy import load_run

    run = load_run(run_copy)
    claims = check_claims(run)
    for text in ("p99ms<10", "p99_ms@scheme=jwt-HS999<10", "verdict@nosuch==supported"):
        assert not check_rule(run, parse_threshold(text), claims).passed, text
    held = check_rule(run, parse_threshold("p99_ms@equal_load,scheme=jwt-HS256<1000"), claims)
    assert held.passed and len(held.figures) == 1


def without_read_cells(run_copy: Path) -> Path:
    """The fixture with its single-node read cells and capacity searches removed: a run that
    cannot size a workload (like a split run)."""
    for cell in run_copy.glob("cells/*__read__*"):
        shutil.rmtree(cell)
    shutil.rmtree(run_copy / "capacity", ignore_errors=True)
    (run_copy / "capacity.csv").unlink(missing_ok=True)
    return run_copy


def test_decide_on_a_run_without_read_figures_is_one_line_and_writes_nothing(
    run_copy: Path,
) -> None:
    run_dir = without_read_cells(run_copy)
    before = folder_state(run_dir)
    done = authbench("decide", str(run_dir), "--workload", "example")
    assert_one_line_error(done, "no scheme has the single-node read figures")
    assert folder_state(run_dir) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--results", "/typo-results", "history"], ["--results /typo-results", "no such folder"]),
        (["micro", "--kdf-iterations", "0"], ["--kdf-iterations 0"]),
        (["report", "RUN", "--fail-on", "p99<"], ["--fail-on", "not a rule"]),
        (["report", "RUN", "--baseline", "nosuch"], ["--baseline nosuch"]),
        (["compare", "RUN", "nosuch-run"], ["nosuch-run"]),
        (["decide", "RUN", "--workload", "nosuch"], ["nosuch", "shipped: example"]),
        (["run", "--matrix", "nosuch"], ["no such matrix", "quick"]),
        (["run"], ["--matrix", "--resume"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_the_run_unchanged(
    run_copy: Path, args: list[str], words: list[str]
) -> None:
    before = folder_state(run_copy)
    done = authbench(*[str(run_copy) if arg == "RUN" else arg for arg in args])
    assert_one_line_error(done, *words)
    assert folder_state(run_copy) == before


def test_an_environment_value_is_named_as_the_variable() -> None:
    done = authbench("serve", "--scheme", "jwt", env={"AUTHBENCH_ALG": "FOO"})
    assert_one_line_error(done, "AUTHBENCH_ALG='FOO'", "choose from")


def test_a_keys_dir_that_does_not_exist_is_refused_unless_asked_to_create_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "kyes"
    done = authbench("serve", "--scheme", "jwt", "--keys-dir", str(missing), "--port", "1")
    assert_one_line_error(done, f"--keys-dir {missing}: no such folder", "--create-keys-dir")
    assert not missing.exists()


def test_a_key_file_whose_name_is_not_a_kid_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keys" / "HS256").mkdir(parents=True)
    (tmp_path / "keys" / "HS256" / "my key.hmac").write_text("c2VjcmV0" * 8)
    port = str(free_port())
    done = authbench("serve", "--scheme", "jwt", "--alg", "HS256", "--keys-dir",
                     str(tmp_path / "keys"), "--port", port, "--users", "10",
                     "--kdf-iterations", "1000")  # fmt: skip
    assert_one_line_error(done, "my key.hmac", "not a kid")


def test_ctrl_c_on_serve_stops_quietly(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "authbench", "serve", "--scheme", "none", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for_port("127.0.0.1", port, 20), "the server did not start"
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert server.returncode in (0, 130)


def test_serve_help_is_the_servers_own() -> None:
    done = authbench("serve", "--help")
    assert done.returncode == 0 and "--scheme" in done.stdout and "--create-keys-dir" in done.stdout


def test_compare_fails_on_a_planted_regression_and_writes_comparison_json(
    run_copy: Path, tmp_path: Path
) -> None:
    scale_server_cpu(run_copy, 3.0, cells="jwt-HS256__single-1__read__*")
    out = tmp_path / "comparison"
    done = authbench("compare", str(FIXTURE), str(run_copy), "--out", str(out),
                     "--fail-on-regression")  # fmt: skip
    assert done.returncode == THRESHOLD, done.stdout + done.stderr
    summary = json.loads((out / "comparison.json").read_text())
    worse = [f for f in summary["figures"] if f["verdict"].startswith("worse")]
    assert summary["worse"] == len(worse) >= 1
    assert all(f["cell"].startswith("jwt-HS256 read single-1") for f in worse)
    assert {f["metric"] for f in worse} <= {"server_cpu_us_per_req", "rps", "rps_per_server_cpu_s"}
    assert "VIOLATED: no regression against" in done.stdout


def test_matrices_lists_every_shipped_matrix_even_one_this_machine_cannot_run() -> None:
    done = authbench("matrices")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()}
    assert listed == {path.stem for path in MATRICES_DIR.glob("*.toml")}


def test_compose_bench_labels_the_scenario_it_ran_and_names_a_bad_variable(
    tmp_path: Path,
) -> None:
    assert meta_from_env({})["scenario"] == "read"
    assert meta_from_env({"SCENARIO": "LoginUser"})["scenario"] == "login"
    with pytest.raises(ComposeInputError, match="REPLICAS='two' is not a whole number"):
        meta_from_env({"REPLICAS": "two"})
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.compose_stack", "--results", str(tmp_path / "results"),
         "collect", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SCENARIO": "Bogus"},
    )  # fmt: skip
    assert_one_line_error(done, "compose-bench: error: SCENARIO='Bogus'", "LoginUser")
    assert not (tmp_path / "results").exists()
