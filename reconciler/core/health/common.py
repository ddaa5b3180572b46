"""Shared pieces of the per-kind health rules: the Health value and status readers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Health:
    """One health verdict: a state from ``reconciler.core.live.HEALTH_STATES`` and why."""

    status: str
    message: str = ""


def status_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's ``status`` (empty when absent)."""
    return obj.get("status") or {}


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object's ``spec`` (empty when absent)."""
    return obj.get("spec") or {}


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The status condition of type ``kind``, if any."""
    for c in status_of(obj).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def generation_pending(obj: Mapping[str, Any]) -> Health | None:
    """Progressing while the controller has not observed the latest generation."""
    gen = (obj.get("metadata") or {}).get("generation")
    seen = status_of(obj).get("observedGeneration")
    if gen is not None and (seen is None or seen < gen):
        return Health("Progressing", f"waiting for the controller to observe generation {gen}")
    return None


def count(status: Mapping[str, Any], key: str) -> int:
    """An integer status field, 0 when absent."""
    return int(status.get(key) or 0)
