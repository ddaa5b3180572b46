"""The Gateway API on the local control plane: the standard CRDs from the Go module
(hack/gateway-api.sh) applied by the test setup, and an HTTPRoute's backend weights and
RequestMirror filter written and read back through the reconciler's own Kubernetes client
(server-side apply), as the traffic-shifting strategies need."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.localparts.k8s import ControlPlane

pytestmark = pytest.mark.k8s
NS = "gw-test"


@pytest.fixture(scope="module")
def ns_plane(plane: ControlPlane) -> ControlPlane:
    plane.create_namespace(NS)
    return plane


def _route(stable: int, canary: int, mirror: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": [
        {"name": "shop-stable", "port": 80, "weight": stable},
        {"name": "shop-canary", "port": 80, "weight": canary}]}
    if mirror:
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "shop-canary", "port": 80}}}]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop", "namespace": NS},
            "spec": {"parentRefs": [{"name": "cell-gateway"}], "rules": [rule]}}


def _apply(kube: KubeClient, obj: dict[str, Any]) -> dict[str, Any]:
    path = kube.resource(obj["apiVersion"], obj["kind"]).item(NS, obj["metadata"]["name"])
    kube.call("PATCH", path, {"fieldManager": "reconciler", "force": "true"}, obj,
              "application/apply-patch+yaml")
    live = kube.get(path)
    assert live is not None
    return live


def test_httproute_weights_and_mirror_round_trip(ns_plane: ControlPlane) -> None:
    kube = KubeClient(Target(str(ns_plane.kubeconfig), ns_plane.context))
    live = _apply(kube, _route(100, 0, mirror=True))
    rule = live["spec"]["rules"][0]
    assert rule["filters"][0]["type"] == "RequestMirror"
    assert rule["filters"][0]["requestMirror"]["backendRef"]["name"] == "shop-canary"
    for stable, canary in ((90, 10), (50, 50), (0, 100)):
        live = _apply(kube, _route(stable, canary, mirror=False))
        weights = [b["weight"] for b in live["spec"]["rules"][0]["backendRefs"]]
        assert weights == [stable, canary]
        assert "filters" not in live["spec"]["rules"][0]


def test_the_api_server_validates_httproutes(ns_plane: ControlPlane) -> None:
    kube = KubeClient(Target(str(ns_plane.kubeconfig), ns_plane.context))
    bad = _route(100, 0, mirror=False)
    bad["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1  # weights are >= 0
    with pytest.raises(Exception, match="weight"):
        _apply(kube, bad)
