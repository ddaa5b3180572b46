"""Session-scoped local control planes: ``cluster_a`` and ``cluster_b`` (a second cluster).

Both come from ``reconciler.testing.k8s.control_plane_fixture``: they fail under
CI=true and skip with the reason elsewhere when the binaries are missing.
"""

from __future__ import annotations

from reconciler.testing.k8s import control_plane_fixture

cluster_a = control_plane_fixture("cluster-a")
cluster_b = control_plane_fixture("cluster-b")
