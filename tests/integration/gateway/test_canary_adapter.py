"""The canary/shadow adapter (adapters/kubernetes/bluegreen.py with core/traffic.py) on the
real control plane with the Gateway API CRDs: a service's own HTTPRoute is split between
its colours' Services — weight 0 when the new colour is deployed, a RequestMirror for the
shadow, 10 → 50 → the switch at 100 — and an abort sets the weight back to 0 and removes
the canary (Deployment and Service) in one apply; the API server accepts every shape."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.kubernetes import bluegreen
from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.core.model import Cell, KubernetesTarget, SourceRef
from reconciler.core.traffic import Shape, mirrors, weights
from reconciler.localparts.k8s import ControlPlane

pytestmark = pytest.mark.k8s
CANARY = Shape(weighted=True, coloured=True)
SHADOWED_BLUE_GREEN = Shape(weighted=False, coloured=True)


def _objs(ns: str, version: str) -> list[dict[str, Any]]:
    labels = {"app": "shop"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "shop", "namespace": ns},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                      {"name": "shop", "image": f"registry.local/shop:{version}"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "shop", "namespace": ns},
         "spec": {"parentRefs": [{"name": "cell-gateway"}],
                  "rules": [{"backendRefs": [{"name": "shop", "port": 80}]}]}},
    ]


@pytest.fixture
def where(plane: ControlPlane) -> Iterator[tuple[KubeClient, Cell, ControlPlane]]:
    ns = f"canary-{uuid.uuid4().hex[:6]}"
    plane.create_namespace(ns)
    c = Cell("c1", "canary", "r1", "r1a", 1.0, KubernetesTarget(
        namespace=ns, context=plane.context, kubeconfig=str(plane.kubeconfig)), {}, (),
        SourceRef("cells/c1.yaml"))
    yield KubeClient(Target(str(plane.kubeconfig), plane.context)), c, plane


def _route(plane: ControlPlane, ns: str) -> dict[str, Any]:
    got: dict[str, Any] = plane.request(
        "GET", f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/shop")
    return got


def _exists(plane: ControlPlane, path: str) -> bool:
    try:
        plane.request("GET", path)
        return True
    except Exception:
        return False


def test_canary_weights_mirror_switch_and_abort(
        where: tuple[KubeClient, Cell, ControlPlane]) -> None:
    kube, c, plane = where
    ns = c.kubernetes.namespace
    bluegreen.converge(kube, c, "shop", "1.0.0", _objs(ns, "1.0.0"), CANARY)
    bluegreen.switch(kube, c, "shop", "1.0.0", CANARY)  # the first install serves
    assert weights(_route(plane, ns), "shop") == {"shop-blue": 100}
    # 1.1.0 as green beside blue: no traffic yet
    bluegreen.converge(kube, c, "shop", "1.1.0", _objs(ns, "1.1.0"), CANARY)
    assert weights(_route(plane, ns), "shop") == {"shop-blue": 100, "shop-green": 0}
    assert _exists(plane, f"/api/v1/namespaces/{ns}/services/shop-green")
    bluegreen.shift(kube, c, "shop", "1.1.0", 0, True, "2026-01-01T00:00:00+00:00", CANARY)
    assert mirrors(_route(plane, ns)) == ["shop-green"]
    for w in (10, 50):
        bluegreen.shift(kube, c, "shop", "1.1.0", w, False, "2026-01-01T00:01:00+00:00",
                        CANARY)
        route = _route(plane, ns)
        assert weights(route, "shop") == {"shop-blue": 100 - w, "shop-green": w}
        assert mirrors(route) == []
    # the abort: converge on the serving version drops the canary
    bluegreen.converge(kube, c, "shop", "1.0.0", _objs(ns, "1.0.0"), CANARY)
    assert weights(_route(plane, ns), "shop") == {"shop-blue": 100}
    assert not _exists(plane, f"/api/v1/namespaces/{ns}/services/shop-green")
    assert not _exists(plane, f"/apis/apps/v1/namespaces/{ns}/deployments/shop-green")
    # the next try goes all the way: the switch sends 100% to green, blue kept at 0
    bluegreen.converge(kube, c, "shop", "1.1.0", _objs(ns, "1.1.0"), CANARY)
    bluegreen.shift(kube, c, "shop", "1.1.0", 50, False, "2026-01-01T00:02:00+00:00", CANARY)
    bluegreen.switch(kube, c, "shop", "1.1.0", CANARY)
    assert weights(_route(plane, ns), "shop") == {"shop-green": 100, "shop-blue": 0}
    svc = plane.request("GET", f"/api/v1/namespaces/{ns}/services/shop")
    assert svc["spec"]["selector"]["reconciler.dev/colour"] == "green"


def test_blue_green_shadow_mirrors_then_switches(
        where: tuple[KubeClient, Cell, ControlPlane]) -> None:
    kube, c, plane = where
    ns = c.kubernetes.namespace
    shape = SHADOWED_BLUE_GREEN
    bluegreen.converge(kube, c, "shop", "1.0.0", _objs(ns, "1.0.0"), shape)
    bluegreen.switch(kube, c, "shop", "1.0.0", shape)
    bluegreen.converge(kube, c, "shop", "1.1.0", _objs(ns, "1.1.0"), shape)
    bluegreen.shift(kube, c, "shop", "1.1.0", 0, True, "2026-01-01T00:00:00+00:00", shape)
    route = _route(plane, ns)
    assert mirrors(route) == ["shop-green"]
    # the backend stays the switched Service itself
    assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == ["shop"]
    bluegreen.switch(kube, c, "shop", "1.1.0", shape)
    assert mirrors(_route(plane, ns)) == []
    svc = plane.request("GET", f"/api/v1/namespaces/{ns}/services/shop")
    assert svc["spec"]["selector"]["reconciler.dev/colour"] == "green"


def test_a_canary_without_a_route_to_its_service_is_refused(
        where: tuple[KubeClient, Cell, ControlPlane]) -> None:
    kube, c, plane = where
    ns = c.kubernetes.namespace
    objs = _objs(ns, "1.0.0")
    objs[2]["spec"]["rules"][0]["backendRefs"] = [{"name": "billing", "port": 80}]
    with pytest.raises(PermanentError, match="no HTTPRoute"):
        bluegreen.converge(kube, c, "shop", "1.0.0", objs, CANARY)
    assert not _exists(plane, f"/apis/apps/v1/namespaces/{ns}/deployments/shop-blue")


def test_a_blue_green_service_becoming_a_canary_keeps_its_serving_backend(
        where: tuple[KubeClient, Cell, ControlPlane]) -> None:
    kube, c, plane = where
    ns = c.kubernetes.namespace
    bluegreen.converge(kube, c, "shop", "1.0.0", _objs(ns, "1.0.0"))  # blueGreen
    bluegreen.switch(kube, c, "shop", "1.0.0")
    assert not _exists(plane, f"/api/v1/namespaces/{ns}/services/shop-blue")
    bluegreen.converge(kube, c, "shop", "1.1.0", _objs(ns, "1.1.0"), CANARY)  # now canary
    assert weights(_route(plane, ns), "shop") == {"shop-blue": 100, "shop-green": 0}
    for colour in ("blue", "green"):  # both backends the route names exist
        assert _exists(plane, f"/api/v1/namespaces/{ns}/services/shop-{colour}")
