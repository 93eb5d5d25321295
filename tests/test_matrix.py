"""Matrix files: the shipped ones load, and bad ones fail before anything starts, in one line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.schemes import ALGORITHMS, JWT_LIBRARIES, UnknownScheme, parse_scheme
from loadtests.run.matrix import (
    SEARCH_KEYS,
    SETTING_KEYS,
    MatrixError,
    SearchTable,
    SettingsTable,
    load_matrix,
)

GOOD_GROUP = """
[[cells]]
schemes = ["none", "jwt-HS256"]
topologies = ["single"]
scenarios = ["read"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text(text)
    return path


def test_quick_matrix_decides_with_intervals_equal_load_capacity_and_revocation() -> None:
    matrix = load_matrix("quick")
    core = {"none", "session-redis", "jwt-HS256", "jwt-RS256", "jwt-ES256"}
    assert all(c.settings.repetitions >= 3 for c in matrix.cells)
    closed_read = {
        c.scheme for c in matrix.cells if (c.scenario, c.settings.model) == ("read", "closed")
    }
    assert core | {"jwt-ES384"} <= closed_read
    equal = {c.scheme for c in matrix.cells if c.settings.equal_load}
    assert core <= equal
    assert {c.scheme for c in matrix.capacity} >= core - {"none"}
    assert matrix.search is not None and matrix.search.searches >= 3
    revocation = {c.scheme: c for c in matrix.cells if c.scenario == "revocation"}
    assert {"session-redis", "jwt-HS256", "jwt-ES256+deny"} <= set(revocation)
    assert revocation["jwt-HS256"].settings.access_ttl <= 5  # observed, not computed


def test_full_matrix_has_every_scenario_two_and_four_nodes_and_three_repetitions() -> None:
    matrix = load_matrix("full")
    every = {"none", "session-memory", "session-redis", "jwt-ES256+deny"}
    every |= {f"jwt-{alg}" for alg in ALGORITHMS}
    assert every <= {c.scheme for c in matrix.capacity}
    assert every <= {c.scheme for c in matrix.cells if c.settings.equal_load}
    assert {c.scenario for c in matrix.cells} == {
        "read", "login", "refresh", "logout", "mixed", "revocation", "validation"
    }  # fmt: skip
    assert {c.nodes for c in matrix.cells if c.topology == "multi"} == {2, 4}
    assert matrix.repetitions >= 3
    assert all(c.settings.repetitions == 3 for c in matrix.cells if c.settings.equal_load)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD_GROUP.replace('"jwt-HS256"', '"jwt-HS999"'),
            "cells[0].schemes: unknown scheme 'jwt-HS999' (valid: none, session-memory",
        ),
        (  # both variants: once read as a denylisted JWT whose scheme said introspect
            GOOD_GROUP.replace('"jwt-HS256"', '"jwt-HS256+introspect+deny"'),
            "cells[0].schemes: unknown scheme 'jwt-HS256+introspect+deny'",
        ),
        (GOOD_GROUP + "colour = 'red'\n", "cells[0].colour: unknown key (valid: schemes,"),
        ("[defaults]\nduration_s = -5\n" + GOOD_GROUP, "duration_s: -5 must be at least 0.5"),
        ("[defaults]\nspeed = 1\n" + GOOD_GROUP, "defaults.speed: unknown key (valid: warmup_s"),
        (
            GOOD_GROUP.replace('"single"', '"ring"'),
            "unknown topology 'ring' (valid: single, multi, split)",
        ),
        (GOOD_GROUP.replace('"read"', '"browse"'), "unknown scenario 'browse' (valid: read, login"),
        (
            GOOD_GROUP + "fault = 'earthquake'\n",
            "fault: unknown fault 'earthquake' (valid: redis-outage, redis-stall, node-kill, key",
        ),
        (GOOD_GROUP + "fault = 'node-kill'\n", "node-kill needs several nodes: use it on multi"),
        (GOOD_GROUP + "fault = 'redis-outage'\n", "redis-outage needs Redis; none has none"),
        (
            GOOD_GROUP.replace('"none", ', "") + "fault = 'redis-stall'\nfault_at_s = 4\n",
            "cells[0].fault_at_s: the fault (4 s in, 1.5 s long) must end at least 1 s before",
        ),
        (GOOD_GROUP + "persistence = 'rdb'\n", "unknown persistence 'rdb' (valid: none, aof)"),
        (GOOD_GROUP + "fault_s = 0\n", "fault_s: 0 must be at least 0.1"),
        (
            GOOD_GROUP.replace('"read"', '"validation"'),
            "validation needs a scheme with credentials",
        ),
        (GOOD_GROUP.replace('"read"', '"refresh"'), "refresh needs a jwt scheme, not none"),
        ("[defaults]\nmodel = 'open'\n" + GOOD_GROUP, "the open model needs a rate above 0"),
        ("[defaults]\nequal_load = true\n" + GOOD_GROUP, "equal load is an open-model setting"),
        (
            GOOD_GROUP + "[capacity]\nschemes = ['none']\ntopologies = ['single']\n"
            "scenarios = ['read']\nrate = 5\n",
            "capacity.rate: unknown key (valid: schemes",
        ),
        (
            GOOD_GROUP + "[capacity]\nschemes = ['none']\ntopologies = ['single']\n"
            "scenarios = ['read']\nslo_p99_ms = -1\n",
            "capacity.slo_p99_ms: -1 must be at least 0",
        ),
        ("[defaults]\nusers = 0\n" + GOOD_GROUP, "users: 0 must be at least 1"),
        ("description = 'no cells'\n", "cells: needs at least one [[cells]] group"),
        ("cells = [", "cannot read"),
        (GOOD_GROUP + "hops = 2\n", "cells[0].hops: applies to the split topology only"),
        (
            GOOD_GROUP.replace('"none", "jwt-HS256"', '"jwt-ES256+introspect"'),
            "jwt-ES256+introspect runs on the split topology",
        ),
        (
            GOOD_GROUP.replace('"single"', '"split"'),
            "split needs an issuer and a shared view: not none",
        ),
        (
            GOOD_GROUP.replace('"none", "jwt-HS256"', '"jwt-HS256"') + "fault = 'key-rotation'\n",
            "key-rotation needs a locally verified jwt on split",
        ),
        (
            GOOD_GROUP + "library = 'python-jose'\n",
            "library: unknown JWT library 'python-jose' (valid: pyjwt, joserfc, jwcrypto)",
        ),
        (GOOD_GROUP + "library = 'joserfc'\n", "cells[0].library: none signs and verifies no JWT"),
        (
            GOOD_GROUP + "[capacity]\nschemes = ['jwt-HS256']\ntopologies = ['single']\n"
            "scenarios = ['read']\nlibrary = 'jwcrypto'\n",
            "capacity.library: capacity.csv holds pyjwt's capacity only",
        ),
        ("include = 'faults'\n" + GOOD_GROUP, "include: must be a list of matrix names"),
        ("include = ['quick']\n" + GOOD_GROUP, "include: quick has a [capacity] table"),
        ("[margins]\ncpu = 1.5\n" + GOOD_GROUP, "margins.cpu: relative margin must lie"),
        ("equal_load_rate = 'fast'\n" + GOOD_GROUP, "equal_load_rate: 'fast' is not a number"),
        ("[margins]\ndisk = 0.1\n" + GOOD_GROUP, "unknown key"),
        ("[margins]\nlatency = {relative = 0.1, absolute = 'x'}\n" + GOOD_GROUP, "not a number"),
        # Types pydantic checks strictly: none of these may be read as something else.
        ("[defaults]\nrate = nan\n" + GOOD_GROUP, "rate: nan is not a number"),
        ("[defaults]\nrepetitions = 2.0\n" + GOOD_GROUP, "repetitions: 2.0 is not a whole number"),
        ("[defaults]\npopulation = '50'\n" + GOOD_GROUP, "population: '50' is not a whole number"),
        ("[defaults]\nwarmup_s = true\n" + GOOD_GROUP, "warmup_s: True is not a number"),
        (GOOD_GROUP + "equal_load = 1\n", "equal_load: 1 is not true or false"),
        (GOOD_GROUP + "model = 1\n", "model: unknown model 1 (valid: closed, open)"),
        ("selftest = 'yes'\n" + GOOD_GROUP, "selftest: 'yes' is not true or false"),
        (
            GOOD_GROUP + "[capacity]\nschemes = ['none']\ntopologies = ['single']\n"
            "scenarios = ['read']\nsearches = 0\n",
            "capacity.searches: 0 must be at least 1",
        ),
        (
            "include = ['nowhere']\n" + GOOD_GROUP,
            "no such matrix 'nowhere' (shipped: balancer, cache, faults",
        ),
    ],
)
def test_bad_matrix_is_one_line_naming_file_key_and_choices(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MatrixError) as caught:
        load_matrix(str(path))
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_runner_refuses_a_bad_matrix_before_starting_anything(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_GROUP.replace('"none"', '"cookies"'))
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "authbench", "--results", str(out), "run", "--matrix", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown scheme 'cookies'" in lines[0]
    assert not out.exists()


