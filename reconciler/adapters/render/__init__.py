"""Rendering services written as Helm charts or Kustomize directories with the real
tools (`helm template`, `kubectl kustomize`), contained and cached."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from reconciler.adapters.render.renderer import DiskCache, ToolRenderers
from reconciler.adapters.render.run import Binaries, Limits

__all__ = ["Binaries", "DiskCache", "Limits", "ToolRenderers", "make_renderers",
           "tool_version"]


def tool_version(binary: Path | None, tool: str) -> str:
    """The tool's version as it reports it ('' when it cannot say)."""
    if binary is None:
        return ""
    args = ["version", "--short"] if tool == "helm" else ["version", "--client"]
    try:
        out = subprocess.run([str(binary), *args], capture_output=True, text=True,
                             timeout=30, env={"HOME": "/nonexistent", "PATH": "/nonexistent",
                                              "KUBECONFIG": "/dev/null"}, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return " ".join(out.stdout.split())


def _bwrap_works(binary: str) -> bool:
    try:
        out = subprocess.run([binary, "--unshare-all", "--unshare-user", "--die-with-parent",
                              "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                              "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                              "--proc", "/proc", "--dev", "/dev", "/bin/sh", "-c", "true"],
                             capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def _batch_helm(helm_batch: Path | None, helm_version: str) -> Path | None:
    """``helm-batch`` when it is built from the same Helm as ``helm`` (else None: every
    Helm render is its own `helm template`)."""
    if helm_batch is None or not helm_version:
        return None
    try:
        out = subprocess.run([str(helm_batch), "version"], capture_output=True, text=True,
                             timeout=30, env={"HOME": "/nonexistent", "PATH": "/nonexistent"},
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    built_from = out.stdout.strip()
    return helm_batch if out.returncode == 0 and built_from and \
        helm_version.split("+")[0] == built_from else None


def make_renderers(helm: Path | None, kubectl: Path | None, cache_dir: Path | None,
                   limits: Limits | None = None, sandbox: bool = True,
                   workers: int | None = None,
                   helm_batch: Path | None = None) -> ToolRenderers:
    """The renderer of the given binaries (None: that tool is unavailable), its disk
    cache under ``cache_dir`` (None: memory only), in bubblewrap (no network) when
    ``sandbox`` and bubblewrap can run here; ``helm_batch`` renders many cells of a
    chart per process when it is built from the same Helm version as ``helm``."""
    bwrap = shutil.which("bwrap") if sandbox else None
    if bwrap is not None and not _bwrap_works(bwrap):
        bwrap = None
    versions = {"helm": tool_version(helm, "helm"), "kustomize": tool_version(kubectl, "kubectl")}
    r = ToolRenderers(Binaries(helm, kubectl, bwrap, _batch_helm(helm_batch, versions["helm"])),
                      versions,
                      DiskCache(cache_dir) if cache_dir is not None else None,
                      limits or Limits())
    if workers is not None:
        r.workers = workers
    return r
