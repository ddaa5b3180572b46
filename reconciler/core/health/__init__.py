"""Health of live Kubernetes objects: one pure rule per kind, and how they combine.

Owns: turning an object's ``metadata`` / ``spec`` / ``status`` (as the API returns it,
plain JSON) into one of ``Healthy``, ``Progressing``, ``Degraded``, ``Missing``,
``Unknown`` with a message. Each workload kind has its own module; kinds without a
rule are Healthy once they exist. Pure: objects are handed in, nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.core.health import daemonset, deployment, job, statefulset
from reconciler.core.health.common import Health

__all__ = ["RULES", "Health", "assess", "combine"]

Rule = Callable[[Mapping[str, Any]], Health]

RULES: dict[str, Rule] = {
    "Deployment": deployment.assess,
    "StatefulSet": statefulset.assess,
    "DaemonSet": daemonset.assess,
    "Job": job.assess,
}

#: Worst first: a service's health is the worst of its objects'.
SEVERITY = ("Degraded", "Missing", "Progressing", "Unknown", "Healthy")


def assess(obj: Mapping[str, Any] | None) -> Health:
    """The health of one live object (None: the object does not exist)."""
    if obj is None:
        return Health("Missing", "object not found")
    rule = RULES.get(str(obj.get("kind", "")))
    if rule is None:
        return Health("Healthy", "exists")
    return rule(obj)


def combine(named: Iterable[tuple[str, Health]]) -> Health:
    """The worst health of several objects, its message prefixed by the object's name."""
    worst: tuple[str, Health] | None = None
    for name, h in named:
        if worst is None or SEVERITY.index(h.status) < SEVERITY.index(worst[1].status):
            worst = (name, h)
    if worst is None:
        return Health("Missing", "no objects")
    name, h = worst
    return Health(h.status, f"{name}: {h.message}" if h.status != "Healthy" else "")
