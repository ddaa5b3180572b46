"""End to end: the e2e fleet's shop service written as a Helm chart, then as a Kustomize
base (its Terraform stack, database and migration unchanged), rolled out by the real
daemon (``reconciler run``'s assembly) through the waves with the per-cell inputs — a
Terraform output, a cell variable, the version — reaching the objects; drift made by
hand is healed; a bad version breaching the canary's alarm is rolled back and reverted
in Git, exactly as with plain manifests."""

from __future__ import annotations

import json

import pytest

from reconciler.compose.oneshot import load_directory
from reconciler.engine.executor import Outcome
from reconciler.localparts.helm import find_helm, find_kubectl
from tests.e2e.conftest import CELLS, Fleet, unavailable
from tests.e2e.support import SteppedDaemon, drift_reported, live_versions, stepped_daemon
from tests.e2e.test_rollout import converged, done_steps, index_of, of

pytestmark = pytest.mark.e2e

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    "values.yaml": "image:\n  repository: registry.local/shop\n  tag: latest\n",
    "templates/app.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  QUEUE: {{ .Values.reconciler.terraform.queue | quote }}
  VERSION: {{ .Values.reconciler.version | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: {{ .Values.reconciler.vars.replicas }}
  progressDeadlineSeconds: 120
  selector:
    matchLabels: {app: shop}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
""",
}
BASE = {
    "kustomization.yaml": "resources:\n  - deployment.yaml\n",
    "deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 1
  progressDeadlineSeconds: 120
  selector:
    matchLabels: {app: shop}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: registry.local/shop:0.0.0
          envFrom:
            - configMapRef: {name: shop-cell}
""",
}
SERVICE = """\
apiVersion: reconciler.dev/v1
kind: Service
metadata:
  name: shop
spec:
  kubernetes:
{kubernetes}
  terraform:
    stack: terraform
  health:
    progressDeadline: 120s
  databases: [main]
"""


def _rewrite(fleet: Fleet, tool: str) -> None:
    """The shop service written with ``tool`` instead of templates, committed and pushed."""
    svc = fleet.repo / "services" / "shop"
    for f in (svc / "kubernetes").iterdir():
        f.unlink()
    (svc / "kubernetes").rmdir()
    files, kube = (CHART, "    helm: {chart: chart}") if tool == "helm" else (
        BASE, "    kustomize: kustomize")
    root = svc / ("chart" if tool == "helm" else "kustomize")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (svc / "service.yaml").write_text(SERVICE.format(kubernetes=kube))
    fleet.git("add", "-A")
    fleet.git("commit", "-q", "-m", f"shop as {tool}")
    fleet.push()


def _kubectl_json(fleet: Fleet, *args: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(fleet.plane.kubectl(*args, "-o", "json"))
    return doc


def _namespace(fleet: Fleet, cell: str) -> str:
    result = load_directory(fleet.repo)
    assert result.desired is not None, result.errors
    return result.desired.cells[cell].kubernetes.namespace


def _cell_inputs(fleet: Fleet, tool: str, cell: str) -> dict[str, str]:
    ns = _namespace(fleet, cell)
    name = "shop-config" if tool == "helm" else "shop-cell"
    data = _kubectl_json(fleet, "get", "configmap", name, "-n", ns)["data"]
    assert isinstance(data, dict)
    return data


def _start(fleet: Fleet, tool: str) -> None:
    if find_helm() is None or find_kubectl() is None:
        unavailable("helm or kubectl not built (hack/helm.sh, hack/k8s-testenv/build.sh)")
    _rewrite(fleet, tool)


def _installed(fleet: Fleet, d: SteppedDaemon, tool: str) -> None:
    log: list[Outcome] = []
    d.run_until(converged, log)
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("1.0.0", "Healthy"))
    data = _cell_inputs(fleet, tool, "e2e-z1")
    queue_key, version_key = (("QUEUE", "VERSION") if tool == "helm"
                              else ("terraform.queue", "version"))
    assert (data[queue_key], data[version_key]) == ("orders-e2e-z1", "1.0.0"), data


@pytest.mark.parametrize("tool", ["helm", "kustomize"])
def test_tool_rendered_service_rolls_out_through_the_waves(fleet: Fleet, tool: str) -> None:
    _start(fleet, tool)
    with stepped_daemon(fleet) as d:
        _installed(fleet, d, tool)
        fleet.set_version("2.0.0")
        log: list[Outcome] = []
        d.run_until(converged, log)
        _waves_in_order(log)
        assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.0.0", "Healthy"))


@pytest.mark.parametrize("tool", ["helm", "kustomize"])
def test_tool_rendered_service_drift_is_healed(fleet: Fleet, tool: str) -> None:
    _start(fleet, tool)
    with stepped_daemon(fleet) as d:
        _installed(fleet, d, tool)
        _drift_healed(fleet, d, "1.0.0")


@pytest.mark.parametrize("tool", ["helm", "kustomize"])
def test_tool_rendered_service_bad_version_is_rolled_back_and_reverted(
        fleet: Fleet, tool: str) -> None:
    _start(fleet, tool)
    with stepped_daemon(fleet) as d:
        log: list[Outcome] = []
        fleet.set_version("2.0.0")
        d.run_until(converged, log)
        _breach_rolled_back(fleet, d)


def _waves_in_order(log: list[Outcome]) -> None:
    applies = {c: index_of(log, of("kubernetes-apply", c)) for c in CELLS}
    assert all(len(v) == 1 for v in applies.values()), applies
    c1, z1, r1, r2 = (applies[c][0] for c in CELLS)
    bakes = {s.wave: i for i, s in enumerate(o.step for o in log)
             if s.kind == "bake" and s.to_version == "2.0.0"}
    assert c1 < bakes["canary"] < z1 < bakes["zone"] < min(r1, r2), (applies, bakes)


def _drift_healed(fleet: Fleet, d: SteppedDaemon, version: str) -> None:
    ns = _namespace(fleet, "e2e-r1")
    with drift_reported(d, "e2e-r1"):  # one write with both changes, seen by the watch
        fleet.plane.kubectl("patch", "deployment", "shop", "-n", ns, "--type=json", "-p",
                            json.dumps([{"op": "replace", "path": "/spec/replicas", "value": 5},
                                        {"op": "replace",
                                         "path": "/spec/template/spec/containers/0/image",
                                         "value": "registry.local/shop:hacked"}]))
    report = d.tick()
    heals = [o for o in report.outcomes if o.step.kind == "kubernetes-apply"]
    assert heals and heals[0].status == "done" and "heal drift" in heals[0].step.detail
    spec = _kubectl_json(fleet, "get", "deployment", "shop", "-n", ns)["spec"]
    assert isinstance(spec, dict)
    assert spec["template"]["spec"]["containers"][0]["image"] == f"registry.local/shop:{version}"
    assert spec["replicas"] != 5


def _breach_rolled_back(fleet: Fleet, d: SteppedDaemon) -> None:
    log: list[Outcome] = []
    fleet.set_version("2.1.0", canary_bake="60s")
    d.run_until(lambda r: bool(done_steps(log, "kubernetes-apply")), log)
    fleet.exporter.set_error_rate("e2e-c1", 0.5)
    try:
        d.run_until(lambda r: bool(done_steps(log, "revert-commit")), log)
    finally:
        fleet.exporter.set_error_rate("e2e-c1", 0.0)
    assert [(s.cell, s.from_version, s.to_version) for s in done_steps(log, "rollback")] == [
        ("e2e-c1", "2.1.0", "2.0.0")]
    d.run_until(converged, log)
    fleet.pull()
    assert len(fleet.git("log", "--format=%H", "--grep", "Reconciler-Rollback-Of").split()) == 1
    assert "version: 2.0.0" in (fleet.repo / "releases" / "shop.yaml").read_text()
    assert {s.cell for s in done_steps(log, "kubernetes-apply")} == {"e2e-c1"}
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.0.0", "Healthy"))

