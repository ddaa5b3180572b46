"""Kubernetes ownership on a real control plane (issue #14): an object the reconciler did
not create is never taken over (and so never pruned later), one object claimed by two
cells fails the second cell's apply with the owner named instead of flapping forever,
and a namespaced object is never placed outside its cell's namespace."""

from __future__ import annotations

import json
import uuid

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.localparts.k8s import ControlPlane

from .support import WEB, cell, desired, render

pytestmark = pytest.mark.k8s

FOREIGN = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: {namespace}
data: {{taken: "over"}}
"""

SHARED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared-config
data: {cell: "{{ cell.name }}"}
"""


def _ns(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _configmap(plane: ControlPlane, namespace: str, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(plane.kubectl("-n", namespace, "get", "configmap",
                                                      name, "-o", "json"))
    return doc


def test_an_object_we_did_not_create_is_never_taken_over_nor_pruned(
        cluster_a: ControlPlane) -> None:
    namespace = _ns("own")
    c = cell("own", cluster_a, namespace)
    kube = ClientCache().for_cell(c)
    apply_service(kube, c, "web", "1.0.0", render(desired([c]), c, "1.0.0"))
    cluster_a.kubectl("-n", namespace, "create", "configmap", "theirs", "--from-literal=a=b")
    greedy = desired([c], WEB + FOREIGN.format(name="theirs", namespace=namespace))
    with pytest.raises(PermanentError) as e:
        apply_service(kube, c, "web", "1.0.1", render(greedy, c, "1.0.1"))
    assert f"ConfigMap/{namespace}/theirs already exists" in str(e.value)
    assert "reconciler did not create it" in str(e.value)
    theirs = _configmap(cluster_a, namespace, "theirs")
    assert theirs["data"] == {"a": "b"}
    meta = theirs["metadata"]
    assert isinstance(meta, dict) and "reconciler.dev/cell" not in (meta.get("labels") or {})
    # nothing of the refused apply was written: the Deployment still runs 1.0.0
    dep = json.loads(cluster_a.kubectl("-n", namespace, "get", "deployment", f"web-{c.name}",
                                       "-o", "json"))
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")
    # and removing it from the repository does not delete it
    apply_service(kube, c, "web", "1.0.2", render(desired([c]), c, "1.0.2"))
    assert _configmap(cluster_a, namespace, "theirs")["data"] == {"a": "b"}


def test_one_object_claimed_by_two_cells_fails_the_second_with_the_owner(
        cluster_a: ControlPlane) -> None:
    namespace = _ns("claim")
    one, two = cell("one", cluster_a, namespace), cell("two", cluster_a, namespace)
    state = desired([one, two], SHARED)
    clients = ClientCache()
    apply_service(clients.for_cell(one), one, "web", "1.0.0", render(state, one, "1.0.0"))
    before = _configmap(cluster_a, namespace, "shared-config")
    with pytest.raises(PermanentError) as e:
        apply_service(clients.for_cell(two), two, "web", "1.0.0", render(state, two, "1.0.0"))
    assert "it belongs to cell one, service web" in str(e.value)
    after = _configmap(cluster_a, namespace, "shared-config")
    assert after["data"] == {"cell": "one"}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # type: ignore[index]


def test_a_namespaced_object_outside_the_cell_namespace_is_refused(
        cluster_a: ControlPlane) -> None:
    namespace = _ns("place")
    c = cell("place", cluster_a, namespace)
    name = f"planted-{uuid.uuid4().hex[:6]}"
    state = desired([c], WEB + FOREIGN.format(name=name, namespace="kube-system"))
    with pytest.raises(PermanentError) as e:
        apply_service(ClientCache().for_cell(c), c, "web", "1.0.0", render(state, c, "1.0.0"))
    assert f"ConfigMap/kube-system/{name}" in str(e.value)
    assert f"must be in its namespace {namespace}" in str(e.value)
    names = cluster_a.kubectl("-n", "kube-system", "get", "configmap", "-o", "name").split()
    assert f"configmap/{name}" not in names
