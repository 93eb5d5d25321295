"""A deliberately broken target: it never checks a JWT's signature (nor, with it, exp, iss, aud).

Only for the test that shows the validation scenario catches a broken server:

    python -m tests.broken_target --scheme jwt --alg HS256 --port 8000
"""

from __future__ import annotations

from typing import Any

import jwt

from targets import jwt_tokens
from targets.__main__ import main

_checked_decode = jwt.PyJWT.decode


def _unchecked_decode(self: jwt.PyJWT, token: str, *args: Any, **kwargs: Any) -> Any:
    kwargs["options"] = {"verify_signature": False}
    return _checked_decode(self, token, *args, **kwargs)


def _no_claim_checks(*args: Any, **kwargs: Any) -> None:
    """The rules every library shares (aud alone, iat in the past) are skipped too."""


jwt.PyJWT.decode = _unchecked_decode  # type: ignore[method-assign]
jwt_tokens.check_claims = _no_claim_checks

if __name__ == "__main__":
    main()