def test_margins_override_the_defaults_per_family(tmp_path: Path) -> None:
    text = "[margins]\ncpu = 0.05\nlatency = {relative = 0.2, absolute = 0.5}\n" + GOOD_GROUP
    margins = load_matrix(str(write(tmp_path, text))).margins
    assert margins["cpu"] == {"relative": 0.05, "absolute": 0.0}
    assert margins["latency"] == {"relative": 0.2, "absolute": 0.5}
    assert margins["throughput"] == {"relative": 0.10, "absolute": 0.0}
    assert (
        load_matrix(str(write(tmp_path, "equal_load_rate = 800\n" + GOOD_GROUP))).equal_load_rate
        == 800
    )
    assert load_matrix(str(write(tmp_path, GOOD_GROUP))).equal_load_rate is None  # auto
    assert load_matrix("quick").equal_load_rate == 500  # fixed: two quick runs compare


def test_unknown_matrix_name_lists_the_shipped_ones() -> None:
    shipped = "shipped: balancer, cache, faults, full, library, quick, selftest, split, target, ttl"
    with pytest.raises(MatrixError, match=shipped):
        load_matrix("medium")


def test_full_includes_the_faults_matrix_with_its_own_defaults() -> None:
    full, faults = load_matrix("full"), load_matrix("faults")
    assert set(faults.cells) <= set(full.cells)
    assert faults.source in full.included
    outage = next(cell for cell in full.cells if cell.settings.fault == "redis-outage")
    assert outage.settings.model == "open" and outage.settings.repetitions == 3


