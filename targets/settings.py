"""Command line and environment settings of a reference server.

Every option has an environment twin, ``AUTHBENCH_`` + the option in upper snake case, so a
container needs no command line. Meaningless combinations are refused with one line naming the
problem and the valid choices.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from common.command_line import OneLineParser
from common.schemes import (
    ALGORITHMS,
    DEFAULT_ALG,
    DEFAULT_JWT_LIBRARY,
    HMAC_ALGORITHMS,
    JWT_LIBRARIES,
    parse_scheme,
    scheme_id_of,
)

SCHEMES = ("none", "session", "jwt")
ROLES = ("all", "issuer", "resource")
MAX_HOPS = 16
STORES = ("redis", "memory")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ENV_PREFIX = "AUTHBENCH_"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


class SettingsError(Exception):
    """A setting is invalid; the message is the one line shown to the user."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything a reference server needs to know, validated."""

    scheme: str
    alg: str | None
    store: str | None
    denylist: bool
    host: str
    port: int
    node_id: str
    keys_dir: str | None
    users: int
    access_ttl: int
    refresh_ttl: int
    session_ttl: int
    sliding_session: bool
    secure_cookie: bool
    issuer: str
    audience: str
    leeway: int
    kdf_iterations: int
    rsa_bits: int
    redis_url: str
    role: str = "all"
    issuer_url: str | None = None
    introspect: bool = False
    introspect_cache: int = 0
    introspect_secret: str | None = None
    jwks_ttl: int = 300
    jwks_cooldown: float = 2.0
    downstream: str | None = None
    planted_cost_us: int = 0
    store_cache: int = 0
    jwt_library: str = DEFAULT_JWT_LIBRARY

    @property
    def issues(self) -> bool:
        """Whether this server logs users in (the issuer, or a server in every role)."""
        return self.role in ("all", "issuer")

    @property
    def serves_resources(self) -> bool:
        """Whether this server answers /me (a resource service, or a server in every role)."""
        return self.role in ("all", "resource")

    @property
    def learns_keys(self) -> bool:
        """A resource node of an asymmetric JWT: its keys come from the issuer's JWKS only."""
        return (
            self.role == "resource"
            and self.scheme == "jwt"
            and not self.introspect
            and self.alg not in HMAC_ALGORITHMS
        )

    @property
    def uses_redis(self) -> bool:
        """Whether this server keeps any state in Redis."""
        if self.role == "resource" and self.scheme == "jwt":
            return self.denylist  # a resource node reads Redis only for the denylist
        return self.scheme == "jwt" or (self.scheme == "session" and self.store == "redis")

    @property
    def scheme_id(self) -> str:
        """The scheme id of the design: none, session-redis, jwt-ES256+deny, …"""
        variant = "introspect" if self.introspect else ("deny" if self.denylist else "")
        return scheme_id_of(self.scheme, self.store, self.alg, variant)


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            upper = f" and {high}" if high is not None else " or more"
            between = f"between {low}{upper}" if high is not None else f"{low}{upper}"
            raise argparse.ArgumentTypeError(f"{value} must be {between}")
        return value

    return parse


