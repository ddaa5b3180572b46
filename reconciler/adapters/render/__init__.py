"""Rendering services written as Helm charts or Kustomize directories with the real
tools (`helm template`, `kubectl kustomize`), contained and cached."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
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


#: How many binaries' versions the cache file remembers.
_MAX_VERSIONS = 32


def _identity(binary: Path) -> str | None:
    """What changes whenever the file at ``binary`` does (path, inode, size, times)."""
    try:
        st = binary.resolve().stat()
    except OSError:
        return None
    return f"{binary.resolve()}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"


def _remembered(cache_dir: Path | None, binary: Path | None, key: str,
                ask: Callable[[], str]) -> str:
    """``ask()`` — a binary's version, which costs a process start (~0.5 s for kubectl
    on a busy machine) — remembered in ``cache_dir`` for as long as the file is the same
    file; asked again whenever it is not, or the cache cannot be read."""
    ident = _identity(binary) if binary is not None and cache_dir is not None else None
    if ident is None or cache_dir is None:
        return ask()
    where = cache_dir / "tool-versions.json"
    try:
        known = json.loads(where.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    entry = f"{key}\0{ident}"
    found = known.get(entry)
    if isinstance(found, str) and found:
        return found
    version = ask()
    if version:
        kept = {k: v for k, v in known.items() if isinstance(v, str)}
        kept[entry] = version
        _write_json(where, dict(list(kept.items())[-_MAX_VERSIONS:]))
    return version


def _write_json(where: Path, value: object) -> None:
    with contextlib.suppress(OSError):
        where.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where.parent, prefix=".versions-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(value, f)
            os.replace(tmp, where)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


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


def _batch_version(batch: Path) -> str:
    """The tool version a batch renderer was built from ('' when it cannot say)."""
    try:
        out = subprocess.run([str(batch), "version"], capture_output=True, text=True,
                             timeout=30, env={"HOME": "/nonexistent", "PATH": "/nonexistent"},
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _batch_helm(helm_batch: Path | None, helm_version: str,
                cache_dir: Path | None = None) -> Path | None:
    """``helm-batch`` when it is built from the same Helm as ``helm`` (else None: every
    Helm render is its own `helm template`)."""
    if helm_batch is None or not helm_version:
        return None
    built_from = _remembered(cache_dir, helm_batch, "helm-batch",
                             lambda: _batch_version(helm_batch))
    return helm_batch if built_from and helm_version.split("+")[0] == built_from else None


def _batch_kustomize(kustomize_batch: Path | None, kubectl_version: str,
                     cache_dir: Path | None = None) -> Path | None:
    """``kustomize-batch`` when it is built from the Kustomize ``kubectl`` embeds (its
    `version --client` names it), else None."""
    if kustomize_batch is None or not kubectl_version:
        return None
    built_from = _remembered(cache_dir, kustomize_batch, "kustomize-batch",
                             lambda: _batch_version(kustomize_batch))
    return kustomize_batch if built_from and \
        f"Kustomize Version: {built_from}" in kubectl_version else None


def make_renderers(helm: Path | None, kubectl: Path | None, cache_dir: Path | None,
                   limits: Limits | None = None, sandbox: bool = True,
                   workers: int | None = None, helm_batch: Path | None = None,
                   kustomize_batch: Path | None = None) -> ToolRenderers:
    """The renderer of the given binaries (None: that tool is unavailable), its disk
    cache under ``cache_dir`` (None: memory only), in bubblewrap (no network) when
    ``sandbox`` and bubblewrap can run here; ``helm_batch`` renders many cells of a
    chart per process when it is built from the same Helm version as ``helm``, and
    ``kustomize_batch`` many Kustomize cells when built from the Kustomize of
    ``kubectl``. The binaries' versions are remembered in ``cache_dir`` while the files
    are unchanged."""
    bwrap = shutil.which("bwrap") if sandbox else None
    if bwrap is not None and not _bwrap_works(bwrap):
        bwrap = None
    versions = {
        "helm": _remembered(cache_dir, helm, "helm", lambda: tool_version(helm, "helm")),
        "kustomize": _remembered(cache_dir, kubectl, "kubectl",
                                 lambda: tool_version(kubectl, "kubectl"))}
    r = ToolRenderers(Binaries(helm, kubectl, bwrap,
                               _batch_helm(helm_batch, versions["helm"], cache_dir),
                               _batch_kustomize(kustomize_batch, versions["kustomize"],
                                                cache_dir)),
                      versions,
                      DiskCache(cache_dir) if cache_dir is not None else None,
                      limits or Limits())
    if workers is not None:
        r.workers = workers
    return r
