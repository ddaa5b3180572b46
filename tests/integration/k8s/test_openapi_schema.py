"""The stored Kubernetes API schema (reconciler/schemas/kubernetes.json) is what its
command makes from the local control plane's /openapi/v3 today: regenerate it with
``python -m reconciler.localparts.openapi`` when the Kubernetes version changes."""

from __future__ import annotations

import pytest

from reconciler.core import kubeschema
from reconciler.localparts.k8s import ControlPlane
from reconciler.localparts.openapi import OUT, fetch, render, trimmed

pytestmark = pytest.mark.k8s


def test_the_stored_schema_is_the_control_plane_s(cluster_a: ControlPlane) -> None:
    docs, version = fetch(cluster_a.request)
    assert version == kubeschema.version()
    assert render(trimmed(docs, version)) == OUT.read_text(), (
        "reconciler/schemas/kubernetes.json is stale: python -m reconciler.localparts.openapi")
