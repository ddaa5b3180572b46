"""Sharded replicas' Leases on a real API server: a replica alone holds every shard; a
second one joining gets its share handed over (never both holding one shard); both
derive the same cell owners; a replica that stops renewing loses its shards to the
other after the Lease duration; a graceful release frees everything at once."""

from __future__ import annotations

import time
import uuid

import pytest

from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.adapters.kubernetes.shardleases import LABEL, ShardLeases
from reconciler.localparts.k8s import ControlPlane

pytestmark = pytest.mark.k8s
CELLS = [f"cell-{i:03d}" for i in range(40)]
LEASE = 3


def _replica(plane: ControlPlane, ns: str, identity: str) -> ShardLeases:
    return ShardLeases(ns, "rec", identity, count=4, lease_seconds=LEASE,
                       client=KubeClient(Target(str(plane.kubeconfig))))


def _holders(plane: ControlPlane, ns: str) -> dict[str, str | None]:
    leases = plane.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
                                  f"?labelSelector={LABEL}=rec")
    return {i["metadata"]["name"]: i["spec"].get("holderIdentity") for i in leases["items"]}


def test_shards_join_hand_over_take_over_release(cluster_a: ControlPlane) -> None:
    ns = f"shards-{uuid.uuid4().hex[:6]}"
    cluster_a.create_namespace(ns)
    a, b = _replica(cluster_a, ns, "replica-a"), _replica(cluster_a, ns, "replica-b")
    assert a.round().shards_of("replica-a") == (0, 1, 2, 3)
    first = b.round()  # b's share is still a's: nothing taken from a live holder
    assert first.shards_of("replica-b") == () and first.holders == a.map.holders
    a.round()  # a sees b alive and hands b's share over
    assert len(a.map.shards_of("replica-a")) == 2
    b.round()
    a.round()
    assert sorted(a.map.shards_of("replica-a") + b.map.shards_of("replica-b")) == [0, 1, 2, 3]
    assert a.map == b.map and a.map.leader is not None
    owners = a.map.owners(CELLS)
    assert owners == b.map.owners(CELLS) and set(owners.values()) == {"replica-a",
                                                                       "replica-b"}
    held = _holders(cluster_a, ns)
    assert [v for k, v in held.items() if "-shard-" in k].count("replica-b") == 2
    time.sleep(LEASE + 1)  # b stops renewing (killed): its Leases expire
    assert a.round().shards_of("replica-a") == (0, 1, 2, 3)
    assert set(a.map.owners(CELLS).values()) == {"replica-a"}
    assert b.round().shards_of("replica-b") == ()  # back: a hands over on its next round
    a.round()
    assert len(b.round().shards_of("replica-b")) == 2
    a.release()
    b.release()
    assert set(_holders(cluster_a, ns).values()) == {None}
