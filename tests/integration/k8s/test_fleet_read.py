"""The fleet read against a real control plane: cluster-wide lists give exactly what
per-cell reads give (including objects relabelled away and cells never applied), and
namespace-scoped credentials fall back to per-cell reads.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache, KubeClient, Target
from reconciler.adapters.kubernetes.errors import Forbidden
from reconciler.adapters.kubernetes.objects import LABEL_SERVICE
from reconciler.adapters.kubernetes.snapshot import read_cluster, read_fleet, read_service
from reconciler.core.live import ServiceLive
from reconciler.core.model import Cell, DesiredState, KubernetesTarget
from reconciler.localparts.k8s import ControlPlane

from .support import cell, desired, render, wait_for

pytestmark = pytest.mark.k8s


def per_cell(state: DesiredState, clients: ClientCache) -> dict[str, dict[str, ServiceLive]]:
    return {name: {"web": read_service(clients.for_cell(c), c, "web")}
            for name, c in sorted(state.cells.items())}


def settled(state: DesiredState, clients: ClientCache, cells: list[Cell]) -> bool:
    live = per_cell(state, clients)
    return all(live[c.name]["web"].health == "Healthy" for c in cells)


def test_fleet_read_equals_per_cell_reads(cluster_a: ControlPlane) -> None:
    ns1, ns2 = f"fr-{uuid.uuid4().hex[:6]}", f"fr-{uuid.uuid4().hex[:6]}"
    applied = [cell("f1", cluster_a, ns1), cell("f2", cluster_a, ns1),
               cell("f3", cluster_a, ns2)]
    never = cell("f4", cluster_a, ns2)  # nothing applied: Missing
    state = desired([*applied, never])
    clients = ClientCache()
    for i, c in enumerate(applied):
        apply_service(clients.for_cell(c), c, "web", f"1.{i}.0", render(state, c, f"1.{i}.0"))
    wait_for("applied cells Healthy", lambda: settled(state, clients, applied))
    # f3's ConfigMap relabelled by hand: no longer selected, so reported missing (drift)
    cluster_a.kubectl("label", "configmap", "web-config-f3", "-n", ns2,
                      f"{LABEL_SERVICE}=other", "--overwrite")
    fleet, expected = read_fleet(state, clients), per_cell(state, clients)
    assert fleet == expected
    assert fleet["f4"]["web"].health == "Missing"
    assert fleet["f3"]["web"].drift, "the relabelled ConfigMap is drift"
    assert [str(fleet[c.name]["web"].version) for c in applied] == ["1.0.0", "1.1.0", "1.2.0"]


def token_kubeconfig(plane: ControlPlane, namespace: str, path: Path) -> Path:
    """A kubeconfig for a service account that may only read ``namespace``."""
    plane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    plane.kubectl("create", "role", "reader", "-n", namespace, "--verb=get,list,watch",
                  "--resource=configmaps,deployments.apps")
    plane.kubectl("create", "rolebinding", "reader", "-n", namespace, "--role=reader",
                  f"--serviceaccount={namespace}:reader")
    token = plane.kubectl("create", "token", "reader", "-n", namespace).strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": plane.server,
                                               "certificate-authority": str(plane.pki.ca_crt)}}],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "reader", "context": {"cluster": "c", "user": "reader",
                                                    "namespace": namespace}}],
        "current-context": "reader"}))
    return path


def test_namespace_scoped_credentials_fall_back_to_per_cell_reads(
        cluster_a: ControlPlane, tmp_path: Path) -> None:
    ns = f"fr-{uuid.uuid4().hex[:6]}"
    admin_cells = [cell("g1", cluster_a, ns), cell("g2", cluster_a, ns)]
    state = desired(admin_cells)
    clients = ClientCache()
    for c in admin_cells:
        apply_service(clients.for_cell(c), c, "web", "2.0.0", render(state, c, "2.0.0"))
    wait_for("Healthy", lambda: settled(state, clients, admin_cells))
    cfg = token_kubeconfig(cluster_a, ns, tmp_path / "reader.kubeconfig")
    scoped = [replace(c, kubernetes=KubernetesTarget(namespace=ns, context="reader",
                                                     kubeconfig=str(cfg)))
              for c in admin_cells]
    reader = KubeClient(Target(str(cfg), "reader"))
    with pytest.raises(Forbidden):
        read_cluster(reader, scoped, ["web"])
    fleet = read_fleet(desired(scoped), ClientCache())
    assert fleet == per_cell(state, clients)
    assert all(s["web"].health == "Healthy" for s in fleet.values())
