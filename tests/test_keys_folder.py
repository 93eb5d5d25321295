"""The keys folder: layout, sharing between nodes started together, rotation, HMAC secrets."""

from __future__ import annotations

import base64
import concurrent.futures
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from common.key_files import HMAC_SECRET_BYTES
from common.schemes import ALGORITHMS
from targets.jwt_keys import load_key_ring
from tests.conftest import StartTarget, client_for, login


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_missing_key_is_generated_in_the_documented_layout(tmp_path: Path, alg: str) -> None:
    ring = load_key_ring(tmp_path, alg)
    files = [p for p in (tmp_path / alg).iterdir() if not p.name.startswith(".")]
    assert [p.stem for p in files] == [ring.signing_kid]
    path = files[0]
    assert path.stat().st_mode & 0o077 == 0
    if alg in HMAC_SECRET_BYTES:
        assert path.suffix == ".hmac"
        text = path.read_text().strip()
        assert (
            len(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == HMAC_SECRET_BYTES[alg]
        )
    else:
        assert path.suffix == ".pem"
        assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8


@pytest.mark.parametrize(
    ("alg", "kind", "detail"),
    [
        ("RS256", rsa.RSAPrivateKey, 2048),
        ("PS256", rsa.RSAPrivateKey, 2048),
        ("ES256", ec.EllipticCurvePrivateKey, "secp256r1"),
        ("ES384", ec.EllipticCurvePrivateKey, "secp384r1"),
        ("EdDSA", ed25519.Ed25519PrivateKey, None),
    ],
)
def test_generated_keys_have_the_right_type(tmp_path: Path, alg: str, kind: type, detail) -> None:
    key = load_key_ring(tmp_path, alg).signing_key
    assert isinstance(key, kind)
    if isinstance(detail, int):
        assert key.key_size == detail
    elif detail:
        assert key.curve.name == detail


def test_loaders_racing_on_an_empty_folder_share_one_key(tmp_path: Path) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        rings = list(pool.map(lambda _: load_key_ring(tmp_path, "ES256"), range(8)))
    assert len({ring.signing_kid for ring in rings}) == 1


def test_nodes_started_together_accept_each_others_tokens(
    start_target: StartTarget, tmp_path: Path
) -> None:
    keys = tmp_path / "shared-keys"
    node_a = start_target("--scheme", "jwt", "--alg", "EdDSA", keys_dir=keys)
    node_b = start_target("--scheme", "jwt", "--alg", "EdDSA", keys_dir=keys)
    with client_for(node_a) as on_a, client_for(node_b) as on_b:
        token = login(on_a).json()["access_token"]
        assert on_b.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_kid_that_sorts_last_signs_and_all_verify(tmp_path: Path) -> None:
    first = load_key_ring(tmp_path, "HS256")
    (tmp_path / "HS256" / "zzz-newest.hmac").write_text(
        base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=") + "\n"
    )
    rotated = load_key_ring(tmp_path, "HS256")
    assert rotated.signing_kid == "zzz-newest"
    assert set(rotated.verification_keys) == {first.signing_kid, "zzz-newest"}
    assert rotated.jwks() == {"keys": []}


def test_jwks_lists_every_key_with_its_kid(tmp_path: Path) -> None:
    load_key_ring(tmp_path, "RS256")
    (tmp_path / "RS256" / "zzz-second.pem").write_bytes(
        (next((tmp_path / "RS256").glob("*.pem"))).read_bytes()
    )
    ring = load_key_ring(tmp_path, "RS256")
    jwks = ring.jwks()["keys"]
    assert [key["kid"] for key in jwks] == sorted(ring.verification_keys)
    assert all(key["kty"] == "RSA" and "d" not in key for key in jwks)
    jwt.PyJWKSet.from_dict({"keys": jwks})  # a standard JWKS consumer accepts it
