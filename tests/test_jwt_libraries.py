"""The JWT libraries are interchangeable: each accepts what the others sign, and none keeps a key
the ring has replaced (the attacks on each are in test_jwt_security.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from common.key_files import generate_private_key
from common.schemes import JWT_LIBRARIES
from targets.jwt_keys import KeyRing, load_key_ring
from targets.jwt_tokens import InvalidToken, TokenService

ALGS = ("HS256", "RS256", "ES256", "EdDSA")


def service(ring: KeyRing, library: str) -> TokenService:
    return TokenService(ring, "authbench", "authbench", 300, 3600, 0, library)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("signer,verifier", list(itertools.permutations(JWT_LIBRARIES, 2)))
def test_a_token_of_one_library_verifies_in_another(
    tmp_path: Path, alg: str, signer: str, verifier: str
) -> None:
    ring = load_key_ring(tmp_path, alg)
    pair = service(ring, signer).issue_pair("user7")
    verified = service(ring, verifier).verify_access(pair.access_token)
    assert (verified.subject, verified.family_id) == ("user7", pair.family_id)
    assert verified.key_id == ring.signing_kid
    with pytest.raises(InvalidToken):
        service(ring, verifier).verify_access(pair.refresh_token)


@pytest.mark.parametrize("library", JWT_LIBRARIES)
def test_a_key_replaced_under_its_kid_is_used_at_once(tmp_path: Path, library: str) -> None:
    """A JWKS refresh replaces the ring's keys in place: the library's converted key must follow,
    or a node would keep trusting a key its issuer has withdrawn."""
    ring = load_key_ring(tmp_path, "ES256")
    tokens = service(ring, library)
    old_token = tokens.issue_pair("user1").access_token
    assert tokens.verify_access(old_token).subject == "user1"
    other = generate_private_key("ES256")
    ring.verification_keys[ring.signing_kid] = other.public_key()
    with pytest.raises(InvalidToken):
        tokens.verify_access(old_token)
