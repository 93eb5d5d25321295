"""``python -m targets``: invalid options end with one line naming the problem and the choices."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import StartTarget, client_for


def run_target(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTHBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "targets", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **(env or {})},
    )


ES256_RESOURCE = ["--scheme", "jwt", "--alg", "ES256", "--role", "resource"]
NO_ISSUER = "http://127.0.0.1:9"  # nothing listens on the discard port


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--scheme", "jwt", "--alg", "HS999"], {}, "choose from 'HS256'"),
        (["--scheme", "session", "--alg", "RS256"], {}, "--alg applies only to --scheme jwt"),
        (["--scheme", "session", "--denylist"], {}, "--denylist applies only to --scheme jwt"),
        (
            ["--scheme", "session", "--jwt-library", "joserfc"],
            {},
            "--jwt-library applies only to --scheme jwt",
        ),
        (["--scheme", "jwt", "--jwt-library", "python-jose"], {}, "invalid choice: 'python-jose'"),
        (
            ["--scheme", "jwt", "--role", "resource", "--introspect", "--jwt-library", "jwcrypto"],
            {},
            "--jwt-library: an --introspect node verifies no token itself",
        ),
        (["--scheme", "jwt", "--store", "redis"], {}, "--store applies only to --scheme session"),
        (["--scheme", "cookies"], {}, "choose from 'none', 'session', 'jwt'"),
        ([], {}, "--scheme is required (choose from none, session, jwt)"),
        (["--scheme", "none", "--port", "70000"], {}, "must be between 1 and 65535"),
        (["--scheme", "none", "--access-ttl", "-5"], {}, "must be 1 or more"),
        (["--scheme", "none", "--users", "many"], {}, "is not a whole number"),
        (["--scheme", "none", "--bogus"], {}, "unrecognized arguments: --bogus"),
        ([], {"AUTHBENCH_SCHEME": "jwt", "AUTHBENCH_ALG": "XS1"}, "AUTHBENCH_ALG='XS1' is not a"),
        ([], {"AUTHBENCH_SCHEME": "jwt", "AUTHBENCH_DENYLIST": "maybe"}, "is not a boolean"),
        (["--scheme", "none", "--role", "boss"], {}, "choose from 'all', 'issuer', 'resource'"),
        (["--scheme", "none", "--role", "issuer"], {}, "--role issuer needs credentials"),
        (["--scheme", "session", "--introspect"], {}, "--introspect applies only to --role"),
        (
            ["--scheme", "jwt", "--alg", "ES256", "--role", "resource"],
            {},
            "learns its keys from the issuer: give --issuer-url",
        ),
        (
            ["--scheme", "jwt", "--alg", "HS256", "--role", "resource"],
            {},
            "needs --keys-dir with the issuer's secret",
        ),
        (
            ["--scheme", "jwt", "--role", "resource", "--introspect", "--issuer-url", "http://x"],
            {},
            "--introspect needs --issuer-url and --introspect-secret",
        ),
        (
            ["--scheme", "jwt", "--alg", "ES256", "--role", "resource", "--jwks-cooldown", "0"],
            {},
            "0 must be between 0.05 and 3600",
        ),
        (
            [*ES256_RESOURCE, "--issuer-url", NO_ISSUER],
            {},
            f"cannot fetch {NO_ISSUER}/.well-known/jwks.json",
        ),
    ],
)
def test_invalid_options_exit_with_one_line(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    result = run_target(*args, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_port_in_use_exits_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_target("--scheme", "none", "--port", str(port))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]


def test_environment_twins_configure_the_server(start_target: StartTarget) -> None:
    node_env = {"AUTHBENCH_SCHEME": "jwt", "AUTHBENCH_ALG": "HS384", "AUTHBENCH_DENYLIST": "true"}
    os.environ.update(node_env)
    try:
        node = start_target()
    finally:
        for name in node_env:
            del os.environ[name]
    with client_for(node) as client:
        health = client.get("/healthz").json()
    assert (health["scheme"], health["alg"], health["denylist"]) == ("jwt", "HS384", True)


def test_command_line_wins_over_environment(start_target: StartTarget) -> None:
    os.environ["AUTHBENCH_SCHEME"] = "jwt"
    try:
        node = start_target("--scheme", "none")
    finally:
        del os.environ["AUTHBENCH_SCHEME"]
    with client_for(node) as client:
        assert client.get("/healthz").json()["scheme"] == "none"
