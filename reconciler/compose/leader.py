"""Leadership as the configuration asks for it: a file lock (default), a Kubernetes
Lease, none, or (``shards:``) the shard Leases of several replicas."""

from __future__ import annotations

import socket
from pathlib import Path

from reconciler.adapters.kubernetes.shardleases import ShardLeases
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.service import Always, Leader


def make_shards(cfg: DaemonConfig) -> ShardLeases | None:
    """The shard Leases ``cfg.shards`` asks for (None: one replica)."""
    s = cfg.shards
    if s is None:
        return None
    return ShardLeases(s.namespace, s.name, s.replica_id, s.count, s.lease_seconds,
                       kubeconfig=s.kubeconfig, context=s.context)


def make_leader(cfg: DaemonConfig, shards: ShardLeases | None = None) -> Leader:
    """The leader election ``cfg.leader`` names (``shards`` when sharded)."""
    if shards is not None:
        return shards
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
