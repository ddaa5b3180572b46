"""Sharded replicas through ``coordination.k8s.io/v1`` Leases.

Owns: one member Lease per replica (``<prefix>-member-<id>``: who is alive) and one
Lease per shard (``<prefix>-shard-<i>``: who runs its cells), all labelled
``reconciler.dev/shards=<prefix>`` in one namespace. Each round a replica renews its
member Lease, lists the Leases, computes which live member should hold each shard
(``core.shards.shard_targets``: the same answer on every replica), acquires or renews
the shards meant for it, keeps renewing the others it holds until their target holds
them, and hands over (releases) a shard whose target member is alive. A replica that
stops renewing loses its Leases after their duration; the others then take its shards
over. Every write carries the Lease's resourceVersion (``LeaseElector``), so two
replicas never both win a shard. A round that fails leaves this replica holding
nothing as far as it knows (it runs nothing until a round succeeds again).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.adapters.errors import AdapterError
from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.adapters.kubernetes.lease import LeaseElector, holder
from reconciler.core.shards import ShardMap, shard_targets

LABEL = "reconciler.dev/shards"
ROLE = "reconciler.dev/shard-role"
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def member_lease(prefix: str, identity: str) -> str:
    """The member Lease's name: a DNS label from the identity plus a hash of it (two
    identities never share a name)."""
    slug = _NOT_DNS.sub("-", identity.lower()).strip("-")[:30] or "replica"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return f"{prefix}-member-{slug}-{digest}"


def shard_lease(prefix: str, index: int) -> str:
    return f"{prefix}-shard-{index}"


class ShardLeases:
    """This replica's view of the shards; also the daemon's ``Leader`` (it reconciles
    while it holds at least one shard)."""

    def __init__(self, namespace: str, prefix: str, identity: str, count: int,
                 lease_seconds: int = 15, kubeconfig: str | None = None,
                 context: str | None = None, client: KubeClient | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.namespace, self.prefix, self.identity = namespace, prefix, identity
        self.count, self.lease_seconds = count, lease_seconds
        self.client = client or KubeClient(Target(kubeconfig, context))
        self.clock = clock

        def elector(name: str, role: str) -> LeaseElector:
            return LeaseElector(namespace, name, identity, lease_seconds=lease_seconds,
                                client=self.client, clock=clock,
                                labels={LABEL: prefix, ROLE: role})

        self.member = elector(member_lease(prefix, identity), "member")
        self.shards = [elector(shard_lease(prefix, i), "shard") for i in range(count)]
        self._map = ShardMap(count)
        self._lock = threading.Lock()

    @property
    def map(self) -> ShardMap:
        """The shard map of the last successful round (nothing held before one)."""
        return self._map

    def _list(self) -> dict[str, dict[str, Any]]:
        data = self.client.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
            {"labelSelector": f"{LABEL}={self.prefix}"})
        items = data.get("items") or []
        return {str(i["metadata"]["name"]): i for i in items if isinstance(i, dict)}

    def round(self) -> ShardMap:
        """Renew, acquire, hand over; the resulting shard map."""
        with self._lock:
            try:
                self._map = self._round()
            except AdapterError:
                self._map = ShardMap(self.count)
                raise
            return self._map

    def _round(self) -> ShardMap:
        if not self.member.try_acquire():
            raise AdapterError(f"member Lease {self.member.name} is held by another "
                               f"replica: is replicaId {self.identity!r} used twice?")
        now = self.clock()
        leases = self._list()
        members = {holder((lease.get("spec") or {}), now) for lease in leases.values()
                   if (lease["metadata"].get("labels") or {}).get(ROLE) == "member"}
        live = sorted({m for m in members if m} | {self.identity})
        targets = shard_targets(self.count, live)
        holders: dict[int, str] = {}
        for i, el in enumerate(self.shards):
            now_held = holder((leases.get(el.name) or {}).get("spec") or {}, now)
            target = targets.get(i)
            if target != self.identity and now_held == self.identity and el.is_leader:
                el.release()  # its target is alive: hand it over
                continue
            if target == self.identity or now_held == self.identity:
                if el.try_acquire():
                    holders[i] = self.identity
                    continue
                now_held = holder((self.client.get(self._path(el.name)) or {})
                                  .get("spec") or {}, self.clock())
            if now_held and now_held != self.identity:
                holders[i] = now_held
        return ShardMap(self.count, holders)

    def _path(self, name: str) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{name}"

    # -- the daemon's Leader -------------------------------------------------------------
    def try_acquire(self) -> bool:
        return bool(self.round().shards_of(self.identity))

    def release(self) -> None:
        """Give every shard and the membership up at once (a graceful shutdown): the
        others take the shards over on their next round, without waiting."""
        with self._lock:
            for el in [*self.shards, self.member]:
                try:
                    el.release()
                except AdapterError:
                    continue  # expires on its own
            self._map = ShardMap(self.count)