def test_every_fault_cell_of_the_faults_matrix_repeats_three_times() -> None:
    faults = [cell for cell in load_matrix("faults").cells if cell.settings.fault]
    assert faults and all(cell.settings.repetitions >= 3 for cell in faults)


def test_faults_matrix_sweeps_store_distance_and_covers_every_fault() -> None:
    cells = load_matrix("faults").cells
    delays = {c.settings.store_delay_ms for c in cells if c.scheme == "session-redis"}
    assert delays == {0, 0.5, 1, 2, 5}
    assert {c.settings.fault for c in cells} == {"", "redis-outage", "redis-stall", "node-kill"}
    assert {c.settings.persistence for c in cells if c.settings.fault == "redis-outage"} == {
        "none",
        "aof",
    }
    assert "session-memory" in {c.scheme for c in cells if c.settings.fault == "node-kill"}
    assert {c.scheme for c in cells if c.scenario == "validation"} >= {
        "session-redis",
        "jwt-HS256",
        "jwt-ES256",
        "jwt-ES256+deny",
    }


def test_split_matrix_covers_the_schemes_hops_and_faults_of_the_issue() -> None:
    cells = load_matrix("split").cells
    plain = [c for c in cells if not c.settings.fault]
    assert {c.scheme for c in plain} == {"session-redis", "jwt-HS256", "jwt-RS256", "jwt-ES256",
                                          "jwt-ES256+introspect", "jwt-ES256+deny"}  # fmt: skip
    assert {c.settings.hops for c in plain} == {1, 3}
    # At saturation, at least three times: CPU per hop rests on thousands of requests.
    assert all(c.settings.model == "closed" and c.settings.repetitions >= 3 for c in plain)
    assert all(c.topology == "split" and c.nodes == 2 for c in cells)
    assert {c.settings.fault for c in cells} == {
        "", "key-rotation", "kid-flood", "issuer-outage", "issuer-stall",
    }  # fmt: skip
    # The issue's check: a JWKS trusted for less time than the issuer stays down.
    outages = [c for c in cells if c.settings.fault.startswith("issuer-")]
    assert all(c.settings.jwks_ttl_s < c.settings.fault_s for c in outages)
    assert load_matrix("split").cells[0] in load_matrix("full").cells


