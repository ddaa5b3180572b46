"""StatefulSet health: observedGeneration, ready/updated replicas, update revision.

StatefulSets have no progress deadline: they are Progressing until every replica is
ready and on the update revision (or, with a partitioned RollingUpdate, every replica
at or above the partition is updated). OnDelete sets only wait for readiness.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.health.common import (
    Health,
    count,
    generation_pending,
    spec_of,
    status_of,
)


def _update(obj: Mapping[str, Any], want: int) -> Health | None:
    spec, st = spec_of(obj), status_of(obj)
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return None
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    updated = count(st, "updatedReplicas")
    if updated < want - partition:
        return Health("Progressing", f"{updated} of {want - partition} replicas updated")
    if partition == 0 and st.get("updateRevision") != st.get("currentRevision"):
        return Health("Progressing", "waiting for the update revision to become current")
    return None


def assess(obj: Mapping[str, Any]) -> Health:
    """The health of a StatefulSet."""
    pending = generation_pending(obj)
    if pending:
        return pending
    want = int(spec_of(obj).get("replicas", 1))
    ready = count(status_of(obj), "readyReplicas")
    if ready < want:
        return Health("Progressing", f"{ready} of {want} replicas ready")
    return _update(obj, want) or Health("Healthy", "all replicas ready and updated")
