"""The scheme ids of the suite, parsed in one place, and the JWT signing algorithms.

A scheme id is ``none``, ``session-memory``, ``session-redis``, or ``jwt-ALG`` with at most one
variant: ``+deny`` (logout denylists the token in Redis) or ``+introspect`` (split only: the
resource nodes ask the issuer about every token). Everything that needs to know what a scheme
is asks :func:`parse_scheme` instead of testing the id's prefix or suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ALGORITHMS = (
    *HMAC_ALGORITHMS,
    "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
)  # fmt: skip
DEFAULT_ALG = "RS256"
SESSION_STORES = ("memory", "redis")
JWT_VARIANTS = ("deny", "introspect")
# The libraries a JWT server signs and verifies with: a setting beside the scheme id, never part
# of it (``jwt-ES256`` is the same design whichever library runs it).
JWT_LIBRARIES = ("pyjwt", "joserfc", "jwcrypto")
DEFAULT_JWT_LIBRARY = JWT_LIBRARIES[0]


class UnknownScheme(ValueError):
    """Not a scheme id of the suite; the message names it."""


@dataclass(frozen=True)
class Scheme:
    """What a scheme id says: the family, the session store, the algorithm and the variant."""

    id: str
    family: str  # none, session or jwt
    store: str = ""  # a session's store: memory or redis
    alg: str = ""  # a JWT's signing algorithm
    variant: str = ""  # a JWT's variant: deny, introspect, or none

    @property
    def is_session(self) -> bool:
        return self.family == "session"

    @property
    def is_jwt(self) -> bool:
        return self.family == "jwt"

    @property
    def is_hmac(self) -> bool:
        """Signed with a shared secret: whoever verifies can also mint."""
        return is_hmac(self.alg)

    @property
    def denylist(self) -> bool:
        return self.variant == "deny"

    @property
    def introspect(self) -> bool:
        return self.variant == "introspect"

    @property
    def plain_jwt(self) -> bool:
        """A JWT nothing revokes: a logged-out token is honoured until its access TTL ends."""
        return self.is_jwt and not self.variant

    @property
    def reads_shared_store(self) -> bool:
        """Every read asks a shared store (a Redis session, or the denylist): what a store
        cache keeps."""
        return self.store == "redis" or self.denylist

    @property
    def revoked_at_once(self) -> bool:
        """A logout is refused at once by the store: a session, or a denylisted JWT."""
        return self.is_session or self.denylist


def is_hmac(alg: str) -> bool:
    """Whether a JWT algorithm signs with a shared secret."""
    return alg in HMAC_ALGORITHMS


@lru_cache(maxsize=256)
def parse_scheme(scheme_id: str) -> Scheme:
    """The parsed scheme id; :class:`UnknownScheme` when the suite does not know it."""
    if scheme_id == "none":
        return Scheme(scheme_id, "none")
    family, _, rest = scheme_id.partition("-")
    if family == "session" and rest in SESSION_STORES:
        return Scheme(scheme_id, "session", store=rest)
    if family == "jwt":
        alg, plus, variant = rest.partition("+")
        if alg in ALGORITHMS and (variant in JWT_VARIANTS if plus else True):
            return Scheme(scheme_id, "jwt", alg=alg, variant=variant)
    raise UnknownScheme(f"unknown scheme {scheme_id!r}")


def scheme_id_of(
    family: str, store: str | None = None, alg: str | None = None, variant: str = ""
) -> str:
    """The scheme id of a server's settings (or of what its /healthz reports)."""
    if family == "session":
        return f"session-{store}"
    if family == "jwt":
        return f"jwt-{alg}" + (f"+{variant}" if variant else "")
    return family


def valid_scheme(scheme_id: str) -> bool:
    """Whether the suite knows the scheme id."""
    try:
        parse_scheme(scheme_id)
    except UnknownScheme:
        return False
    return True
