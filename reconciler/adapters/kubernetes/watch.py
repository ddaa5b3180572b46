"""Watching a fleet's objects so drift is seen at once, and healed when asked.

Owns: one cluster-wide watch per (cluster, kind) on objects labelled
``reconciler.dev/service`` (a fleet of many cells costs a handful of streams, not one per
namespace; objects outside the watched cells' namespaces are ignored), each stream
listing first and watching from the list's version (again after a 410), feeding the
tick's ``informer.WatchCache`` when given one, a cache of
recorded inventories (refreshed from their own ConfigMap events), comparing each
event's object with what was applied, reporting drift through a callback, and
re-applying the recorded object when self-heal is on.
While an apply is in flight (the inventory lists pending objects, or the object
carries a newer hash) nothing is judged, so a rollout is never fought. With the tick's
store, an object seen ahead of its inventory is judged when the inventory's own event
arrives (from the store: the stream never stops to read an inventory, so it keeps up
with a wave of hundreds of applies); without it, the inventory is read again.
Also reports a workload whose health changed (an event with no drift and ``health``
set, e.g. a Deployment whose rollout finished): the daemon plans again at once instead
of at its next interval, so a wave follows the one before it as soon as that is healthy.
Must never: heal toward anything but the recorded inventory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.adapters.errors import AdapterError
from reconciler.adapters.kubernetes.apply import Change, heal
from reconciler.adapters.kubernetes.client import ClientCache, KubeClient, Target
from reconciler.adapters.kubernetes.drift import object_drift
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.inventory import (
    Inventory,
    from_configmap,
    is_inventory,
    read_inventory,
)
from reconciler.adapters.kubernetes.objects import (
    ANN_HASH,
    LABEL_CELL,
    LABEL_SERVICE,
    ref_of,
)
from reconciler.core import health as health_rules
from reconciler.core.live import Drift
from reconciler.core.model import Cell

log = logging.getLogger(__name__)

WATCHED_KINDS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"),
                 ("apps/v1", "DaemonSet"), ("batch/v1", "Job"), ("v1", "ConfigMap"),
                 ("v1", "Service"))
WATCH_SECONDS = 60


@dataclass(frozen=True)
class DriftEvent:
    """Drift seen on one object of one service in one cell, and what healing did."""

    cell: str
    service: str
    drift: tuple[Drift, ...]
    healed: tuple[Change, ...] = ()
    error: str = ""
    #: Set (with no drift) when a workload's health changed: its new health.
    health: str = ""


@dataclass
class _Stream:
    target: Target
    namespace: str | None
    api_version: str
    kind: str
    response: Any = None
    resource_version: str | None = None

    @property
    def key(self) -> tuple[Target, str, str]:
        return self.target, self.api_version, self.kind


@dataclass
class DriftWatcher:
    """Watches the given cells' services; call ``start()`` then ``stop()``."""

    cells: Iterable[Cell]
    services: Iterable[str]
    on_event: Callable[[DriftEvent], None]
    self_heal: Callable[[str, str], bool] = field(default=lambda cell, service: False)
    clients: ClientCache = field(default_factory=ClientCache)
    kinds: tuple[tuple[str, str], ...] = WATCHED_KINDS
    #: Kept current from the streams for the tick's snapshot (None: not kept).
    cache: WatchCache | None = None

    def __post_init__(self) -> None:
        self._cells = {c.name: c for c in self.cells}
        self._services = set(self.services)
        self._inventories: dict[tuple[str, str], Inventory | None] = {}
        #: Services whose inventory came from a ConfigMap event (it follows each apply).
        self._streamed: set[tuple[str, str]] = set()
        #: Services with objects seen ahead of their inventory: judged at its event.
        self._deferred: set[tuple[str, str]] = set()
        #: Last health seen per workload (namespace, kind, name).
        self._health: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: list[_Stream] = []
        self.ready = threading.Event()  # set once every watch has been opened once
        self._opened = 0

    # -- lifecycle

    def start(self) -> None:
        targets = sorted({Target.of(c) for c in self._cells.values()}, key=str)
        self._streams = [_Stream(t, None, av, k) for t in targets for av, k in self.kinds]
        for s in self._streams:
            th = threading.Thread(target=self._run, args=(s,), daemon=True,
                                  name=f"watch-{s.kind}")
            self._threads.append(th)
            th.start()

    def stop(self) -> None:
        self._stop.set()
        for s in self._streams:
            resp = s.response
            if resp is not None:
                try:
                    resp.shutdown()
                except Exception:  # best effort: the thread exits anyway
                    resp.close()
        for th in self._threads:
            th.join(timeout=5)
        if self.cache is not None:
            for s in self._streams:
                self.cache.forget(s.key)

    # -- watching

    def _run(self, s: _Stream) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self._watch_once(s, first)
            except AdapterError as e:
                log.debug("watch %s/%s: %s", s.namespace, s.kind, e)
                self._lost(s)
                self._stop.wait(1.0)
            except Exception:  # a broken stream: reopen it
                if self._stop.is_set():
                    return
                log.exception("watch %s/%s failed", s.namespace, s.kind)
                self._lost(s)
                self._stop.wait(1.0)
            first = False

    def _lost(self, s: _Stream) -> None:
        """A stream that failed (the cluster unreachable, the connection broken): its
        store is not read until it has listed again, so a tick meanwhile lists — and
        fails while the cluster is down — instead of planning from what the watch last
        saw."""
        s.resource_version = None
        if self.cache is not None:
            self.cache.forget(s.key)

    def _watch_once(self, s: _Stream, first: bool) -> None:
        kube = self.clients.for_target(s.target)
        path = kube.resource(s.api_version, s.kind).collection(s.namespace)
        query = {"labelSelector": LABEL_SERVICE}
        listed: list[dict[str, Any]] = []
        if not s.resource_version:  # list, then watch from the list's version
            listed = self._list(kube, s, path, query)
        events = kube.stream(path, {**query, "resourceVersion": str(s.resource_version)},
                             WATCH_SECONDS)
        s.response = next(events)
        if self.cache is not None:
            self.cache.heard(s.key)
        for obj in listed:  # judged as the first sight of each object, as events are
            if self._stop.is_set():
                return
            self.check(kube, obj, deleted=False)
        if first:
            self._mark_opened()
        for ev in events:
            if self._stop.is_set():
                return
            self._on_event(kube, s, ev)

    def _list(self, kube: KubeClient, s: _Stream, path: str, query: dict[str, str]
              ) -> list[dict[str, Any]]:
        """Every watched object now; the stream goes on from the list's version."""
        body = kube.request("GET", path, query)
        items: list[dict[str, Any]] = body.get("items") or []
        for obj in items:
            obj.setdefault("apiVersion", s.api_version)
            obj.setdefault("kind", s.kind)
        s.resource_version = (body.get("metadata") or {}).get("resourceVersion")
        if self.cache is not None:
            self.cache.listed(s.key, items, s.resource_version)
        return items

    def _mark_opened(self) -> None:
        with self._lock:
            self._opened += 1
            if self._opened >= len(self._streams):
                self.ready.set()

    def _on_event(self, kube: KubeClient, s: _Stream, ev: dict[str, Any]) -> None:
        obj = ev.get("object") or {}
        if ev.get("type") == "ERROR":
            s.resource_version = None  # 410 Gone and friends: list again
            if self.cache is not None:
                self.cache.forget(s.key)
            return
        s.resource_version = (obj.get("metadata") or {}).get("resourceVersion")
        if ev.get("type") != "BOOKMARK":
            obj.setdefault("apiVersion", s.api_version)
            obj.setdefault("kind", s.kind)
        if self.cache is not None:
            self.cache.event(s.key, str(ev.get("type")), obj)
        if ev.get("type") == "BOOKMARK":
            return
        self.check(kube, obj, deleted=ev.get("type") == "DELETED")

    # -- judging

    def _key(self, obj: dict[str, Any]) -> tuple[str, str] | None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        cell, service = labels.get(LABEL_CELL), labels.get(LABEL_SERVICE)
        if cell in self._cells and service in self._services and \
                meta.get("namespace") == self._cells[str(cell)].kubernetes.namespace:
            return str(cell), str(service)
        return None

    def _inventory(self, kube: KubeClient, key: tuple[str, str], fresh: bool
                   ) -> Inventory | None:
        with self._lock:
            if not fresh and key in self._inventories:
                return self._inventories[key]
        inv = read_inventory(kube, key[0], key[1], self._cells[key[0]].kubernetes.namespace)
        with self._lock:
            self._inventories[key] = inv
        return inv

    def check(self, kube: KubeClient, obj: dict[str, Any], deleted: bool) -> None:
        """Judge one watched object; report (and heal) drift."""
        key = self._key(obj)
        if key is None:
            return
        if is_inventory(obj):
            inv = None if deleted else from_configmap(obj)
            with self._lock:
                self._inventories[key] = inv
                (self._streamed.discard if deleted else self._streamed.add)(key)
                rejudge = inv is not None and not inv.pending and key in self._deferred
                if rejudge:
                    self._deferred.discard(key)
            if rejudge and inv is not None:
                self._rejudge(kube, key, inv)
            return
        self._health_change(key, obj, deleted)
        inv = self._current_inventory(kube, key, obj)
        intent = inv.intent(ref_of(obj)) if inv is not None else None
        if inv is None or intent is None:
            return
        drift = object_drift(ref_of(obj), intent, None if deleted else obj)
        if drift:
            self._report(kube, key, inv, obj, tuple(drift))

    def _health_change(self, key: tuple[str, str], obj: dict[str, Any], deleted: bool
                       ) -> None:
        """Report a workload whose health changed since its last event (not its first
        sight: a watch (re)opening lists every object)."""
        kind = str(obj.get("kind", ""))
        if kind not in health_rules.RULES:
            return
        meta = obj.get("metadata") or {}
        ident = (str(meta.get("namespace")), kind, str(meta.get("name")))
        now = "" if deleted else health_rules.assess(obj).status
        with self._lock:
            before = self._health.pop(ident, None) if deleted else self._health.get(ident)
            if not deleted:
                self._health[ident] = now
        if before is not None and now and before != now:
            self.on_event(DriftEvent(key[0], key[1], (), health=now))

    def _current_inventory(self, kube: KubeClient, key: tuple[str, str],
                           obj: dict[str, Any]) -> Inventory | None:
        """The inventory to judge against; None while an apply is in flight."""
        inv = self._inventory(kube, key, fresh=False)
        live_hash = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANN_HASH)
        if inv is None or inv.pending or (live_hash and live_hash != inv.applied_hash):
            with self._lock:
                defer = self.cache is not None and key in self._streamed
                if defer:
                    self._deferred.add(key)
            if defer:  # the inventory's event follows the apply and judges it then
                return None
            inv = self._inventory(kube, key, fresh=True)
        if inv is None or inv.pending:
            return None
        return inv

    def _rejudge(self, kube: KubeClient, key: tuple[str, str], inv: Inventory) -> None:
        """The objects of an apply whose events came ahead of its inventory, judged as
        the store holds them now (an object already carrying another hash belongs to
        a later apply, and waits for its inventory in turn)."""
        assert self.cache is not None
        for intent in inv.objects:
            ref = ref_of(intent)
            live = self.cache.held(kube.target, ref.api_version, ref.kind,
                                   ref.namespace or "", ref.name)
            if live is None:
                continue
            live_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(ANN_HASH)
            if live_hash and live_hash != inv.applied_hash:
                continue
            drift = object_drift(ref, intent, live)
            if drift:
                self._report(kube, key, inv, dict(live), tuple(drift))

    def _report(self, kube: KubeClient, key: tuple[str, str], inv: Inventory,
                obj: dict[str, Any], drift: tuple[Drift, ...]) -> None:
        healed: tuple[Change, ...] = ()
        error = ""
        if self.self_heal(*key):
            try:
                healed = tuple(heal(kube, inv, [ref_of(obj)]))
            except AdapterError as e:
                error = str(e)
        self.on_event(DriftEvent(key[0], key[1], drift, healed, error))
