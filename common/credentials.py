"""The benchmark's users and how their credentials travel, shared by servers and load.

Users are ``user0`` … ``user{N-1}``, every one with the same password; a session id travels in
the ``session_id`` cookie, a JWT in the ``Authorization: Bearer`` header.
"""

from __future__ import annotations

BENCH_PASSWORD = "bench-password"
FIRST_USER = "user0"
SESSION_COOKIE = "session_id"
