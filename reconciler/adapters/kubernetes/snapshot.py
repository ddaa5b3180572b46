"""Reading live state: one service in one cell, or the whole fleet, as ServiceLive.

Owns: listing a service's objects by label selector (per kind recorded in the
inventory, in the cell namespace), judging their health with ``core.health``, and
reporting drift against the recorded inventory. ``read_fleet`` is what the daemon's
tick and ``reconciler snapshot REPO -o json`` call: per cluster it lists the inventories
and each recorded kind once, cluster-wide, by our labels (a few requests for the whole
fleet instead of three per cell), falling back to per-cell reads where the credentials
may not list cluster-wide. A cluster that cannot be reached raises TemporaryError: an
unknown state is never reported as "not deployed".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.adapters.kubernetes.client import ClientCache, KubeClient, Target
from reconciler.adapters.kubernetes.drift import object_drift
from reconciler.adapters.kubernetes.errors import Forbidden
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.inventory import (
    Inventory,
    from_configmap,
    inventory_name,
    read_inventory,
)
from reconciler.adapters.kubernetes.objects import (
    LABEL_CELL,
    LABEL_INVENTORY,
    LABEL_SERVICE,
    Ref,
    ownership_labels,
    ref_of,
    selector,
)
from reconciler.core import bluegreen as bg
from reconciler.core.health import assess, combine
from reconciler.core.live import Drift, ServiceLive, Standby, parse_time
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


#: A service in a cell with no recorded inventory.
NOTHING_APPLIED = ServiceLive(version=None, health="Missing", message="nothing applied")


def _version(text: str | None) -> Version | None:
    return Version.parse(text) if text else None


def drift_of(inv: Inventory, live: dict[Ref, dict[str, Any]]) -> tuple[Drift, ...]:
    """Every drift of every recorded object."""
    return tuple(d for o in inv.objects
                 for d in object_drift(ref_of(o), o, live.get(ref_of(o))))


def service_live(inv: Inventory, live: dict[Ref, dict[str, Any]]) -> ServiceLive:
    """ServiceLive from a recorded inventory and the live objects found."""
    if inv.colours:
        return _blue_green_live(inv, live)
    health = combine((str(r), assess(live.get(r))) for r in inv.refs)
    return ServiceLive(version=_version(inv.version), health=health.status,
                       previous_version=_version(inv.previous),
                       applied_hash=inv.applied_hash, drift=drift_of(inv, live),
                       message=health.message)


def _blue_green_live(inv: Inventory, live: dict[Ref, dict[str, Any]]) -> ServiceLive:
    """A blue-green service: health of what serves (the active colour, the Services, the
    shared objects); the other colour as ``standby`` with its own health."""
    colours = bg.Colours.from_text(inv.colours)
    standby = colours.standby
    sb_refs = [ref_of(o) for o in inv.objects if bg.colour_of(o) == standby]
    serving = [r for r in inv.refs if r not in set(sb_refs)]
    health = combine((str(r), assess(live.get(r))) for r in serving)
    sb_version = colours.versions.get(standby)
    sb = None
    if sb_version:
        sb_health = combine((str(r), assess(live.get(r))) for r in sb_refs)
        sb = Standby(standby, Version.parse(sb_version), sb_health.status,
                     standby in colours.scaled_down, sb_health.message, colours.weight,
                     colours.mirror, parse_time(colours.since))
    return ServiceLive(version=_version(inv.version), health=health.status,
                       previous_version=_version(inv.previous),
                       applied_hash=inv.applied_hash, drift=drift_of(inv, live),
                       message=health.message, standby=sb)


def read_service(kube: KubeClient, cell: Cell, service: str) -> ServiceLive:
    """The live state of ``service`` in ``cell``."""
    inv = read_inventory(kube, cell.name, service, cell.kubernetes.namespace)
    if inv is None:
        return NOTHING_APPLIED
    return service_live(inv, list_live(kube, inv.refs, cell.name, service))


@dataclass
class _Memo:
    """Parsed inventories and judged services, by the resource versions they came from."""

    inventories: dict[Hashable, Inventory] = field(default_factory=dict)
    services: dict[Hashable, ServiceLive] = field(default_factory=dict)


@dataclass
class FleetReader:
    """``read_fleet`` for the daemon's ticks: the objects come from the drift watch's
    store when it can be trusted (``informer.WatchCache``; else listed as before), and
    each inventory's parse and each service's ServiceLive are reused while the objects
    they came from keep their resource versions (health and drift depend on nothing
    else). The memo holds only what the last read used."""

    clients: ClientCache
    cache: WatchCache | None = None
    _memo: _Memo = field(default_factory=_Memo)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, desired: DesiredState) -> dict[str, dict[str, ServiceLive]]:
        with self._lock:  # one read at a time: the memo is swapped at the end
            lists = _Lists(self.cache, self._memo, _Memo())
            out = read_fleet(desired, self.clients, lists)
            self._memo = lists.now
            return out


@dataclass
class _Lists:
    """Where ``read_cluster`` gets its lists from, and its memo (none by default)."""

    cache: WatchCache | None = None
    before: _Memo = field(default_factory=_Memo)
    now: _Memo = field(default_factory=_Memo)

    def items(self, kube: KubeClient, api_version: str, kind: str, selector: str,
              wanted: Callable[[Mapping[str, str]], bool]) -> list[dict[str, Any]]:
        """Every object of ``kind`` in the cluster that ``selector`` (and ``wanted``, the
        same test on labels) selects: from the watch's store when it may be read."""
        stored = self.cache.items(kube.target, api_version, kind) if self.cache else None
        if stored is not None:
            return [o for o in stored if wanted(_labels(o))]
        res = kube.resource(api_version, kind)
        body = kube.request("GET", res.collection(None), {"labelSelector": selector})
        items: list[dict[str, Any]] = body.get("items", [])
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def inventory(self, cm: dict[str, Any]) -> Inventory:
        """``from_configmap``, reused while the ConfigMap keeps its resource version."""
        key = _versions([cm])
        found = self.before.inventories.get(key) if key is not None else None
        if found is None:
            found = from_configmap(cm)
        if key is not None:
            self.now.inventories[key] = found
        return found

    def service(self, cm: dict[str, Any], inv: Inventory, live: dict[Ref, dict[str, Any]]
                ) -> ServiceLive:
        """``service_live``, reused while the inventory ConfigMap and every live object
        keep their resource versions."""
        key = _versions([cm, *live.values()])
        found = self.before.services.get(key) if key is not None else None
        if found is None:
            found = service_live(inv, live)
        if key is not None:
            self.now.services[key] = found
        return found


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _versions(objs: Sequence[Mapping[str, Any]]) -> Hashable | None:
    """Which objects, at which resource versions; None when one has no version."""
    parts = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if not version:
            return None
        parts.append((str(obj.get("kind")), str(meta.get("namespace")),
                      str(meta.get("name")), str(version)))
    return tuple(sorted(parts))


