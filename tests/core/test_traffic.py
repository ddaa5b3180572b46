"""The HTTPRoute shapes of a canary or shadowed service (core/traffic.py): weights per
colour, the mirror filter, only the service's own backends touched, idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.traffic import (
    Shape,
    Split,
    coloured_service,
    mirrors,
    routes_to,
    shaped,
    weights,
)

CANARY = Shape(weighted=True, coloured=True)
SHADOW_ONLY = Shape(weighted=False, coloured=True)


def _route(*refs: dict[str, Any], filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": list(refs)}
    if filters:
        rule["filters"] = filters
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop"}, "spec": {"rules": [rule]}}


SHOP = {"name": "shop", "port": 80}


@pytest.mark.parametrize(("split", "shape", "want_weights", "want_mirrors"), [
    (Split("blue"), CANARY, {"shop-blue": 100}, []),
    (Split("blue", "green", 0), CANARY, {"shop-blue": 100, "shop-green": 0}, []),
    (Split("blue", "green", 0, mirror=True), CANARY, {"shop-blue": 100, "shop-green": 0},
     ["shop-green"]),
    (Split("blue", "green", 10), CANARY, {"shop-blue": 90, "shop-green": 10}, []),
    (Split("green", "blue", 50), CANARY, {"shop-green": 50, "shop-blue": 50}, []),
    (Split("blue", "green", 0, mirror=True), SHADOW_ONLY, {}, ["shop-green"]),
])
def test_split(split: Split, shape: Shape, want_weights: dict[str, int],
               want_mirrors: list[str]) -> None:
    out = shaped(_route(SHOP), ["shop"], split, shape)
    assert weights(out, "shop") == want_weights
    assert mirrors(out) == want_mirrors
    if not shape.weighted:  # blueGreen: the switched Service itself stays the backend
        assert out["spec"]["rules"][0]["backendRefs"] == [SHOP]
    # reshaping a shaped route is the same route; reshaping to another split is the same
    # as shaping the template to it
    assert shaped(out, ["shop"], split, shape) == out
    other = Split(split.active)
    assert shaped(out, ["shop"], other, shape) == shaped(_route(SHOP), ["shop"], other, shape)


def test_other_backends_and_filters_are_left_alone() -> None:
    foreign: list[dict[str, Any]] = [
        {"name": "shop", "namespace": "other", "port": 80},     # another namespace
        {"name": "billing", "port": 80},                        # not the service's
        {"name": "shop", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"}]
    header = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": []}}
    theirs = {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "audit"}}}
    route = _route(SHOP, *foreign, filters=[header, theirs])
    out = shaped(route, ["shop"], Split("blue", "green", 10, mirror=True), CANARY)
    refs = out["spec"]["rules"][0]["backendRefs"]
    assert refs[2:] == foreign
    assert [r["name"] for r in refs[:2]] == ["shop-blue", "shop-green"]
    assert out["spec"]["rules"][0]["filters"][:2] == [header, theirs]
    assert mirrors(out) == ["audit", "shop-green"]
    # the abort: weight 0, our mirror gone, theirs kept
    back = shaped(out, ["shop"], Split("blue"), CANARY)
    assert mirrors(back) == ["audit"]
    assert weights(back, "shop") == {"shop-blue": 100}


def test_coloured_service_selects_one_colour() -> None:
    svc: dict[str, Any] = {"kind": "Service", "metadata": {"name": "shop"},
           "spec": {"selector": {"app": "shop"}, "clusterIP": "10.0.0.1",
                    "ports": [{"port": 80}]}}
    out = coloured_service(svc, "green")
    assert out["metadata"]["name"] == "shop-green"
    assert out["spec"]["selector"] == {"app": "shop", "reconciler.dev/colour": "green"}
    assert "clusterIP" not in out["spec"]
    assert svc["metadata"]["name"] == "shop"  # the template is not changed


@pytest.mark.parametrize(("refs", "want"), [
    ([SHOP], True),
    ([{"name": "shop-green", "port": 80}], True),  # already shaped
    ([{"name": "billing", "port": 80}], False),
    ([{"name": "shop", "namespace": "other"}], False),
    ([], False),
])
def test_routes_to_its_own_service(refs: list[dict[str, Any]], want: bool) -> None:
    assert routes_to([_route(*refs)], ["shop"]) is want
