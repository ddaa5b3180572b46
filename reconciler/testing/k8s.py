"""pytest helpers over the local Kubernetes control plane (test code only).

Owns: turning a missing control plane into ``pytest.fail`` under CI=true (a skip
elsewhere) and the session fixture the integration and e2e suites share.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Literal

from reconciler.localparts.k8s import ControlPlane, K8sUnavailable, start_control_plane


def control_plane_or_skip(name: str = "cluster", nodes: int = 2) -> ControlPlane:
    """Start a control plane for a test: ``pytest.fail`` under CI=true, else skip."""
    import pytest

    try:
        return start_control_plane(name, nodes)
    except K8sUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"local Kubernetes control plane unavailable: {e}")
        pytest.skip(f"local Kubernetes control plane unavailable: {e}")
    raise AssertionError("unreachable")


def control_plane_fixture(name: str = "cluster", nodes: int = 2,
                          scope: Literal["session", "module"] = "session") -> Any:
    """A pytest fixture (default session scope) yielding a running ``ControlPlane``.

    Usage in a conftest: ``k8s = control_plane_fixture("cluster-a")``.
    """
    import pytest

    @pytest.fixture(scope=scope)
    def _fixture() -> Iterator[ControlPlane]:
        plane = control_plane_or_skip(name, nodes)
        try:
            yield plane
        finally:
            plane.stop()

    return _fixture
