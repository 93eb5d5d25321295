"""read — the hot path. Closed model (N users, no wait) unless the open model is configured.

Each user logs in once before the measured window, then sends authenticated ``GET /me`` back to
back, each to the next node. What every request of a logged-in user costs. A user refused with
401 (its session lost, its token expired) logs in again before its next read, as a real client
is sent back to the login page; a fault cell counts those 401s as sessions lost.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 ReadUser
"""

from __future__ import annotations

from locust import task

from loadtests.scenarios.base import AuthbenchUser, Credential

UNAUTHORIZED = 401


class ReadUser(AuthbenchUser):
    """Log in once, then GET /me in a loop."""

    credential: Credential | None = None

    def on_start(self) -> None:
        super().on_start()
        self.credential = self.login("setup /login")

    @task
    def read(self) -> None:
        if self.credential is None:
            self.credential = self.login("setup /login")
            return
        if self.get_me(self.credential).status_code == UNAUTHORIZED:
            self.credential = None
