"""A local control plane with the Gateway API CRDs (hack/gateway-api.sh), shared by the
gateway tests of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from reconciler.localparts.gatewayapi import GatewayApiUnavailable, install_crds
from reconciler.localparts.k8s import ControlPlane
from reconciler.testing.k8s import control_plane_fixture

gateway_cluster = control_plane_fixture("gateway")


@pytest.fixture(scope="session")
def plane(gateway_cluster: ControlPlane) -> Iterator[ControlPlane]:
    try:
        install_crds(gateway_cluster)
    except GatewayApiUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(str(e))
        pytest.skip(str(e))
    yield gateway_cluster
