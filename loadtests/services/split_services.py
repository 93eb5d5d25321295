"""The split topology's processes: one issuer and N resource nodes in a call-chain ring.

The issuer (``--role issuer``) holds the keys folder and logs users in; resource nodes
(``--role resource``) serve ``/me``: an asymmetric JWT's nodes learn keys from the issuer's JWKS
and get no keys folder, HMAC nodes get the folder (every one of them can then mint tokens),
``+introspect`` nodes ask the issuer about every token, sessions read the shared Redis. Node i
calls node i+1 (mod N) when a request asks for more hops. The introspection client secret is
made per group and passed in the environment, never on a command line.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from loadtests.run.matrix import Cell
from loadtests.services.target_process import TargetNode, start_together


def resource_args(cell: Cell, issuer_url: str, keys_dir: Path) -> list[str]:
    """``python -m targets`` options of a resource node of the cell's scheme."""
    settings = cell.settings
    cache = ["--store-cache", str(settings.store_cache_s)] if settings.store_cache_s else []
    if cell.kind.is_session:
        return ["--scheme", "session", "--store", "redis", "--role", "resource", *cache]
    args = ["--scheme", "jwt", "--alg", cell.alg, "--role", "resource",
            "--access-ttl", str(settings.access_ttl)]  # fmt: skip
    if cell.introspect:  # the issuer verifies, with the cell's library
        return [*args, "--introspect", "--issuer-url", issuer_url,
                "--introspect-cache", str(settings.introspect_cache_s)]  # fmt: skip
    args += cell.library_args()
    if cell.denylist:
        args += ["--denylist", *cache]
    if cell.kind.is_hmac:
        return [*args, "--keys-dir", str(keys_dir)]
    return [*args, "--issuer-url", issuer_url, "--jwks-cooldown", f"{settings.jwks_cooldown_s:g}",
            "--jwks-ttl", str(settings.jwks_ttl_s)]  # fmt: skip


def can_mint(cell: Cell) -> int:
    """How many processes hold a key that signs tokens: the issuer, plus every HMAC node."""
    return 1 + (cell.nodes if cell.kind.is_hmac else 0)


def start_split(
    cell: Cell, keys_dir: Path, env: dict[str, str], cpus: set[int] | None
) -> tuple[TargetNode, list[TargetNode]]:
    """Start the issuer, then the resource nodes side by side (each pointing at the next); stop
    all on error."""
    shared = {**env, "AUTHBENCH_INTROSPECT_SECRET": secrets.token_urlsafe(24)}
    issuer = TargetNode(
        [*cell.server_args(), "--role", "issuer", "--keys-dir", str(keys_dir),
         "--node-id", "issuer"],
        env=dict(shared),
    )  # fmt: skip
    issuer.start(cpus)
    args = resource_args(cell, issuer.url, keys_dir)
    nodes = [
        TargetNode([*args, "--node-id", f"node{i}"], env=dict(shared)) for i in range(cell.nodes)
    ]
    for index, node in enumerate(nodes):
        if cell.nodes > 1:
            node.args += ["--downstream", nodes[(index + 1) % cell.nodes].url]
    try:
        start_together(nodes, cpus)
    except BaseException:
        issuer.stop()
        raise
    return issuer, nodes
