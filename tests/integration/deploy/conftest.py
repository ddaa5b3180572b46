"""A local control plane of its own for the deployment tests (session scope)."""

from __future__ import annotations

from reconciler.testing.k8s import control_plane_fixture

deploy_cluster = control_plane_fixture("deploy", nodes=1)
