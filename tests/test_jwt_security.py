"""Attacks on a real JWT server, one parametrised run per JWT library and algorithm (RFC 8725
checklist): every library the server can run must refuse all of them alike."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from common.key_files import generate_private_key, new_kid, write_key
from common.schemes import ALGORITHMS, DEFAULT_JWT_LIBRARY, JWT_LIBRARIES
from loadtests.services.target_process import TargetNode
from targets.jwt_keys import KeyRing, load_key_ring
from tests import forge
from tests.conftest import client_for, launch, login

pytestmark = pytest.mark.long_running

ASYMMETRIC = [alg for alg in ALGORITHMS if not alg.startswith("HS")]
# Another algorithm the same key material can sign with, when there is one.
SAME_KEY_OTHER_ALG = {
    "HS256": "HS512",
    "HS384": "HS256",
    "HS512": "HS384",
    "RS256": "PS256",
    "RS384": "RS256",
    "RS512": "RS384",
    "PS256": "RS256",
}
FOREIGN_ALG = {"ES256": "ES384", "ES384": "ES256", "EdDSA": "ES256"}
REQUIRED = ["exp", "iat", "sub", "iss", "aud", "jti"]
TIME_CLAIMS = {"exp", "nbf", "iat"}


@dataclass
class JwtTarget:
    """A running JWT server, its parsed keys, and a client for it."""

    alg: str
    library: str
    node: TargetNode
    keys_dir: Path
    ring: KeyRing
    client: httpx.Client

    def me(self, token: str) -> httpx.Response:
        return self.client.get("/me", headers={"Authorization": f"Bearer {token}"})

    def tokens(self) -> dict[str, str]:
        response = login(self.client)
        assert response.status_code == 200, response.text
        return response.json()

    def server_args(self) -> list[str]:
        return ["--scheme", "jwt", "--alg", self.alg, "--jwt-library", self.library]


@pytest.fixture(
    scope="module",
    params=list(itertools.product(JWT_LIBRARIES, ALGORITHMS)),
    ids=lambda param: "-".join(param),
)
def target(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JwtTarget]:
    library, alg = request.param
    keys_dir = tmp_path_factory.mktemp(f"keys-{library}-{alg}")
    args = ["--scheme", "jwt", "--alg", alg, "--jwt-library", library]
    node = launch(args, redis_url, keys_dir)
    with client_for(node) as client:
        assert client.get("/healthz").json()["library"] == library
        yield JwtTarget(alg, library, node, keys_dir, load_key_ring(keys_dir, alg), client)
    node.stop()


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "detail" in response.json()


def test_valid_access_token_is_accepted(target: JwtTarget) -> None:
    response = target.me(target.tokens()["access_token"])
    assert response.status_code == 200
    assert response.json()["sub"] == "user1"


def test_token_signed_by_hand_with_server_key_is_accepted(target: JwtTarget) -> None:
    """Control for the forged-token tests below: the forging helpers make acceptable tokens."""
    token = forge.sign_with_ring(target.ring, forge.valid_claims())
    assert target.me(token).status_code == 200


def test_access_token_header_is_minimal(target: JwtTarget) -> None:
    header = jwt.get_unverified_header(target.tokens()["access_token"])
    assert header == {"alg": target.alg, "kid": target.ring.signing_kid, "typ": "at+jwt"}


@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_is_refused(target: JwtTarget, signature: str) -> None:
    token = forge.unsigned_token(forge.valid_claims(), target.ring.signing_kid, signature)
    assert_refused(target.me(token))


def test_empty_signature_is_refused(target: JwtTarget) -> None:
    header, payload, _ = forge.segments(target.tokens()["access_token"])
    assert_refused(target.me(f"{header}.{payload}."))


@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_hs256_signed_with_public_key_is_refused(target: JwtTarget, form: str) -> None:
    if target.alg not in ASYMMETRIC:
        pytest.skip("key confusion needs a public key: this server is HMAC")
    public = next(iter(target.ring.verification_keys.values()))
    if form == "pem":
        secret = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        secret = json.dumps(target.client.get("/.well-known/jwks.json").json()["keys"][0]).encode()
    header = {"alg": "HS256", "kid": target.ring.signing_kid, "typ": "at+jwt"}
    assert_refused(target.me(forge.hmac_token(header, forge.valid_claims(), secret)))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_other_algorithm_than_the_servers_is_refused(target: JwtTarget) -> None:
    claims = forge.valid_claims()
    if target.alg in SAME_KEY_OTHER_ALG:
        token = forge.sign_with_ring(target.ring, claims, alg=SAME_KEY_OTHER_ALG[target.alg])
    else:
        other = FOREIGN_ALG[target.alg]
        token = jwt.encode(
            claims,
            generate_private_key(other),
            algorithm=other,
            headers={"kid": target.ring.signing_kid, "typ": "at+jwt"},
        )
    assert_refused(target.me(token))


@pytest.mark.parametrize("part", ["header", "payload", "signature"])
def test_tampered_token_is_refused(target: JwtTarget, part: str) -> None:
    header, payload, signature = forge.segments(target.tokens()["access_token"])
    if part == "header":
        fields = forge.decode_segment(header)
        fields["typ"] = "at+JWT"
        header = forge.b64url_json(fields)
    elif part == "payload":
        claims = forge.decode_segment(payload)
        claims["sub"] = "user2"
        payload = forge.b64url_json(claims)
    else:
        signature = forge.flip_char(signature, len(signature) // 2)
    assert_refused(target.me(f"{header}.{payload}.{signature}"))


def test_signature_of_another_key_is_refused(target: JwtTarget) -> None:
    token = jwt.encode(
        forge.valid_claims(),
        generate_private_key(target.alg),
        algorithm=target.alg,
        headers={"kid": target.ring.signing_kid, "typ": "at+jwt"},
    )
    assert_refused(target.me(token))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": -5}, id="expired"),
        pytest.param({"nbf": 60}, id="nbf-in-future"),
        pytest.param({"iat": 60}, id="iat-in-future"),
        pytest.param({"iss": "someone-else"}, id="wrong-iss"),
        pytest.param({"aud": "another-service"}, id="wrong-aud"),
        pytest.param({"aud": ["authbench", "another-service"]}, id="aud-list"),
        pytest.param({"sid": None}, id="no-sid"),
        *(pytest.param({claim: None}, id=f"missing-{claim}") for claim in REQUIRED),
    ],
)
def test_own_key_with_bad_claims_is_refused(target: JwtTarget, claims: dict) -> None:
    # Time claims are given as offsets from now, computed when the test runs (not collected).
    now = int(time.time())
    claims = {k: now + v if k in TIME_CLAIMS and v is not None else v for k, v in claims.items()}
    token = forge.sign_with_ring(target.ring, forge.valid_claims(**claims))
    assert_refused(target.me(token))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"typ": "JWT"}, id="typ-JWT"),
        pytest.param({"typ": None}, id="no-typ"),
        pytest.param({"typ": "refresh+jwt"}, id="typ-refresh"),
        pytest.param({"crit": ["x-unknown"], "x-unknown": 1}, id="unknown-crit"),
        pytest.param({"kid": "no-such-kid"}, id="unknown-kid"),
        pytest.param({"kid": "../../../../etc/passwd"}, id="kid-path-traversal"),
        pytest.param({"kid": "' OR '1'='1' --"}, id="kid-sql"),
        pytest.param({"kid": None}, id="no-kid"),
        pytest.param({"jku": "http://127.0.0.1:9/jwks.json"}, id="jku"),
        pytest.param({"x5u": "http://127.0.0.1:9/cert.pem"}, id="x5u"),
        pytest.param({"x5c": ["MIIB"]}, id="x5c"),
    ],
)
def test_own_key_with_bad_header_is_refused(target: JwtTarget, header: dict) -> None:
    claims = forge.valid_claims()
    fields = {"kid": target.ring.signing_kid, "typ": "at+jwt", **header}
    fields = {name: value for name, value in fields.items() if value is not None}
    token = jwt.encode(claims, target.ring.signing_key, algorithm=target.alg, headers=fields)
    if "typ" not in fields:
        # PyJWT adds typ: JWT by default; rebuild the header without it.
        _, payload, signature = forge.segments(token)
        token = f"{forge.b64url_json({'alg': target.alg, **fields})}.{payload}.{signature}"
    assert_refused(target.me(token))


def test_embedded_jwk_of_attacker_key_is_not_trusted(target: JwtTarget) -> None:
    attacker_alg = target.alg if target.alg in ASYMMETRIC else "RS256"
    attacker_key = generate_private_key(attacker_alg)
    public_jwk = jwt.get_algorithm_by_name(attacker_alg).to_jwk(
        attacker_key.public_key(), as_dict=True
    )
    token = jwt.encode(
        forge.valid_claims(),
        attacker_key,
        algorithm=attacker_alg,
        headers={"kid": target.ring.signing_kid, "typ": "at+jwt", "jwk": public_jwk},
    )
    assert_refused(target.me(token))


def test_refresh_token_is_not_an_access_token(target: JwtTarget) -> None:
    assert_refused(target.me(target.tokens()["refresh_token"]))


def test_access_token_is_not_a_refresh_token(target: JwtTarget) -> None:
    response = target.client.post(
        "/refresh", json={"refresh_token": target.tokens()["access_token"]}
    )
    assert response.status_code == 401


def test_refresh_rotates_and_old_refresh_token_is_single_use(target: JwtTarget) -> None:
    first = target.tokens()
    rotated = target.client.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert target.me(second["access_token"]).status_code == 200
    reuse = target.client.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401


def test_reused_refresh_token_revokes_the_family(target: JwtTarget) -> None:
    first = target.tokens()
    second = target.client.post("/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert (
        target.client.post("/refresh", json={"refresh_token": first["refresh_token"]}).status_code
        == 401
    )
    # The legitimate newest refresh token died with its family.
    latest = target.client.post("/refresh", json={"refresh_token": second["refresh_token"]})
    assert latest.status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("abc.def", id="two-segments"),
        pytest.param("a.b.c.d", id="four-segments"),
        pytest.param("!!!.@@@.###", id="bad-base64"),
        pytest.param(f"{forge.b64url(b'not json')}.{forge.b64url(b'{}')}.c2ln", id="non-json"),
        pytest.param(
            f"{forge.b64url_json([1, 2])}.{forge.b64url_json({})}.c2ln", id="array-header"
        ),
        pytest.param(
            forge.b64url_json({"alg": "HS256", "pad": "A" * 65536}) + ".e30.c2ln", id="64KiB-header"
        ),
    ],
)
def test_malformed_token_is_refused_with_4xx(target: JwtTarget, token: str) -> None:
    response = target.me(token)
    assert 400 <= response.status_code < 500
    assert target.client.get("/healthz").status_code == 200


def test_payload_that_is_not_json_is_refused(target: JwtTarget) -> None:
    header, _, _ = forge.segments(target.tokens()["access_token"])
    signing_input = f"{header}.{forge.b64url(b'not json at all')}"
    ring = target.ring
    alg = jwt.get_algorithm_by_name(target.alg)
    signature = forge.b64url(alg.sign(signing_input.encode(), ring.signing_key))
    assert_refused(target.me(f"{signing_input}.{signature}"))


def test_jwks_publishes_public_keys_only(target: JwtTarget) -> None:
    response = target.client.get("/.well-known/jwks.json")
    if target.alg not in ASYMMETRIC:
        assert response.status_code == 404
        return
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert [key["kid"] for key in keys] == sorted(target.ring.verification_keys)
    for key in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)


def test_old_token_verifies_after_a_new_key_is_added(target: JwtTarget, redis_url: str) -> None:
    if target.library != DEFAULT_JWT_LIBRARY:
        # Which key signs and which verify is the key ring's (ours, for every library); each
        # library's own key conversion is what every other test here exercises. A restart per
        # library would cost 20 more server starts.
        pytest.skip("key rotation is the key ring's: tested once per algorithm")
    old_token = target.tokens()["access_token"]
    new_kid = new_kid_after(target.ring.signing_kid)
    write_key(target.keys_dir / target.alg, new_kid, target.alg, generate_private_key(target.alg))
    rotated = launch(target.server_args(), redis_url, target.keys_dir)
    try:
        with client_for(rotated) as client:
            me_old = client.get("/me", headers={"Authorization": f"Bearer {old_token}"})
            assert me_old.status_code == 200
            new_token = login(client).json()["access_token"]
            assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    finally:
        rotated.stop()


def new_kid_after(kid: str) -> str:
    """A kid that sorts after ``kid`` (kids made in the same second may not)."""
    candidate = new_kid()
    return candidate if candidate > kid else kid + "-next"
