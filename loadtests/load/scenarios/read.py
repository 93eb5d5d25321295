"""read — the hot path. Closed model (N users, no wait) unless the open model is configured.

Each user logs in once before the measured window, then sends authenticated ``GET /me`` back to
back, each to the next node. What every request of a logged-in user costs. A user refused with
401 (its session lost, its token expired) logs in again before its next read, as a real client
is sent back to the login page; a fault cell counts those 401s as sessions lost.

With ``AUTHBENCH_RELOGIN_EVERY_S`` (key-rotation cells) a user logs in again once its credential
is that old, so fresh tokens signed by a rotated key reach the resource nodes. With
``AUTHBENCH_KID_FLOOD`` = p (kid-flood cells) a share p of reads present the user's token under a
random ``kid`` (named ``/me (unknown kid)``, expected 401): the flood of made-up kids.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 ReadUser
"""

from __future__ import annotations

import os
import random
import secrets
import time

from locust import task

from loadtests.load.scenarios.base import AuthbenchUser, Credential
from loadtests.load.scenarios.forgery import b64url_json, decode_segment

UNAUTHORIZED = 401
RELOGIN_EVERY_S = float(os.environ.get("AUTHBENCH_RELOGIN_EVERY_S", "0") or 0)
KID_FLOOD_SHARE = float(os.environ.get("AUTHBENCH_KID_FLOOD", "0") or 0)
UNKNOWN_KID = "/me (unknown kid)"


def with_random_kid(credential: Credential) -> dict[str, str]:
    """The bearer token with its header's kid replaced by a random one (signature left as is)."""
    token = credential.headers["Authorization"].removeprefix("Bearer ")
    header, payload, signature = token.split(".")
    forged = b64url_json({**decode_segment(header), "kid": secrets.token_hex(8)})
    return {"Authorization": f"Bearer {forged}.{payload}.{signature}"}


class ReadUser(AuthbenchUser):
    """Log in once, then GET /me in a loop."""

    credential: Credential | None = None

    def on_start(self) -> None:
        super().on_start()
        self.credential = self.login("setup /login")

    @task
    def read(self) -> None:
        stale = (
            RELOGIN_EVERY_S
            and self.credential is not None
            and (time.time() - self.credential.obtained_at > RELOGIN_EVERY_S)
        )
        if self.credential is None or stale:
            self.credential = self.login("setup /login")
            return
        if KID_FLOOD_SHARE and self.scheme == "jwt" and random.random() < KID_FLOOD_SHARE:
            self._unknown_kid(self.credential)
            return
        if self.get_me(self.credential).status_code == UNAUTHORIZED:
            self.credential = None

    def _unknown_kid(self, credential: Credential) -> None:
        headers = self.resource_headers(Credential(with_random_kid(credential)))
        with self.client.get(
            self.url("/me"), headers=headers, name=UNKNOWN_KID, catch_response=True
        ) as response:
            if response.status_code == UNAUTHORIZED:
                response.success()  # refused, as it must be
            else:
                response.failure(f"a token with an unknown kid answered {response.status_code}")
