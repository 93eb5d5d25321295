"""``python -m targets``: validate settings, bind the port, then serve with uvicorn.

Start-up problems (bad option, port in use, unusable keys folder, an issuer whose JWKS cannot be
fetched) end with one line on stderr
and a non-zero exit, never a traceback. The web stack (half a second of imports) loads only once
the options are valid and the port is bound, so a bad option or a busy port fails at once.
"""

from __future__ import annotations

import socket
import sys

from targets.settings import ServerSettings, SettingsError, parse_settings

PROG = "authbench serve"


def fail(message: str, code: int = 2) -> None:
    """Print one line on stderr and exit."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


def bind(settings: ServerSettings) -> socket.socket:
    """The listening socket, bound before any slow start-up work so a busy port fails fast."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    """Entry point (``authbench serve`` passes its arguments); Ctrl-C stops it quietly, during
    start-up (hashing the users' passwords takes seconds) as while serving."""
    try:
        serve(argv)
    except KeyboardInterrupt:
        sys.exit(130)


def serve(argv: list[str] | None) -> None:
    """Validate, bind, build the app, then serve until stopped."""
    try:
        settings = parse_settings(argv)
    except SettingsError as exc:
        fail(str(exc))
    sock = bind(settings)
    import uvicorn

    from targets.app import create_app
    from targets.context import build_context
    from targets.jwks_cache import JwksUnavailable
    from targets.jwt_keys import KeysFolderError

    try:
        app = create_app(build_context(settings))
    except (KeysFolderError, JwksUnavailable, OSError) as exc:
        fail(str(exc))
    config = uvicorn.Config(
        app,
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
