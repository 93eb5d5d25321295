"""login — the credential exchange. Closed model (N users, no wait) unless open is configured.

Each task is one ``POST /login`` as a random user: the password check (the same KDF for every
scheme), then signing a token pair or writing a session. What issuing a credential costs.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 LoginUser
"""

from __future__ import annotations

from locust import task

from loadtests.load.scenarios.base import AuthbenchUser


class LoginUser(AuthbenchUser):
    """POST /login in a loop."""

    @task
    def log_in(self) -> None:
        self.login()
