"""Deployment health: observedGeneration, replica counts, the Progressing condition.

Degraded when the Progressing condition says ProgressDeadlineExceeded (the rollout
stalled past ``progressDeadlineSeconds``) or ReplicaFailure is True (but for a service
account a new namespace does not have yet: Progressing); Progressing while
the controller catches up, new replicas are created or become available, or old
replicas wait to terminate; Healthy otherwise. A paused Deployment is Progressing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.health.common import (
    Health,
    condition,
    count,
    generation_pending,
    spec_of,
    status_of,
)


def _degraded(obj: Mapping[str, Any]) -> Health | None:
    prog = condition(obj, "Progressing")
    if prog and prog.get("reason") == "ProgressDeadlineExceeded":
        return Health("Degraded", prog.get("message") or "progress deadline exceeded")
    failure = condition(obj, "ReplicaFailure")
    if failure and failure.get("status") == "True":
        message = failure.get("message") or "replica failure"
        if _TRANSIENT_SA in message:  # a new namespace's account comes moments later
            return Health("Progressing", message)
        return Health("Degraded", message)
    return None


#: A pod refused only because the namespace's service account does not exist yet: the
#: service account controller creates ``default`` shortly after the namespace (seconds
#: later on a loaded control plane — seen at 1,000 new cells). The ReplicaSet retries;
#: a real lasting failure still ends in ProgressDeadlineExceeded.
_TRANSIENT_SA = "error looking up service account"


def _rollout(obj: Mapping[str, Any]) -> Health | None:
    spec, st = spec_of(obj), status_of(obj)
    want = int(spec.get("replicas", 1))
    updated, total = count(st, "updatedReplicas"), count(st, "replicas")
    available = count(st, "availableReplicas")
    if updated < want:
        return Health("Progressing", f"{updated} of {want} replicas updated")
    if total > updated:
        return Health("Progressing", f"{total - updated} old replicas pending termination")
    if available < updated:
        return Health("Progressing", f"{available} of {updated} updated replicas available")
    return None


def assess(obj: Mapping[str, Any]) -> Health:
    """The health of a Deployment."""
    pending = generation_pending(obj)
    if pending:
        return pending
    degraded = _degraded(obj)
    if degraded:
        return degraded
    if spec_of(obj).get("paused"):
        return Health("Progressing", "rollout paused")
    return _rollout(obj) or Health("Healthy", "all replicas updated and available")
