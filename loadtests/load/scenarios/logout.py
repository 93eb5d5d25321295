"""logout — store churn. Closed model (N users, no wait) unless open is configured.

Each task is a short visit: log in, read ``/me`` a few times, log out. Sessions are written and
deleted at the login rate; JWT families are created and revoked.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 LogoutUser
"""

from __future__ import annotations

from locust import task

from loadtests.load.scenarios.base import AuthbenchUser

READS_PER_VISIT = 5


class LogoutUser(AuthbenchUser):
    """Login, a few reads, logout; again."""

    @task
    def visit(self) -> None:
        credential = self.login()
        if credential is None:
            return
        for _ in range(READS_PER_VISIT):
            self.get_me(credential)
        self.logout(credential)