class _ServerParser(OneLineParser):
    """The server's command line: a missing --scheme names the choices."""

    error_class = SettingsError

    def error(self, message: str) -> NoReturn:
        if "--scheme" in message and "required" in message:
            message = f"--scheme is required (choose from {', '.join(SCHEMES)})"
        super().error(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _ServerParser(
        prog="python -m targets",
        description="Run one authbench reference server. Every option has an environment twin "
        "AUTHBENCH_<OPTION> (upper snake case); the Redis address comes from REDIS_URL.",
    )
    add = parser.add_argument
    add("--scheme", choices=SCHEMES, required=True, help="authentication scheme")
    add("--alg", choices=ALGORITHMS, help=f"JWT algorithm (jwt only; default {DEFAULT_ALG})")
    add("--store", choices=STORES, help="session store (session only; default redis)")
    add("--denylist", action="store_true", help="check a Redis denylist on every request (jwt)")
    add(
        "--jwt-library",
        choices=JWT_LIBRARIES,
        help=f"library that signs and verifies tokens (jwt only; default {DEFAULT_JWT_LIBRARY})",
    )
    add("--host", default="127.0.0.1", help="address to listen on")
    add("--port", type=_bounded_int(1, 65535), default=8000, help="port to listen on")
    add("--node-id", help="name reported by /healthz and /me (default: hostname:port)")
    add(
        "--keys-dir",
        help="keys folder shared by the nodes, which must exist (default: a new temporary folder)",
    )
    add(
        "--create-keys-dir",
        action="store_true",
        help="create --keys-dir when it does not exist (a mistyped path is refused without it)",
    )
    add("--users", type=_bounded_int(1, 1_000_000), default=1000, help="user population size")
    add("--access-ttl", type=_bounded_int(1), default=300, help="access token lifetime, s")
    add("--refresh-ttl", type=_bounded_int(1), default=86400, help="refresh token lifetime, s")
    add("--session-ttl", type=_bounded_int(1), default=1800, help="session lifetime, s")
    add("--sliding-session", action="store_true", help="renew a session's TTL on every request")
    add("--store-cache", type=_bounded_int(0, 3600), default=0,
        help="keep session lookups and denylist 'not revoked' answers in process this many "
        "seconds (a revocation window on other nodes; Redis sessions or --denylist)")  # fmt: skip
    add("--secure-cookie", action="store_true", help="mark the session cookie Secure")
    add("--issuer", default="authbench", help="JWT iss")
    add("--audience", default="authbench", help="JWT aud")
    add("--leeway", type=_bounded_int(0, 3600), default=0, help="clock tolerance, s")
    add(
        "--kdf-iterations",
        type=_bounded_int(1000, 10_000_000),
        default=10_000,
        help="PBKDF2-HMAC-SHA256 iterations of the stored password hashes",
    )
    add("--rsa-bits", type=_bounded_int(2048, 8192), default=2048, help="size of new RSA keys")
    add("--role", choices=ROLES, default="all",
        help="all (default), issuer (login, refresh, logout, JWKS, introspection) or resource "
        "(/me; learns keys from --issuer-url)")  # fmt: skip
    add("--issuer-url", help="the issuer's base URL (resource nodes: JWKS, introspection)")
    add("--introspect", action="store_true",
        help="resource: ask the issuer's /introspect on every request (RFC 7662)")  # fmt: skip
    add("--introspect-cache", type=_bounded_int(0, 3600), default=0,
        help="resource: keep an active introspection answer this many seconds")  # fmt: skip
    add("--introspect-secret",
        help="client secret of /introspect (issuer: accepted; resource: sent)")  # fmt: skip
    add("--jwks-ttl", type=_bounded_int(1, 86400), default=300,
        help="resource: how long a fetched JWKS is trusted, s")  # fmt: skip
    add("--jwks-cooldown", type=_bounded_float(0.05, 3600), default=2.0,
        help="resource: at most one JWKS fetch for unknown kids per this many seconds")  # fmt: skip
    add("--downstream", help="resource: the next service's base URL for call chains")
    add("--planted-cost-us", type=_bounded_int(0, 100_000), default=0,
        help="self-tests only: burn this much CPU time (µs) in every request's auth step, a "
        "known cost the statistics must find")  # fmt: skip
    return parser


def _bounded_float(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:g} must be between {low:g} and {high:g}")
        return value

    return parse


def _flag_from_env(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}={text!r} is not a boolean (use one of {', '.join(TRUE_WORDS)})")


def _check_env_value(name: str, text: str, action: argparse.Action) -> None:
    """An environment value checked like its option, the error naming the variable."""
    if action.choices is not None and text not in action.choices:
        choices = ", ".join(map(repr, action.choices))
        raise SettingsError(f"{name}={text!r} is not a choice (choose from {choices})")
    if callable(action.type):
        try:
            action.type(text)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise SettingsError(f"{name}={text!r}: {exc}") from None


def _env_twins(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.Action]]:
    twins = []
    for action in parser._actions:
        option = next((o for o in action.option_strings if o.startswith("--")), None)
        if option is not None and option != "--help":
            twins.append((option, ENV_PREFIX + option[2:].replace("-", "_").upper(), action))
    return twins


def environment_variables() -> list[str]:
    """Every environment variable a reference server reads (the options' twins, REDIS_URL)."""
    return [name for _, name, _ in _env_twins(_build_parser())] + ["REDIS_URL"]


def _argv_with_env(
    parser: argparse.ArgumentParser, argv: Sequence[str], environ: Mapping[str, str]
) -> list[str]:
    """Prepend the options that only the environment sets, so argparse validates them alike."""
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    extra: list[str] = []
    for option, env_name, action in _env_twins(parser):
        # An empty value means unset, so compose files can pass optional settings through.
        if option in given or not environ.get(env_name):
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if _flag_from_env(env_name, environ[env_name]):
                extra.append(option)
        else:
            _check_env_value(env_name, environ[env_name], action)
            extra.append(f"{option}={environ[env_name]}")
    return extra + list(argv)


def _check_combinations(ns: argparse.Namespace) -> None:
    if ns.scheme != "jwt":
        for option, value in (
            ("--alg", ns.alg),
            ("--denylist", ns.denylist),
            ("--jwt-library", ns.jwt_library),
        ):
            if value:
                raise SettingsError(
                    f"{option} applies only to --scheme jwt, not to --scheme {ns.scheme}"
                )
    if ns.scheme != "session":
        for option, value in (
            ("--store", ns.store),
            ("--sliding-session", ns.sliding_session),
            ("--secure-cookie", ns.secure_cookie),
        ):
            if value:
                raise SettingsError(
                    f"{option} applies only to --scheme session, not to --scheme {ns.scheme}"
                )


