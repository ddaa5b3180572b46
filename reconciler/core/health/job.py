"""Job health: Complete (or SuccessCriteriaMet) is Healthy, Failed is Degraded.

A running or suspended Job is Progressing; the failure message is the condition's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.health.common import Health, condition, count, spec_of, status_of


def _true(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    c = condition(obj, kind)
    return c if c and c.get("status") == "True" else None


def assess(obj: Mapping[str, Any]) -> Health:
    """The health of a Job."""
    failed = _true(obj, "Failed") or _true(obj, "FailureTarget")
    if failed:
        return Health("Degraded", f"{failed.get('reason', 'Failed')}: "
                                  f"{failed.get('message') or 'job failed'}")
    if _true(obj, "Complete") or _true(obj, "SuccessCriteriaMet"):
        return Health("Healthy", "job complete")
    if spec_of(obj).get("suspend"):
        return Health("Progressing", "job suspended")
    st = status_of(obj)
    counts = ", ".join(f"{count(st, k)} {k}" for k in ("active", "succeeded", "failed"))
    return Health("Progressing", counts)
