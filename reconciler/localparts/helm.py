"""Where the manifest tools are: `helm` (hack/helm.sh builds it), the kubectl whose
`kubectl kustomize` renders Kustomize directories (hack/k8s-testenv/build.sh), and the
batch renderers hack/helm.sh builds beside them (`helm-batch`, `kustomize-batch`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reconciler.localparts.k8s import K8sUnavailable, find_binary

#: Must match hack/helm.sh.
HELM_VERSION = os.environ.get("RECONCILER_HELM_VERSION", "v3.22.0")
#: The Kustomize the local kubectl embeds (hack/helm.sh builds kustomize-batch from it).
KUSTOMIZE_VERSION = "v5.8.1"


def find_helm() -> Path | None:
    """``HELM_BINARY``, then the build cache, then ``helm`` on PATH; None when absent."""
    root = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    env = os.environ.get("HELM_BINARY")
    for cand in (env, str(root / "helm" / HELM_VERSION / "helm"), shutil.which("helm")):
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    return None


def find_kubectl() -> Path | None:
    """The kubectl of the local control plane's build, then ``kubectl`` on PATH."""
    try:
        return find_binary("kubectl")
    except K8sUnavailable:
        found = shutil.which("kubectl")
        return Path(found) if found else None


def find_helm_batch() -> Path | None:
    """``HELM_BATCH_BINARY``, then ``helm-batch`` in the build cache (hack/helm.sh builds
    it beside helm from hack/helm-batch); None when absent."""
    return _built("HELM_BATCH_BINARY", f"helm/{HELM_VERSION}/helm-batch")


def find_kustomize_batch() -> Path | None:
    """``KUSTOMIZE_BATCH_BINARY``, then ``kustomize-batch`` in the build cache (hack/helm.sh
    builds it from hack/kustomize-batch); None when absent."""
    return _built("KUSTOMIZE_BATCH_BINARY", f"kustomize/{KUSTOMIZE_VERSION}/kustomize-batch")


def _built(variable: str, cached: str) -> Path | None:
    """``$variable``, then ``cached`` under the build cache, when executable."""
    root = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    for cand in (os.environ.get(variable), str(root / cached)):
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    return None
