"""The Gateway API CRDs (standard channel) on a local control plane, for tests and demos.

Owns: finding the CRD manifest ``hack/gateway-api.sh`` caches from the Go module
``sigs.k8s.io/gateway-api`` (``~/.cache/reconciler/gateway-api/<version>/standard.yaml``)
and applying it to a ``ControlPlane`` (server-side: the CRDs are too large for a
client-side apply's annotation), waiting until the API server serves HTTPRoutes.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.localparts.k8s import ControlPlane

#: The module version hack/gateway-api.sh downloads (go-partial.tsv: accepted by Go 1.26).
VERSION = os.environ.get("GATEWAY_API_VERSION", "v1.6.3")


class GatewayApiUnavailable(RuntimeError):
    """The CRD manifest is not cached: run hack/gateway-api.sh."""


def crds_manifest() -> Path:
    """The cached standard-channel CRD manifest, or GatewayApiUnavailable."""
    root = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    path = root / "gateway-api" / VERSION / "standard.yaml"
    if not path.is_file() or path.stat().st_size == 0:
        raise GatewayApiUnavailable(f"{path} is missing: run hack/gateway-api.sh")
    return path


def install_crds(plane: ControlPlane) -> None:
    """Apply the standard CRDs to ``plane`` and wait until HTTPRoutes are served."""
    manifest = crds_manifest()
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                  "crd/httproutes.gateway.networking.k8s.io",
                  "crd/gateways.gateway.networking.k8s.io")
