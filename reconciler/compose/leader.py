"""Leadership as the configuration asks for it: a file lock (default), a Kubernetes
Lease, or none."""

from __future__ import annotations

import socket
from pathlib import Path

from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.service import Always, Leader


def make_leader(cfg: DaemonConfig) -> Leader:
    """The leader election ``cfg.leader`` names."""
    kind = cfg.leader.kind
    if kind == "none":
        return Always()
    if kind == "lease":
        from reconciler.adapters.kubernetes.lease import LeaseElector

        return LeaseElector(
            namespace=cfg.leader.namespace, name=cfg.leader.name,
            identity=f"{socket.gethostname()}-{id(cfg)}", kubeconfig=cfg.leader.kubeconfig,
            context=cfg.leader.context, lease_seconds=cfg.leader.lease_seconds)
    from reconciler.adapters.fs.lock import FileLock

    Path(cfg.state_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(Path(cfg.state_dir) / "leader.lock")
