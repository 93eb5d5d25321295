"""The Kubernetes manifests: valid against the API schemas (offline), and wired together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from targets.settings import environment_variables

ROOT = Path(__file__).parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBERNETES / "authbench.yaml").read_text()) if doc]


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(
    doc: dict[str, Any],
) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    """The check above can fail: a misspelt field is refused."""
    broken = documents()[0]
    broken["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_services_select_their_deployments_and_workers_find_the_master() -> None:
    docs = documents()
    labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
              for d in docs if d["kind"] == "Deployment"}  # fmt: skip
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name, service in services.items():
        selector = service["spec"]["selector"]
        assert selector.items() <= labels[name].items(), name
    worker = next(d for d in docs if d["metadata"]["name"] == "locust-worker")
    args = worker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--master-host") + 1] in services


def test_the_app_reads_every_variable_the_manifests_set() -> None:
    app = next(d for d in documents() if d["metadata"]["name"] == "app")
    names = {e["name"] for e in app["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert names <= set(environment_variables())


def test_kustomization_ships_the_projects_own_locustfile() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["authbench.yaml"]
    files = kustomization["configMapGenerator"][0]["files"]
    assert files == ["locustfile.py"]
    shipped = (KUBERNETES / "locustfile.py").read_text()
    assert shipped == (ROOT / "loadtests" / "locustfile.py").read_text()
