"""mixed — a realistic journey. Closed model with think time (1 to 3 ms between requests).

A user logs in, reads ``/me`` twenty times, refreshes its tokens halfway (jwt), and logs out;
then starts over as another user. Per request the mix is about 87% reads, 4% logins,
4% logouts and (jwt) 4% refreshes.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 MixedUser
"""

from __future__ import annotations

import gevent
from locust import task

from loadtests.load.scenarios.base import AuthbenchUser

READS_PER_JOURNEY = 20
THINK_S = (0.001, 0.003)


class MixedUser(AuthbenchUser):
    """Login, reads with a refresh halfway, logout."""

    @task
    def journey(self) -> None:
        credential = self.login()
        if credential is None:
            return
        for index in range(READS_PER_JOURNEY):
            gevent.sleep(THINK_S[0] + (THINK_S[1] - THINK_S[0]) * (index % 3) / 2)
            self.get_me(credential)
            if index == READS_PER_JOURNEY // 2 and credential.refresh_token:
                body = {"refresh_token": credential.refresh_token}
                response = self.client.post(self.issuer_url("/refresh"), json=body, name="/refresh")
                if response.status_code == 200:
                    credential = self._credential_from(response) or credential
        self.logout(credential)