def _check_store_cache(settings: ServerSettings) -> None:
    """A cache of store answers needs a shared store whose answers it keeps."""
    if settings.store_cache and not parse_scheme(settings.scheme_id).reads_shared_store:
        raise SettingsError(
            "--store-cache applies to --scheme session --store redis or --scheme jwt --denylist"
        )


def _check_keys_dir(ns: argparse.Namespace) -> None:
    """A mistyped --keys-dir would silently start fresh keys that no peer shares: refused."""
    if ns.create_keys_dir and not ns.keys_dir:
        raise SettingsError("--create-keys-dir needs --keys-dir")
    if ns.keys_dir and not ns.create_keys_dir and not os.path.isdir(ns.keys_dir):
        raise SettingsError(
            f"--keys-dir {ns.keys_dir}: no such folder (add --create-keys-dir to start one)"
        )


def _check_roles(ns: argparse.Namespace) -> None:
    """What the split topology's roles need, refused in one line when missing or meaningless."""
    resource_only = (("--introspect", ns.introspect), ("--downstream", ns.downstream),
                     ("--introspect-cache", ns.introspect_cache))  # fmt: skip
    if ns.role != "resource":
        for option, value in resource_only:
            if value:
                raise SettingsError(f"{option} applies only to --role resource")
    if ns.role == "issuer" and ns.scheme == "none":
        raise SettingsError("--role issuer needs credentials to issue: --scheme session or jwt")
    if ns.role == "issuer" and ns.scheme == "session" and ns.store == "memory":
        raise SettingsError("--role issuer with --store memory: resource nodes could not see it")
    if ns.introspect and (ns.scheme != "jwt" or ns.denylist):
        raise SettingsError("--introspect applies to --scheme jwt without --denylist")
    if ns.introspect and ns.jwt_library:
        raise SettingsError("--jwt-library: an --introspect node verifies no token itself")
    if ns.introspect and not (ns.issuer_url and ns.introspect_secret):
        raise SettingsError("--introspect needs --issuer-url and --introspect-secret")
    if ns.role != "resource" or ns.scheme != "jwt" or ns.introspect:
        return
    if (ns.alg or DEFAULT_ALG) in HMAC_ALGORITHMS:
        if not ns.keys_dir:
            raise SettingsError(
                "--role resource with an HMAC algorithm needs --keys-dir with the issuer's secret"
            )
    elif not ns.issuer_url:
        raise SettingsError("--role resource learns its keys from the issuer: give --issuer-url")
    elif ns.keys_dir:
        raise SettingsError(
            "--role resource of an asymmetric algorithm holds no private key: drop --keys-dir"
        )


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ServerSettings:
    """Parse and validate the command line and its environment twins; raise SettingsError."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    parser = _build_parser()
    ns = parser.parse_args(_argv_with_env(parser, argv, environ))
    _check_combinations(ns)
    _check_roles(ns)
    _check_keys_dir(ns)
    settings = ServerSettings(
        scheme=ns.scheme,
        alg=(ns.alg or DEFAULT_ALG) if ns.scheme == "jwt" else None,
        store=(ns.store or "redis") if ns.scheme == "session" else None,
        denylist=ns.denylist,
        host=ns.host,
        port=ns.port,
        node_id=ns.node_id or f"{socket.gethostname()}:{ns.port}",
        keys_dir=ns.keys_dir,
        users=ns.users,
        access_ttl=ns.access_ttl,
        refresh_ttl=ns.refresh_ttl,
        session_ttl=ns.session_ttl,
        sliding_session=ns.sliding_session,
        secure_cookie=ns.secure_cookie,
        issuer=ns.issuer,
        audience=ns.audience,
        leeway=ns.leeway,
        kdf_iterations=ns.kdf_iterations,
        rsa_bits=ns.rsa_bits,
        redis_url=environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        role=ns.role,
        issuer_url=ns.issuer_url.rstrip("/") if ns.issuer_url else None,
        introspect=ns.introspect,
        introspect_cache=ns.introspect_cache,
        introspect_secret=ns.introspect_secret,
        jwks_ttl=ns.jwks_ttl,
        jwks_cooldown=ns.jwks_cooldown,
        downstream=ns.downstream.rstrip("/") if ns.downstream else None,
        planted_cost_us=ns.planted_cost_us,
        store_cache=ns.store_cache,
        jwt_library=ns.jwt_library or DEFAULT_JWT_LIBRARY,
    )
    _check_store_cache(settings)
    return settings
