"""Leader election through a ``coordination.k8s.io/v1`` Lease.

Owns: acquiring, renewing, taking over an expired Lease and releasing it, with the
Lease's resourceVersion as the guard so two contenders can never both win (the loser
gets a 409 and stays a follower). Errors are the adapter's own (403 → permanent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.adapters.errors import TemporaryError
from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.adapters.kubernetes.errors import NotFound

_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _time(now: datetime) -> str:
    return now.astimezone(UTC).strftime(_FMT)


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in (_FMT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def expired(spec: Mapping[str, Any], now: datetime, default_seconds: int = 15) -> bool:
    """True when a Lease's holder stopped renewing it for its duration (or never did)."""
    renew = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or default_seconds)
    return renew is None or now > renew + timedelta(seconds=duration)


def holder(spec: Mapping[str, Any], now: datetime) -> str | None:
    """The Lease's live holder: None when released or expired."""
    who = spec.get("holderIdentity")
    return str(who) if who and not expired(spec, now) else None


class LeaseElector:
    """One contender for the Lease ``namespace/name``."""

    def __init__(self, namespace: str, name: str, identity: str,
                 kubeconfig: str | None = None, context: str | None = None,
                 lease_seconds: int = 15, client: KubeClient | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 labels: Mapping[str, str] | None = None) -> None:
        self.namespace, self.name, self.identity = namespace, name, identity
        self.labels = dict(labels or {})
        self.lease_seconds = lease_seconds
        self.client = client or KubeClient(Target(kubeconfig, context))
        self.clock = clock
        self.is_leader = False

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def _spec(self, now: datetime, transitions: int, acquired: str | None) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": acquired or _time(now), "renewTime": _time(now),
                "leaseTransitions": transitions}

    def _create(self, now: datetime) -> bool:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             **({"labels": self.labels} if self.labels else {})},
                "spec": self._spec(now, 0, None)}
        try:
            self.client.request("POST", self._path.rsplit("/", 1)[0], body=body)
        except TemporaryError:  # 409: someone created it first
            return False
        return True

    def _expired(self, spec: dict[str, Any], now: datetime) -> bool:
        return expired(spec, now, self.lease_seconds)

    def try_acquire(self) -> bool:
        """Acquire, renew or take over an expired lease; True while this one leads."""
        now = self.clock()
        lease = self.client.get(self._path)
        if lease is None:
            self.is_leader = self._create(now)
            return self.is_leader
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity and not self._expired(spec, now):
            self.is_leader = False
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity
                                                                else 1)
        lease["spec"] = self._spec(now, transitions,
                                   spec.get("acquireTime") if holder == self.identity else None)
        try:
            self.client.request("PUT", self._path, body=lease)  # carries resourceVersion
        except TemporaryError:  # 409: changed under us; stay a follower this round
            self.is_leader = False
            return False
        self.is_leader = True
        return True

    def release(self) -> None:
        """Give the lease up at once so a follower takes over without waiting."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = self.client.get(self._path)
        except NotFound:
            return
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["holderIdentity"] = None
        lease["spec"]["renewTime"] = None
        lease["spec"]["acquireTime"] = None
        self.client.request("PUT", self._path, body=lease)
