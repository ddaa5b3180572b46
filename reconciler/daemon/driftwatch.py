"""Kubernetes drift seen as it happens.

Owns: keeping one ``DriftWatcher`` over the cells and services of the live desired state
(restarted when those change) and turning each drift it reports into a log line and an
immediate reconcile; a workload whose health changed (a rollout finished or failed) into
an immediate reconcile too, without a log line at info level. The watcher never heals by
itself here: the tick plans the heal, so the planner's rules hold (never toward a version
being rolled back, only with selfHeal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from reconciler.core.model import Cell, DesiredState

log = logging.getLogger("reconciler.drift")

class FieldDrift(Protocol):
    """One drifted field of one object."""

    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def field(self) -> str: ...


class DriftSeen(Protocol):
    """What a watcher reports (``adapters.kubernetes.watch.DriftEvent``)."""

    @property
    def cell(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def drift(self) -> Sequence[FieldDrift]: ...
    @property
    def health(self) -> str: ...


class Watcher(Protocol):
    def stop(self) -> None: ...


#: Starts watching the cells' objects of the named services; calls back on every drift.
StartWatcher = Callable[[Sequence[Cell], tuple[str, ...], Callable[[DriftSeen], None]], Watcher]

Key = tuple[tuple[tuple[str, str, str | None, str | None], ...], tuple[str, ...]]


def _key(desired: DesiredState) -> Key:
    cells = tuple(sorted((c.name, c.kubernetes.namespace, c.kubernetes.kubeconfig,
                          c.kubernetes.context) for c in desired.cells.values()))
    return cells, tuple(sorted(n for n, s in desired.services.items()
                               if s.manifests or s.flag or s.tool))


class DriftWatch:
    """Watches the live desired state's objects; ``on_drift`` runs for every drift."""

    def __init__(self, start: StartWatcher, on_drift: Callable[[DriftSeen], None],
                 on_health: Callable[[DriftSeen], None] | None = None) -> None:
        self.start = start
        self.on_drift = on_drift
        self.on_health = on_health
        self._key: Key | None = None
        self._watcher: Watcher | None = None

    def ensure(self, desired: DesiredState) -> None:
        """Watch ``desired``'s cells and services (a no-op when already watching them)."""
        key = _key(desired)
        if key == self._key:
            return
        self.stop()
        self._key = key
        if not key[0] or not key[1]:
            return
        self._watcher = self.start(list(desired.cells.values()), key[1], self._event)
        log.info("watching %d cells for drift", len(key[0]))

    def _event(self, event: DriftSeen) -> None:
        if not event.drift:
            log.debug("health now %s", event.health, extra={"cell": event.cell,
                                                             "service": event.service})
            if self.on_health is not None:
                self.on_health(event)
            return
        fields = ", ".join(sorted({f"{d.kind}/{d.name} {d.field}" for d in event.drift}))
        log.warning("drift seen: %s", fields, extra={"cell": event.cell,
                                                     "service": event.service})
        self.on_drift(event)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        self._watcher, self._key = None, None
