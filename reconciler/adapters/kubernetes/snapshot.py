"""Reading live state: one service in one cell, or the whole fleet, as ServiceLive.

Owns: listing a service's objects by label selector (per kind recorded in the
inventory, in the cell namespace), judging their health with ``core.health``, and
reporting drift against the recorded inventory. ``read_fleet`` is what
``reconciler snapshot REPO -o json`` calls. A cluster that cannot be reached raises
TemporaryError: an unknown state is never reported as "not deployed".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.adapters.kubernetes.client import ClientCache, KubeClient
from reconciler.adapters.kubernetes.drift import object_drift
from reconciler.adapters.kubernetes.inventory import Inventory, read_inventory
from reconciler.adapters.kubernetes.objects import Ref, ref_of, selector
from reconciler.core.health import assess, combine
from reconciler.core.live import Drift, ServiceLive
from reconciler.core.model import Cell, DesiredState
from reconciler.core.versions import Version


def list_live(kube: KubeClient, refs: Iterable[Ref], cell: str,
              service: str) -> dict[Ref, dict[str, Any]]:
    """The live objects among ``refs``, found by label selector (one list per kind)."""
    wanted = set(refs)
    groups = {(r.api_version, r.kind, r.namespace) for r in wanted}
    out: dict[Ref, dict[str, Any]] = {}
    for api_version, kind, ns in sorted(groups):
        res = kube.resource(api_version, kind)
        body = kube.request("GET", res.collection(ns or None),
                            {"labelSelector": selector(cell, service)})
        for item in body.get("items", []):
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            ref = ref_of(item)
            if ref in wanted:
                out[ref] = item
    return out


def _version(text: str | None) -> Version | None:
    return Version.parse(text) if text else None


def drift_of(inv: Inventory, live: dict[Ref, dict[str, Any]]) -> tuple[Drift, ...]:
    """Every drift of every recorded object."""
    return tuple(d for o in inv.objects
                 for d in object_drift(ref_of(o), o, live.get(ref_of(o))))


def service_live(inv: Inventory, live: dict[Ref, dict[str, Any]]) -> ServiceLive:
    """ServiceLive from a recorded inventory and the live objects found."""
    health = combine((str(r), assess(live.get(r))) for r in inv.refs)
    return ServiceLive(version=_version(inv.version), health=health.status,
                       previous_version=_version(inv.previous),
                       applied_hash=inv.applied_hash, drift=drift_of(inv, live),
                       message=health.message)


def read_service(kube: KubeClient, cell: Cell, service: str) -> ServiceLive:
    """The live state of ``service`` in ``cell``."""
    inv = read_inventory(kube, cell.name, service, cell.kubernetes.namespace)
    if inv is None:
        return ServiceLive(version=None, health="Missing", message="nothing applied")
    return service_live(inv, list_live(kube, inv.refs, cell.name, service))


def read_fleet(desired: DesiredState, clients: ClientCache | None = None
               ) -> dict[str, dict[str, ServiceLive]]:
    """cell -> service -> ServiceLive for every service with manifests in every cell."""
    cache = clients or ClientCache()
    services = sorted(n for n, s in desired.services.items() if s.manifests)
    return {name: {svc: read_service(cache.for_cell(cell), cell, svc) for svc in services}
            for name, cell in sorted(desired.cells.items())}
