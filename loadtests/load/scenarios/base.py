"""What every scenario's user shares: the nodes, the scheme, logging in, and the load model.

Configuration comes from the environment, so a scenario runs unchanged under the runner, the
web UI or a container: ``AUTHBENCH_NODES`` (comma-separated base URLs; default: Locust's host),
``AUTHBENCH_USERS`` (the server's user population, default 1000), ``AUTHBENCH_MODEL``
(``closed``: no wait between tasks; ``open``: a fixed arrival rate ``AUTHBENCH_RATE`` requests/s
in total over all users of all Locust processes, latency counted from each request's intended
start). In the open model each user is one arrival stream with a mean gap of ``users / rate``
seconds, where ``users`` is the run's total user count (``-u``, or ``AUTHBENCH_LOAD_USERS`` for
workers started apart), so K processes together offer the rate, not K times it; the gaps are
exponential (``AUTHBENCH_ARRIVALS=poisson``, the default) or equal (``uniform``).

Spreading is client-side: each request goes to the next node, or, with ``AUTHBENCH_STICKY``
(memory sessions on several nodes), every request of a user to its own node, as a sticky
balancer would. A node that refuses the connection is skipped by that user for
``NODE_RETRY_S`` (a sticky user moves to the next node), as a client with failover would.

Split topology: ``AUTHBENCH_ISSUER`` is where users log in, refresh and log out; the nodes are
the resource services, and every ``GET /me`` asks for ``AUTHBENCH_HOPS`` services in a chain.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import gevent
from locust import FastHttpUser
from locust.exception import StopUser

from common.credentials import BENCH_PASSWORD, SESSION_COOKIE
from loadtests.load.recorder import CLIENT, INTENDED_START, recorder
from loadtests.run.schedule import ARRIVALS, Schedule

PASSWORD = os.environ.get("AUTHBENCH_PASSWORD", BENCH_PASSWORD)
HOPS_HEADER = "X-Authbench-Hops"
NODE_RETRY_S = 10.0  # as nginx's default fail_timeout: a failed upstream is skipped this long
NO_ANSWER = 0  # the status Locust's fast client reports when no connection was made
DEFAULT_ARRIVALS = ARRIVALS[0]
_USERS_STARTED = itertools.count()  # in this Locust process


def node_urls(host: str | None) -> list[str]:
    """The base URLs to spread requests over."""
    listed = [url.strip().rstrip("/") for url in os.environ.get("AUTHBENCH_NODES", "").split(",")]
    nodes = [url for url in listed if url]
    if nodes:
        return nodes
    if not host:
        raise StopUser("no target: pass --host or set AUTHBENCH_NODES")
    return [host.rstrip("/")]


def total_users(environment: Any) -> int:
    """The user count of the whole run, over every Locust process."""
    given = os.environ.get("AUTHBENCH_LOAD_USERS")
    if given:
        return max(1, int(given))
    options = getattr(environment, "parsed_options", None)
    if options is not None and getattr(options, "num_users", None):
        return max(1, int(options.num_users))
    runner = environment.runner
    return max(1, runner.target_user_count if runner else 1)


@dataclass
class Credential:
    """What a logged-in user presents: a session cookie, a bearer token, or nothing (none)."""

    headers: dict[str, str]
    refresh_token: str | None = None
    expires_at: float | None = None
    subject: str = ""
    obtained_at: float = 0.0


class AuthbenchUser(FastHttpUser):
    """Base of every scenario: round-robin over nodes, scheme-aware login, closed or open model."""

    abstract = True
    scheme: str | None = None  # learnt from /healthz once per process
    health: ClassVar[dict[str, Any]] = {}  # the whole /healthz answer (algorithm, denylist, …)

    def wait_time(self) -> float:
        """Closed model: no wait. Open model: until the next intended start on the schedule."""
        if self._schedule is None:
            return 0.0
        self._pending_intended = self._schedule.next_send()
        return max(0.0, self._pending_intended - time.time())

    def context(self) -> dict[str, Any]:
        """The open model's intended start, attached to the first request of each task; in a
        fault cell, which user sent every request (to count the users a fault logged out)."""
        found = {CLIENT: self.client_key} if recorder.timeline else {}
        if self._schedule is None or self._pending_intended is None:
            return found
        intended, self._pending_intended = self._pending_intended, None
        self._schedule.mark_sent()
        recorder.send_started(intended)
        return {**found, INTENDED_START: intended}

    def on_start(self) -> None:
        self.nodes = node_urls(self.host)
        # Users take the nodes in turn: sticky users split evenly (a random node each put all
        # 8 users of a test on one node about once in 128 runs), the others start spread.
        self.turn = next(_USERS_STARTED) % len(self.nodes)
        self.sticky = bool(os.environ.get("AUTHBENCH_STICKY"))
        self.down_until: dict[int, float] = {}
        self.population = int(os.environ.get("AUTHBENCH_USERS", "1000"))
        self.client_key = f"{os.getpid()}-{id(self):x}"  # unique over Locust processes
        self._schedule = self._open_model_schedule()
        self._pending_intended: float | None = None
        if AuthbenchUser.scheme is None:
            response = self.client.get(self.nodes[0] + "/healthz", name="setup /healthz")
            AuthbenchUser.health = response.json()
            AuthbenchUser.scheme = AuthbenchUser.health["scheme"]
        if self._schedule is not None:
            recorder.add_schedule(self._schedule)
            self._pending_intended = self._schedule.next_send()
            gevent.sleep(max(0.0, self._pending_intended - time.time()))

    def _open_model_schedule(self) -> Schedule | None:
        if os.environ.get("AUTHBENCH_MODEL", "closed") != "open":
            return None
        rate = float(os.environ["AUTHBENCH_RATE"])
        arrivals = os.environ.get("AUTHBENCH_ARRIVALS", DEFAULT_ARRIVALS)
        return Schedule(time.time(), total_users(self.environment) / rate, arrivals)

    def issuer_url(self, path: str) -> str:
        """Where credentials are issued and revoked: the split's issuer, else the next node."""
        issuer = os.environ.get("AUTHBENCH_ISSUER", "").rstrip("/")
        return issuer + path if issuer else self.url(path)

    def resource_headers(self, credential: Credential) -> dict[str, str]:
        """The credential's headers, and the call chain's length when the run asks for one."""
        hops = os.environ.get("AUTHBENCH_HOPS")
        return {**credential.headers, HOPS_HEADER: hops} if hops else credential.headers

    def url(self, path: str) -> str:
        """The next node's URL for ``path`` (a sticky user's own), skipping nodes seen down."""
        if not self.sticky:
            self.turn = (self.turn + 1) % len(self.nodes)
        now = time.time()
        for _ in self.nodes:
            if self.down_until.get(self.turn, 0.0) <= now:
                break
            self.turn = (self.turn + 1) % len(self.nodes)
        return self.nodes[self.turn] + path

    def note_answer(self, response: Any) -> None:
        """A refused connection marks the node of the last request down for a while."""
        if getattr(response, "status_code", None) == NO_ANSWER:
            self.down_until[self.turn] = time.time() + NODE_RETRY_S

    def login(self, name: str = "/login") -> Credential | None:
        """Log in as a random user; the credential as the server issued it, or None."""
        body = {"username": f"user{random.randrange(self.population)}", "password": PASSWORD}
        login_url = self.issuer_url("/login")
        with self.client.post(login_url, json=body, name=name, catch_response=True) as r:
            self.note_answer(r)
            if r.status_code != 200:
                r.failure(f"login answered {r.status_code}")
                return None
            credential = self._credential_from(r)
            if credential is None:
                r.failure("login answer carried no credential")
                return None
            credential.subject = body["username"]
            credential.obtained_at = time.time()
            return credential

    def _credential_from(self, response: Any) -> Credential | None:
        if self.scheme == "jwt":
            body = response.json()
            return Credential(
                {"Authorization": f"Bearer {body['access_token']}"},
                body.get("refresh_token"),
                time.time() + float(body.get("expires_in", 0)),
            )
        if self.scheme == "session":
            # The cookie is sent explicitly (so it can be replayed after logout), not by the jar.
            value = _cookie_value(response.headers.get("set-cookie", ""))
            self.client.cookiejar.clear()
            return Credential({"Cookie": f"{SESSION_COOKIE}={value}"}) if value else None
        return Credential({})

    def get_me(self, credential: Credential, name: str = "/me") -> Any:
        """GET /me with the credential on the next node."""
        headers = self.resource_headers(credential)
        response = self.client.get(self.url("/me"), headers=headers, name=name)
        self.note_answer(response)
        return response

    def logout(self, credential: Credential) -> None:
        """POST /logout (with the refresh token in the body for JWTs)."""
        body = {"refresh_token": credential.refresh_token} if credential.refresh_token else None
        self.client.post(
            self.issuer_url("/logout"), headers=credential.headers, json=body, name="/logout"
        )


def _cookie_value(set_cookie: str) -> str | None:
    first = set_cookie.split(";", 1)[0]
    name, _, value = first.partition("=")
    return value.strip() if name.strip() == SESSION_COOKIE and value else None
