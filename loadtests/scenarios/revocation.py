"""revocation — how long a logged-out credential keeps working. Closed model, a few users.

Each task logs in, checks the credential on every node, logs out, then replays the old
credential on every node until all of them refuse it. The delay from logout to refusal is
recorded as the request ``revocation delay`` (ms). A credential still honoured after
``AUTHBENCH_REVOCATION_PROBE_S`` (default 3 s) and carrying an expiry (a plain JWT) is recorded
as ``revocation delay (expiry)`` with the lifetime it had left: the server cannot end it sooner.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 RevocationUser
"""

from __future__ import annotations

import os
import time

from locust import task

from loadtests.scenarios.base import AuthbenchUser

PROBE_S = float(os.environ.get("AUTHBENCH_REVOCATION_PROBE_S", "3"))


class RevocationUser(AuthbenchUser):
    """Login, logout, replay the old credential on every node until refused."""

    @task
    def revoke_and_replay(self) -> None:
        if self.scheme == "none":
            return  # nothing to revoke
        credential = self.login()
        if credential is None:
            return
        for _ in self.nodes:
            self.get_me(credential, name="check /me")
        logged_out_at = time.time()
        self.logout(credential)
        honoured = set(self.nodes)
        while honoured and time.time() - logged_out_at < PROBE_S:
            for node in sorted(honoured):
                with self.client.get(
                    node + "/me", headers=credential.headers, name="replay /me", catch_response=True
                ) as reply:
                    if reply.status_code == 401:
                        reply.success()  # refusal is the answer this replay waits for
                        honoured.discard(node)
        if not honoured:
            self._report("revocation delay", logged_out_at, time.time() - logged_out_at)
        elif credential.expires_at is not None:
            remaining_s = credential.expires_at - logged_out_at
            self._report("revocation delay (expiry)", logged_out_at, remaining_s)

    def _report(self, name: str, logged_out_at: float, delay_s: float) -> None:
        """Record the delay as a pseudo-request that started at logout."""
        self.environment.events.request.fire(
            request_type="REVOKE",
            name=name,
            response_time=delay_s * 1000,
            response_length=0,
            exception=None,
            context={},
            start_time=logged_out_at,
        )
