"""Your own server: the target of ``authbench run --target-url URL``.

The runner starts nothing for it. Before the run folder is made it reads every URL's /healthz,
which must name one scheme (docs/target-contract.md), and runs the verify gate against the
URLs; a URL that does not answer, or a server that breaks the contract, stops the run with one
line naming the step. The nodes' CPU is sampled only for the processes given by
``--target-pid`` (one per URL, in order); without them the CPU columns stay empty: not
measured, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

import psutil

from common.outcomes import BadInput
from common.schemes import UnknownScheme, parse_scheme, scheme_id_of
from loadtests.load.http_probe import call
from loadtests.load.verify import Expected, VerifyFailed, verify_target


class TargetError(BadInput):
    """The target cannot be measured; the message is one line naming the URL and the step."""


@dataclass(frozen=True)
class ExternalNode:
    """A node the runner did not start: its URL, and its PID when the user gave it."""

    url: str
    pid: int | None = None


@dataclass(frozen=True)
class Target:
    """The user's server: its nodes, the scheme its /healthz names, what the gate expects."""

    nodes: tuple[ExternalNode, ...]
    scheme_id: str
    store: str | None = None  # as /healthz names it (a JWT server may keep refresh tokens)
    store_cache_s: int = 0

    @property
    def expected(self) -> Expected:
        """The identity every node must report; Server-Timing is welcome, not required."""
        kind = parse_scheme(self.scheme_id)
        return Expected(
            kind.family,
            kind.alg or None,
            self.store,
            kind.denylist,
            store_cache_s=self.store_cache_s,
            server_timing=False,
        )

    def describe(self) -> dict[str, Any]:
        """The manifest's record, from which a resumed run rebuilds the target."""
        return {
            "urls": [node.url for node in self.nodes],
            "pids": [node.pid for node in self.nodes],
            "scheme": self.scheme_id,
            "store": self.store,
            "store_cache_s": self.store_cache_s,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Target:
        nodes = tuple(map(ExternalNode, record["urls"], record["pids"]))
        return cls(nodes, record["scheme"], record["store"], record["store_cache_s"])


def inspect_target(urls: list[str], pids: list[int] | None = None) -> Target:
    """The target the URLs name, once every /healthz agrees and the verify gate passed."""
    pids = list(pids or [])
    if pids and len(pids) != len(urls):
        raise TargetError(f"--target-pid: {len(pids)} given for {len(urls)} --target-url")
    for pid in pids:
        if not psutil.pid_exists(pid):
            raise TargetError(f"--target-pid {pid}: no such process here")
    given: list[int | None] = [*pids] if pids else [None] * len(urls)
    nodes = tuple(map(ExternalNode, map(_checked_url, urls), given))
    identities = {node.url: _identity(node.url) for node in nodes}
    if len(set(identities.values())) > 1:
        named = ", ".join(f"{url} {identity[0]}" for url, identity in identities.items())
        raise TargetError(f"--target-url: the nodes name different schemes ({named})")
    target = Target(nodes, *next(iter(identities.values())))
    try:
        if parse_scheme(target.scheme_id).store == "memory":  # each node keeps its own sessions
            for node in nodes:
                verify_target([node.url], target.expected)
        else:
            verify_target([node.url for node in nodes], target.expected)
    except VerifyFailed as exc:
        raise TargetError(f"--target-url: the verify gate failed: {exc}") from None
    return target


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TargetError(f"--target-url {url}: not an http://host:port URL")
    return url.rstrip("/")


def _identity(url: str) -> tuple[str, str | None, int]:
    """The scheme id, store and store-cache seconds a node's /healthz names."""
    try:
        health = call(url, "GET", "/healthz")
    except (OSError, HTTPException, ValueError) as exc:
        raise TargetError(f"--target-url {url}: /healthz did not answer ({exc})") from None
    body = health.body if isinstance(health.body, dict) else {}
    if health.status != 200:
        raise TargetError(f"--target-url {url}: /healthz answered {health.status}, expected 200")
    variant = "deny" if body.get("denylist") else ""
    scheme_id = scheme_id_of(str(body.get("scheme")), body.get("store"), body.get("alg"), variant)
    try:
        parse_scheme(scheme_id)
    except UnknownScheme:
        raise TargetError(
            f"--target-url {url}: /healthz names no scheme the suite knows "
            f"(scheme {body.get('scheme')!r}, store {body.get('store')!r}, alg {body.get('alg')!r})"
        ) from None
    cache_s = body.get("store_cache_s", 0)
    return scheme_id, body.get("store"), cache_s if isinstance(cache_s, int) else 0
