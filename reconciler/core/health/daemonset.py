"""DaemonSet health: observedGeneration, updated / available pods per scheduled node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.health.common import Health, count, generation_pending, status_of


def assess(obj: Mapping[str, Any]) -> Health:
    """The health of a DaemonSet."""
    pending = generation_pending(obj)
    if pending:
        return pending
    st = status_of(obj)
    want = count(st, "desiredNumberScheduled")
    updated = count(st, "updatedNumberScheduled")
    available = count(st, "numberAvailable")
    if updated < want:
        return Health("Progressing", f"{updated} of {want} pods updated")
    if available < want:
        return Health("Progressing", f"{available} of {want} pods available")
    return Health("Healthy", "all pods updated and available")
