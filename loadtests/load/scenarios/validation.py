"""validation — are valid credentials accepted and invalid ones refused, at load?

Each task sends ``GET /me`` with one kind of credential, in turn, and classifies the answer: a
200 naming the right user for a valid credential is correct, any other 4xx a false reject; a
200 for an invalid credential (or naming another user) is a false accept, a 4xx correct; a 5xx
or no answer is an error. Outcomes are tallied per kind (``tallies.json``) and every answer that
is not correct is a Locust failure with its reason.

Kinds: ``valid`` (a fresh login used at once), ``held`` (an earlier login still inside its
lifetime), ``expired`` (the first login, once past its lifetime: the cell's short
``access_ttl``), ``tampered`` (a claim or session id changed), ``unknown_session`` (a session id
the server never issued), ``revoked`` (logged out first: sessions and denylisted JWTs only; a
plain JWT lives to ``exp`` by design), ``bad_signature`` (signed by a key the server never had),
``alg_none``, ``refresh_as_access``, ``wrong_iss`` and ``wrong_aud`` (signed with the server's
own key, read from ``AUTHBENCH_KEYS_DIR``, for another issuer or audience).

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 ValidationUser
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import task
from locust.exception import StopUser

from loadtests.load.recorder import recorder
from loadtests.load.scenarios.base import SESSION_COOKIE, AuthbenchUser, Credential
from loadtests.load.scenarios.forgery import (
    flip_char,
    foreign_key,
    resigned,
    unsigned,
    with_claims,
)
from loadtests.measure.fault_metrics import ACCEPTED_KINDS

SESSION_KINDS = ("valid", "held", "expired", "tampered", "unknown_session", "revoked")
JWT_KINDS = ("valid", "held", "expired", "tampered", "bad_signature", "alg_none",
             "refresh_as_access", "wrong_iss", "wrong_aud", "revoked")  # fmt: skip
EXPIRY_MARGIN_S = 1.5  # past exp by more than a whole second: exp has second resolution
CORRECT, FALSE_ACCEPT, FALSE_REJECT, ERROR = "correct", "false_accept", "false_reject", "error"


def classify(kind: str, status: int, named: str | None, subject: str) -> str:
    """The outcome of one answer to a credential of ``kind`` issued to ``subject``."""
    if status == 200:
        return CORRECT if kind in ACCEPTED_KINDS and named == subject else FALSE_ACCEPT
    if 400 <= status < 500:
        return FALSE_REJECT if kind in ACCEPTED_KINDS else CORRECT
    return ERROR


class ValidationUser(AuthbenchUser):
    """Send one kind of credential per task, in turn, and classify every answer."""

    def on_start(self) -> None:
        super().on_start()
        if self.scheme not in ("jwt", "session"):
            raise StopUser()
        self.first = self.login("setup /login")
        self.held = self.first
        self.lifetime_s = float(os.environ.get("AUTHBENCH_CREDENTIAL_TTL", "300"))
        self.server_key = _server_signing_key(self.health)
        self.kinds = itertools.cycle(self._kinds())
        self.builders: dict[str, Callable[[], tuple[Credential, str] | None]] = {
            "valid": self._valid,
            "held": self._held,
            "expired": self._expired,
            "tampered": self._tampered,
            "unknown_session": self._unknown_session,
            "revoked": self._revoked,
            "bad_signature": lambda: self._token(resigned, _foreign_key(self.health["alg"])),
            "alg_none": lambda: self._token(unsigned),
            "refresh_as_access": self._refresh_as_access,
            "wrong_iss": lambda: self._token(resigned, self.server_key, iss="someone-else"),
            "wrong_aud": lambda: self._token(resigned, self.server_key, aud="another-api"),
        }

    def _kinds(self) -> list[str]:
        if self.scheme == "session":
            return list(SESSION_KINDS)
        kinds = [kind for kind in JWT_KINDS if kind != "revoked" or self.health.get("denylist")]
        if self.server_key is None:
            kinds = [kind for kind in kinds if kind not in ("wrong_iss", "wrong_aud")]
        return kinds

    @task
    def check_one_kind(self) -> None:
        kind = next(self.kinds)
        built = self.builders[kind]()
        if built is None:
            return  # not available yet (an expired credential needs its lifetime to pass)
        credential, subject = built
        with self.client.get(
            self.url("/me"), headers=self.resource_headers(credential), name=f"validate {kind}",
            catch_response=True,
        ) as response:  # fmt: skip
            began = response.request_meta["start_time"]
            self.note_answer(response)
            named = _named(response)
            outcome = classify(kind, response.status_code, named, subject)
            recorder.tally(f"{kind}|{outcome}", began)
            if outcome == CORRECT:
                response.success()
            else:
                response.failure(f"{outcome}: {kind} answered {response.status_code}")

    def _valid(self) -> tuple[Credential, str] | None:
        fresh = self.login("setup /login")
        if fresh is None:
            return None
        self.held = fresh
        return fresh, fresh.subject

    def _held(self) -> tuple[Credential, str] | None:
        held = self.held
        if held is None or time.time() - held.obtained_at > self.lifetime_s - EXPIRY_MARGIN_S:
            return None
        return held, held.subject

    def _expired(self) -> tuple[Credential, str] | None:
        first = self.first
        if first is None or time.time() - first.obtained_at < self.lifetime_s + EXPIRY_MARGIN_S:
            return None
        return first, first.subject

    def _tampered(self) -> tuple[Credential, str] | None:
        held = self._held()
        if held is None:
            return None
        credential, subject = held
        if self.scheme == "session":
            session_id = _session_id(credential)
            return _cookie(flip_char(session_id, len(session_id) // 2)), subject
        token = _bearer(credential)
        other = "user0" if subject != "user0" else "user1"
        return _with_token(with_claims(token, sub=other)), other

    def _unknown_session(self) -> tuple[Credential, str] | None:
        held = self._held()
        if held is None:
            return None
        length = len(_session_id(held[0]))
        return _cookie(secrets.token_urlsafe(length)[:length]), held[1]

    def _revoked(self) -> tuple[Credential, str] | None:
        fresh = self.login("setup /login")
        if fresh is None:
            return None
        self.logout(fresh)
        return fresh, fresh.subject

    def _refresh_as_access(self) -> tuple[Credential, str] | None:
        held = self._held()
        if held is None or not held[0].refresh_token:
            return None
        return _with_token(held[0].refresh_token), held[1]

    def _token(self, forge: Callable[..., str], *args: Any, **changes: Any) -> Any:
        held = self._held()
        if held is None or (args and args[0] is None):
            return None
        return _with_token(forge(_bearer(held[0]), *args, **changes)), held[1]


_FOREIGN_KEYS: dict[str, Any] = {}


def _foreign_key(alg: str) -> Any:
    """One key per process that the server never had (made once: RSA keys are slow to make)."""
    if alg not in _FOREIGN_KEYS:
        _FOREIGN_KEYS[alg] = foreign_key(alg)
    return _FOREIGN_KEYS[alg]


def _server_signing_key(health: dict[str, Any]) -> Any:
    """The server's own signing key from the shared keys folder, or None without one."""
    folder = os.environ.get("AUTHBENCH_KEYS_DIR")
    alg = health.get("alg")
    if not folder or not alg or not (Path(folder) / alg).is_dir():
        return None
    from targets.jwt_keys import load_key_ring  # the server's own loader: same folder layout

    return load_key_ring(Path(folder), alg).signing_key


def _named(response: Any) -> str | None:
    if response.status_code != 200:
        return None
    try:
        return response.json().get("sub")
    except ValueError:
        return None


def _bearer(credential: Credential) -> str:
    return credential.headers["Authorization"].removeprefix("Bearer ")


def _with_token(token: str) -> Credential:
    return Credential({"Authorization": f"Bearer {token}"})


def _session_id(credential: Credential) -> str:
    return credential.headers["Cookie"].removeprefix(f"{SESSION_COOKIE}=")


def _cookie(session_id: str) -> Credential:
    return Credential({"Cookie": f"{SESSION_COOKIE}={session_id}"})
