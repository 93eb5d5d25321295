"""refresh — token rotation (jwt only). Closed model (N users, no wait) unless open is configured.

Each user logs in once before the window, then exchanges its refresh token for a new pair in a
loop (verify, sign two tokens, one atomic Redis rotation). Other schemes have no /refresh: the
user stops at once with that reason.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 RefreshUser
"""

from __future__ import annotations

import logging

from locust import task
from locust.exception import StopUser

from loadtests.load.scenarios.base import AuthbenchUser, Credential


class RefreshUser(AuthbenchUser):
    """Log in once, then POST /refresh in a loop with the newest refresh token."""

    credential: Credential | None = None

    def on_start(self) -> None:
        super().on_start()
        if self.scheme != "jwt":
            logging.error("the refresh scenario needs a jwt target, not %s", self.scheme)
            raise StopUser()
        self.credential = self.login("setup /login")

    @task
    def rotate(self) -> None:
        if self.credential is None or not self.credential.refresh_token:
            self.credential = self.login("setup /login")
            return
        body = {"refresh_token": self.credential.refresh_token}
        with self.client.post(
            self.issuer_url("/refresh"), json=body, name="/refresh", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"refresh answered {response.status_code}")
                self.credential = None
                return
            self.credential = self._credential_from(response)
