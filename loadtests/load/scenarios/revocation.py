"""revocation — how long a logged-out credential keeps working, observed. Closed model, few users.

Each task logs in, checks the credential on every node, logs out (a logout that does not answer
204 is a failure and records nothing), then replays the old credential on every node until each
refuses it. The delay is observed, never computed: from the logout *response* to the send of
the first refused replay on each node, one ``revocation delay`` value per node (so its
resolution is one replay round trip). Replays pause ``REPLAY_PAUSE_S`` between rounds.

A plain JWT cannot be revoked: its access token lives until ``exp``. With a short access TTL
(the stolen-token window) its refusal is observed too; the probe waits up to the token's
remaining lifetime plus a second when that is at most ``AUTHBENCH_REVOCATION_OBSERVE_S``
(default 10 s). A node that caches store answers (``store_cache_s`` in /healthz) may honour a
revoked credential that long: the probe waits at least that plus a second. A credential still
honoured when the probe gives up is recorded as
``revocation delay (computed)`` with the lifetime it had left: a bound, not an observation.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 RevocationUser
"""

from __future__ import annotations

import os
import time

import gevent
from locust import task

from loadtests.load.scenarios.base import AuthbenchUser, Credential

PROBE_S = float(os.environ.get("AUTHBENCH_REVOCATION_PROBE_S", "3"))
OBSERVE_S = float(os.environ.get("AUTHBENCH_REVOCATION_OBSERVE_S", "10"))
REPLAY_PAUSE_S = 0.005
OBSERVED = "revocation delay"
COMPUTED = "revocation delay (computed)"


class RevocationUser(AuthbenchUser):
    """Login, logout, replay the old credential on every node until each refuses it."""

    @task
    def revoke_and_replay(self) -> None:
        if self.scheme == "none":
            return  # nothing to revoke
        credential = self.login()
        if credential is None:
            return
        for _ in self.nodes:
            self.get_me(credential, name="check /me")
        if not self._logged_out(credential):
            return
        logged_out_at = time.time()
        limit = self._probe_limit(credential, logged_out_at)
        honoured = set(self.nodes)
        while honoured and time.time() - logged_out_at < limit:
            for node in sorted(honoured):
                sent_at = time.time()
                with self.client.get(
                    node + "/me", headers=credential.headers, name="replay /me", catch_response=True
                ) as reply:
                    if reply.status_code == 401:
                        reply.success()  # refusal is the answer this replay waits for
                        honoured.discard(node)
                        self._report(OBSERVED, logged_out_at, sent_at - logged_out_at)
            gevent.sleep(REPLAY_PAUSE_S)
        if honoured and credential.expires_at is not None:
            for _ in honoured:
                self._report(COMPUTED, logged_out_at, credential.expires_at - logged_out_at)

    def _logged_out(self, credential: Credential) -> bool:
        """POST /logout and check that it answered 204."""
        body = {"refresh_token": credential.refresh_token} if credential.refresh_token else None
        with self.client.post(
            self.issuer_url("/logout"),
            headers=credential.headers,
            json=body,
            name="/logout",
            catch_response=True,
        ) as reply:
            if reply.status_code != 204:
                reply.failure(f"logout answered {reply.status_code}, expected 204")
                return False
        return True

    def _probe_limit(self, credential: Credential, logged_out_at: float) -> float:
        """How long to replay: long enough to see a store cache's entry or a short-lived token
        expire."""
        cache_s = float(self.health.get("store_cache_s", 0))
        probe_s = max(PROBE_S, cache_s + 1.0) if cache_s else PROBE_S
        if credential.expires_at is None:
            return probe_s
        remaining = credential.expires_at - logged_out_at
        return max(probe_s, remaining + 1.0) if remaining <= OBSERVE_S else probe_s

    def _report(self, name: str, logged_out_at: float, delay_s: float) -> None:
        """Record the delay as a pseudo-request that started at the logout response."""
        self.environment.events.request.fire(
            request_type="REVOKE",
            name=name,
            response_time=max(delay_s, 0.0) * 1000,
            response_length=0,
            exception=None,
            context={},
            start_time=logged_out_at,
        )
