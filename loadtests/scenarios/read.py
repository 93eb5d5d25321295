"""read — the hot path. Closed model (N users, no wait) unless the open model is configured.

Each user logs in once before the measured window, then sends authenticated ``GET /me`` back to
back, each to the next node. What every request of a logged-in user costs.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 ReadUser
"""

from __future__ import annotations

from locust import task

from loadtests.scenarios.base import AuthbenchUser, Credential


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
        self.get_me(self.credential)
