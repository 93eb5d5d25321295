"""The split topology's key faults: a rotation of the issuer's key, a flood of unknown kids.

``key-rotation`` writes a new key into the issuer's keys folder and sends the issuer (and HMAC
resource nodes, which share the folder) SIGHUP: from then on it signs with the new key, and
resource nodes must learn it at the first token that carries it. Instant, like a kill; users
take a fresh token every ``RELOGIN_S`` so new tokens arrive at once; the resource nodes'
counters are read just before it (``counters_before``), which gives the time to the first
accepted token of the new key on the slowest node and the JWKS fetches it caused.

``kid-flood`` is the load itself: a share of reads present the user's token under a made-up
``kid``, for the whole window. It counts those requests and the most JWKS fetches the cooldown
allows, against which the fetches made are judged.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.key_files import generate_private_key, new_kid, write_key
from common.schemes import is_hmac
from loadtests.faults.base import Fault, FaultTargets
from loadtests.load.histograms import FAILED, LATENCY, HistogramSet
from loadtests.load.http_probe import service_counters

if TYPE_CHECKING:
    from loadtests.run.matrix import Cell, CellSettings

RELOGIN_S = 0.5  # key-rotation cells: users take a fresh token this often
UNKNOWN_KID = "/me (unknown kid)"  # the read scenario's name for its made-up-kid requests


class SplitKeyFault(Fault):
    """Both need resource nodes that verify tokens themselves."""

    section = "microservices"

    def problem(self, cell: Cell) -> str | None:
        if not (cell.is_split and cell.is_jwt and not cell.introspect):
            return f"{self.name} needs a locally verified jwt on split"
        return None


class KeyRotation(SplitKeyFault):
    """The issuer starts signing with a new key in the middle of the window."""

    name = "key-rotation"

    def locust_env(self, settings: CellSettings) -> dict[str, str]:
        return {"AUTHBENCH_RELOGIN_EVERY_S": f"{RELOGIN_S:g}"}

    def begin(self, targets: FaultTargets) -> None:
        assert targets.issuer is not None and targets.keys_dir is not None
        alg = targets.cell.alg
        targets.record["counters_before"] = {
            f"node{i}": service_counters(node.url) for i, node in enumerate(targets.nodes)
        }
        kid = new_kid()
        write_key(targets.keys_dir / alg, kid, alg, generate_private_key(alg))
        reloaded = [targets.issuer, *(targets.nodes if is_hmac(alg) else [])]
        targets.record["started"] = time.time()
        for node in reloaded:
            if node.process is not None:
                node.process.send_signal(signal.SIGHUP)
        targets.record["new_kid"] = kid

    def figures(
        self,
        cell_dir: Path,
        meta: dict[str, Any],
        window: tuple[float, float],
        histograms: HistogramSet,
    ) -> dict[str, Any]:
        try:
            fault = json.loads((cell_dir / "fault.json").read_text())
        except (OSError, ValueError):
            return {}
        if "new_kid" not in fault:
            return {}
        final = meta.get("split", {}).get("counters", {})
        before = fault.get("counters_before", {})
        nodes = {name: counters for name, counters in final.items() if name.startswith("node")}
        accepted = [c.get("kid_first_accepted", {}).get(fault["new_kid"]) for c in nodes.values()]
        fetched = sum(
            counters.get("jwks_fetches", 0) - before.get(name, {}).get("jwks_fetches", 0)
            for name, counters in nodes.items()
        )
        first = (
            round((max(accepted) - fault["started"]) * 1000, 1)
            if accepted and all(t is not None for t in accepted)
            else None
        )
        return {"rotation_first_accept_ms": first, "rotation_jwks_fetches": fetched}


class KidFlood(SplitKeyFault):
    """A share of the reads carry a made-up kid, all window long."""

    name = "kid-flood"
    injected = False

    def label(self, settings: CellSettings) -> str:
        return f"{settings.kid_flood_share:g}"

    def locust_env(self, settings: CellSettings) -> dict[str, str]:
        return {"AUTHBENCH_KID_FLOOD": f"{settings.kid_flood_share:g}"}

    def begin(self, targets: FaultTargets) -> None:
        raise AssertionError("a kid flood is the load itself: nothing is injected")

    def figures(
        self,
        cell_dir: Path,
        meta: dict[str, Any],
        window: tuple[float, float],
        histograms: HistogramSet,
    ) -> dict[str, Any]:
        params = meta["cell"]
        start, end = window
        cooldown = float(params.get("jwks_cooldown_s", 2.0))
        return {
            "jwks_fetch_bound": int(params["nodes"]) * (int((end - start) / cooldown) + 1),
            "unknown_kid_requests": histograms.total(LATENCY, [UNKNOWN_KID])
            + histograms.total(FAILED, [UNKNOWN_KID]),
        }