def read_fleet(desired: DesiredState, clients: ClientCache | None = None,
               lists: _Lists | None = None) -> dict[str, dict[str, ServiceLive]]:
    """cell -> service -> ServiceLive for every service with manifests in every cell."""
    cache = clients or ClientCache()
    services = sorted(n for n, s in desired.services.items() if s.manifests or s.flag or s.tool)
    by_target: dict[Target, list[Cell]] = {}
    for _, cell in sorted(desired.cells.items()):
        by_target.setdefault(Target.of(cell), []).append(cell)
    out: dict[str, dict[str, ServiceLive]] = {}
    for target, cells in by_target.items():
        kube = cache.for_target(target)
        try:
            out.update(read_cluster(kube, cells, services, lists))
        except Forbidden:  # namespace-scoped credentials: one cell at a time
            out.update({c.name: {svc: read_service(kube, c, svc) for svc in services}
                        for c in cells})
    return {name: out[name] for name in sorted(out)}


def _is_inventory(labels: Mapping[str, str]) -> bool:
    return labels.get(LABEL_INVENTORY) == "true"


def _is_owned(labels: Mapping[str, str]) -> bool:
    return LABEL_CELL in labels and LABEL_SERVICE in labels


def read_cluster(kube: KubeClient, cells: Sequence[Cell], services: Sequence[str],
                 lists: _Lists | None = None) -> dict[str, dict[str, ServiceLive]]:
    """``read_service`` for every cell and service in one cluster, from cluster-wide
    lists: the inventories, then every kind they record."""
    lists = lists or _Lists()
    found = lists.items(kube, "v1", "ConfigMap", f"{LABEL_INVENTORY}=true", _is_inventory)
    by_key = {(_meta(cm, "namespace"), _meta(cm, "name")): cm for cm in found}
    invs = {(c.name, svc): by_key.get((c.kubernetes.namespace, inventory_name(c.name, svc)))
            for c in cells for svc in services}
    parsed = {k: lists.inventory(cm) for k, cm in invs.items() if cm is not None}
    live = _list_kinds(kube, lists, {(r.api_version, r.kind) for inv in parsed.values()
                                     for r in inv.refs})
    out: dict[str, dict[str, ServiceLive]] = {c.name: {} for c in cells}
    for (cell, svc), cm in invs.items():
        inv = parsed.get((cell, svc))
        if cm is None or inv is None:
            out[cell][svc] = NOTHING_APPLIED
            continue
        mine = {r: live[r] for r in inv.refs if r in live and _owned_by(live[r], cell, svc)}
        out[cell][svc] = lists.service(cm, inv, mine)
    return out


def _list_kinds(kube: KubeClient, lists: _Lists, kinds: Iterable[tuple[str, str]]
                ) -> dict[Ref, dict[str, Any]]:
    """Every object of ``kinds`` that carries our cell and service labels."""
    out: dict[Ref, dict[str, Any]] = {}
    for api_version, kind in sorted(kinds):
        for item in lists.items(kube, api_version, kind, f"{LABEL_CELL},{LABEL_SERVICE}",
                                _is_owned):
            out[ref_of(item)] = item
    return out


def _meta(obj: dict[str, Any], key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


def _owned_by(obj: dict[str, Any], cell: str, service: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return ownership_labels(cell, service).items() <= labels.items()
