"""How the daemon's drift watch routes what the Kubernetes watch reports: drift to the
drift handler (logged, counted), a workload's health change to the health handler only
(the daemon plans again at once: the next wave starts when the one before is healthy,
not at the next reconcile interval)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from reconciler.core.model import Cell
from reconciler.daemon.driftwatch import DriftSeen, DriftWatch
from tests.core.test_planner import desired_of


@dataclass(frozen=True)
class _Field:
    kind: str = "Deployment"
    name: str = "app"
    field: str = "spec.replicas"


@dataclass(frozen=True)
class _Event:
    cell: str
    service: str
    drift: tuple[_Field, ...] = ()
    health: str = ""


@dataclass
class _Started:
    callback: list[Callable[[DriftSeen], None]] = field(default_factory=list)
    stopped: int = 0

    def stop(self) -> None:
        self.stopped += 1

    def start(self, cells: Sequence[Cell], services: tuple[str, ...],
              cb: Callable[[DriftSeen], None]) -> _Started:
        """The watch's ``start``: remember the callback, hand this back as the watcher."""
        self.callback.append(cb)
        return self


def _watch(drift: list[DriftSeen], health: list[DriftSeen]) -> tuple[DriftWatch, _Started]:
    started = _Started()
    w = DriftWatch(started.start, drift.append, health.append)
    w.ensure(desired_of({"files": {}}))
    assert len(started.callback) == 1
    return w, started


@pytest.mark.parametrize(("event", "to_drift", "to_health"), [
    (_Event("c1", "app", health="Healthy"), 0, 1),
    (_Event("c1", "app", health="Degraded"), 0, 1),
    (_Event("c1", "app", (_Field(),)), 1, 0),
])
def test_events_are_routed(event: _Event, to_drift: int, to_health: int) -> None:
    drift: list[DriftSeen] = []
    health: list[DriftSeen] = []
    w, started = _watch(drift, health)
    started.callback[0](event)
    assert (len(drift), len(health)) == (to_drift, to_health)
    w.stop()
    assert started.stopped == 1


def test_without_a_health_handler_a_health_change_is_dropped() -> None:
    drift: list[DriftSeen] = []
    started = _Started()
    w = DriftWatch(started.start, drift.append)
    w.ensure(desired_of({"files": {}}))
    started.callback[0](_Event("c1", "app", health="Healthy"))
    assert drift == []