def test_library_matrix_serves_four_algorithms_by_every_library_at_two_loads() -> None:
    cells = load_matrix("library").cells
    jwt = [c for c in cells if c.is_jwt]
    assert {c.alg for c in jwt} == {"HS256", "RS256", "ES256", "EdDSA"}
    for model in ("closed", "open"):
        served = {(c.alg, c.settings.library) for c in jwt if c.settings.model == model}
        assert served == {(a, lib) for a in ("HS256", "RS256", "ES256", "EdDSA")
                          for lib in JWT_LIBRARIES}  # fmt: skip
    assert all(c.settings.repetitions >= 3 for c in cells)
    assert {c.scheme for c in cells if not c.is_jwt} == {"none"}
    ids = [c.cell_id(1) for c in cells]
    assert len(set(ids)) == len(ids)
    joserfc = next(c for c in jwt if c.settings.library == "joserfc")
    assert "-joserfc__" in joserfc.cell_id(1)
    assert joserfc.server_args()[-6:-4] == ["--jwt-library", "joserfc"]
    default = next(c for c in jwt if c.settings.library == "pyjwt")
    assert "--jwt-library" not in default.server_args()


@pytest.mark.parametrize(
    "condition", ["population = 200", "duration_s = 3.0", "generator_processes = 2"]
)
def test_cells_that_differ_only_in_a_condition_get_their_own_ids(
    tmp_path: Path, condition: str
) -> None:
    """Two groups of the same readable cell but another window, population or generator."""
    text = GOOD_GROUP + GOOD_GROUP.replace("[[cells]]", f"[[cells]]\n{condition}")
    matrix = load_matrix(str(write(tmp_path, text)))
    ids = [cell.cell_id(1) for cell in matrix.cells]
    assert len(matrix.cells) == 4
    assert len(set(ids)) == 4, ids


@pytest.mark.parametrize(
    ("scheme_id", "family", "alg", "plain_jwt", "revoked_at_once", "is_hmac"),
    [
        ("none", "none", "", False, False, False),
        ("session-memory", "session", "", False, True, False),
        ("jwt-HS384", "jwt", "HS384", True, False, True),
        ("jwt-ES256+deny", "jwt", "ES256", False, True, False),
        ("jwt-EdDSA+introspect", "jwt", "EdDSA", False, False, False),
    ],
)
def test_a_scheme_id_is_parsed_once_into_what_it_says(
    scheme_id: str, family: str, alg: str, plain_jwt: bool, revoked_at_once: bool, is_hmac: bool
) -> None:
    kind = parse_scheme(scheme_id)
    assert (kind.family, kind.alg, kind.plain_jwt) == (family, alg, plain_jwt)
    assert (kind.revoked_at_once, kind.is_hmac) == (revoked_at_once, is_hmac)


@pytest.mark.parametrize("scheme_id", ["jwt-", "jwt-HS256+", "jwt-HS256+deny+deny", "session-"])
def test_a_malformed_scheme_id_is_refused(scheme_id: str) -> None:
    with pytest.raises(UnknownScheme, match=re.escape(repr(scheme_id))):
        parse_scheme(scheme_id)


def test_the_validation_tables_name_every_setting_in_order() -> None:
    """Bug caught: a setting added to CellSettings or SearchSettings but not to its pydantic
    table would be refused as unknown, or checked in another order than documented."""
    assert tuple(SettingsTable.model_fields) == SETTING_KEYS
    assert tuple(SearchTable.model_fields) == SEARCH_KEYS
