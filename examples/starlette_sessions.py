"""A second, independent server that follows docs/target-contract.md: sessions in process memory.

Plain Starlette (no FastAPI) and none of the suite's own code: it shows what a team's server
needs to be measured with ``authbench run --target-url``, and a test measures it. Users are
``user0`` … ``user{N-1}`` with the bench password, stored as salted PBKDF2-SHA256 hashes made
at start; a session id is 32 random bytes in an HttpOnly cookie, forgotten at logout.

    python examples/starlette_sessions.py --port 8100 --users 50
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PASSWORD = "bench-password"  # the contract's: every user has it
COOKIE = "session_id"


class Users:
    """Salted password hashes, made once at start."""

    def __init__(self, count: int, iterations: int) -> None:
        self.iterations = iterations
        self.salted: dict[str, tuple[bytes, bytes]] = {}
        for index in range(count):
            salt = secrets.token_bytes(16)
            self.salted[f"user{index}"] = (salt, self._hash(PASSWORD, salt))

    def _hash(self, password: str, salt: bytes) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, self.iterations)

    def check(self, username: object, password: object) -> bool:
        """Whether the password is the user's; as slow for an unknown user as for a known one."""
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        salt, expected = self.salted.get(username, (b"\0" * 16, b""))
        return hmac.compare_digest(self._hash(password, salt), expected)


def build_app(users: Users) -> Starlette:
    """The contract's endpoints over a dict of sessions."""
    sessions: dict[str, str] = {}

    def subject(request: Request) -> str | None:
        return sessions.get(request.cookies.get(COOKIE, ""))

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "scheme": "session", "alg": None, "store": "memory"})

    async def login(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "a JSON body is required"}, status_code=400)
        given = body if isinstance(body, dict) else {}
        if not users.check(given.get("username"), given.get("password")):
            return JSONResponse({"detail": "wrong username or password"}, status_code=401)
        session_id = secrets.token_urlsafe(32)
        sessions[session_id] = given["username"]
        response = JSONResponse({"sub": given["username"]})
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict")
        return response

    async def me(request: Request) -> JSONResponse:
        started = time.perf_counter()
        name = subject(request)
        if name is None:
            return JSONResponse({"detail": "not logged in"}, status_code=401)
        took_ms = (time.perf_counter() - started) * 1000
        return JSONResponse({"sub": name}, headers={"Server-Timing": f"auth;dur={took_ms:.3f}"})

    async def logout(request: Request) -> Response:
        if sessions.pop(request.cookies.get(COOKIE, ""), None) is None:
            return JSONResponse({"detail": "not logged in"}, status_code=401)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE)
        return response

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/login", login, methods=["POST"]),
            Route("/me", me),
            Route("/logout", logout, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--users", type=int, default=1000, help="user0 … user{N-1}")
    parser.add_argument("--kdf-iterations", type=int, default=10_000)
    args = parser.parse_args()
    app = build_app(Users(args.users, args.kdf_iterations))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
