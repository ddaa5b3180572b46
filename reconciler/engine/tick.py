"""One reconcile tick: load → snapshot → plan → execute, keeping the last good revision.

Owns: the order of one pass of the loop and what survives an invalid revision (the last
good desired state stays live; the errors are reported, nothing is applied from the bad
revision). Every fact needed to resume lives in the backends and the progress store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from reconciler.adapters.errors import AdapterError
from reconciler.core.driftcheck import DriftTarget, terraform_drift_targets
from reconciler.core.live import (
    AlarmState,
    LiveSnapshot,
    MigrationRead,
    ServiceLive,
    TerraformLive,
    WaveProgress,
)
from reconciler.core.loader import LoadResult
from reconciler.core.model import Cell, DesiredState
from reconciler.core.plan import Plan
from reconciler.core.planner import plan as make_plan
from reconciler.engine.backends import Backends
from reconciler.engine.executor import Outcome, OutcomeStatus, execute
from reconciler.engine.limits import Limits

log = logging.getLogger("reconciler.reconcile")
_T = TypeVar("_T")

ServicesReader = Callable[[DesiredState], Mapping[str, Mapping[str, ServiceLive]]]
TerraformReader = Callable[[DesiredState], Mapping[str, Mapping[str, TerraformLive]]]
#: Ledger phases per cell and database; a cell whose databases cannot be read is a fault
#: (that cell is held, the rest of the fleet is planned).
MigrationReader = Callable[[DesiredState], MigrationRead]
AlarmReader = Callable[[DesiredState], tuple[AlarmState, ...]]
#: Baseline analysis: the alarm rules comparing the cells on a new version with those on
#: the previous one — it needs the services just read (who runs which version).
AnalysisReader = Callable[[DesiredState, Mapping[str, Mapping[str, ServiceLive]]],
                          tuple[AlarmState, ...]]
RolloutReader = Callable[[], Mapping[str, Mapping[str, WaveProgress]]]
#: Plans one applied stack against its recorded inputs; returns the changed addresses
#: (and records the drift flag the next snapshot reads).
DriftChecker = Callable[[DesiredState, Cell, str, str], tuple[str, ...]]


@dataclass(frozen=True)
class Readers:
    """Where each part of the live snapshot comes from (None: that part is empty)."""

    services: ServicesReader | None = None
    terraform: TerraformReader | None = None
    migrations: MigrationReader | None = None
    alarms: AlarmReader | None = None
    rollout: RolloutReader | None = None
    terraform_drift: DriftChecker | None = None
    analysis: AnalysisReader | None = None


@dataclass(frozen=True)
class DriftFinding:
    """What one Terraform drift check found (``error`` when the check itself failed)."""

    target: DriftTarget
    changes: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class TickReport:
    """What one tick saw and did."""

    revision: str | None
    errors: tuple[str, ...]
    plan: Plan | None
    outcomes: tuple[Outcome, ...] = ()
    snapshot_error: str = ""
    live: LiveSnapshot | None = None
    #: Seconds per phase: each snapshot reader, ``plan`` and ``execute``.
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")


def _timed(timings: dict[str, float], part: str, read: Callable[[], _T]) -> _T:
    start = time.monotonic()
    try:
        return read()
    finally:
        timings[part] = round(time.monotonic() - start, 3)


def take_snapshot(desired: DesiredState, readers: Readers,
                  timings: dict[str, float] | None = None) -> LiveSnapshot:
    """The live snapshot from every configured reader (adapter errors propagate); the
    seconds each reader took go into ``timings`` when given.

    The readers run at once (each waits on its own API: Kubernetes, the workspaces,
    the databases, Prometheus): a tick waits for the slowest, not the sum — at 1,000
    cells the sum was 4-5 s of every tick."""
    took = timings if timings is not None else {}
    parts: dict[str, Callable[[], Any]] = {
        name: partial(_timed, took, name, partial(read, desired))
        for name, read in (("services", readers.services), ("terraform", readers.terraform),
                           ("migrations", readers.migrations), ("alarms", readers.alarms))
        if read is not None}
    with ThreadPoolExecutor(max_workers=max(1, len(parts))) as pool:
        futures = {name: pool.submit(read) for name, read in parts.items()}
        rollout = readers.rollout() if readers.rollout else {}
        got = {name: futures[name].result() for name in parts}  # in order: first error
    services: dict[str, dict[str, ServiceLive]] = {
        c: dict(s) for c, s in got.get("services", {}).items()}
    for cell, by_svc in got.get("terraform", {}).items():
        for svc, tf in by_svc.items():
            current = services.setdefault(cell, {}).get(svc) or ServiceLive(None, "Missing")
            services[cell][svc] = replace(current, terraform=tf)
    ledgers: MigrationRead = got.get("migrations") or MigrationRead({})
    for cell, why in sorted(ledgers.faults.items()):
        log.warning("cell held: %s", why, extra={"cell": cell})
    alarms: tuple[AlarmState, ...] = tuple(got.get("alarms", ()))
    if (analyse := readers.analysis) is not None:  # needs the services read above
        alarms += tuple(_timed(took, "analysis", lambda: analyse(desired, services)))
    return LiveSnapshot(services=services, databases=ledgers.phases, rollout=rollout,
                        alarms=alarms, faults=ledgers.faults)


@dataclass
class Reconciler:
    """Runs ticks; remembers the last good desired state across invalid revisions."""

    load: Callable[[], LoadResult]
    readers: Readers
    backends: Backends
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: At most this many cells at once (None: ``limits.cells``).
    parallel: int | None = None
    limits: Limits = field(default_factory=Limits)
    last_good: DesiredState | None = None
    #: Sharded replicas: which cells this replica runs (None: the wave-level steps),
    #: asked at each tick for the desired state's cells; None runs every step.
    owns: Callable[[DesiredState], Callable[[str | None], bool]] | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def _desired(self) -> tuple[DesiredState | None, tuple[str, ...], str | None]:
        try:
            result = self.load()
        except AdapterError as exc:
            log.error("cannot load the desired state: %s", exc)
            return self.last_good, (str(exc),), None
        if result.ok:
            self.last_good = result.desired
            return result.desired, (), result.revision
        errors = tuple(str(e) for e in result.errors)
        for e in errors:
            log.error("invalid desired state: %s", e, extra={"revision": result.revision})
        return self.last_good, errors, result.revision

    def check_terraform_drift(self) -> tuple[DriftFinding, ...]:
        """Plan every steadily applied stack against its inputs; drift found is recorded
        for the next tick, which heals it (never toward a version being rolled back: only
        stacks applied with the inputs of the desired version are checked)."""
        desired, check = self.last_good, self.readers.terraform_drift
        if desired is None or check is None or self.readers.terraform is None:
            return ()
        try:
            targets = terraform_drift_targets(desired, self.readers.terraform(desired))
        except AdapterError as e:
            log.warning("terraform drift check skipped: %s", e)
            return ()
        if self.owns is not None:  # sharded: only this replica's cells
            mine = self.owns(desired)
            targets = tuple(t for t in targets if mine(t.cell))
        return tuple(self._check_one(desired, check, t) for t in targets
                     if not self.stop.is_set())

    @staticmethod
    def _check_one(desired: DesiredState, check: DriftChecker, t: DriftTarget) -> DriftFinding:
        extra = {"revision": desired.revision, "cell": t.cell, "service": t.service}
        try:
            changes = check(desired, desired.cells[t.cell], t.service, t.version)
        except AdapterError as e:
            log.warning("terraform drift check failed: %s", e, extra=extra)
            return DriftFinding(t, error=str(e))
        if changes:
            log.warning("terraform drift: %s", ", ".join(changes), extra=extra)
        return DriftFinding(t, changes)

    def tick(self) -> TickReport:
        """One pass: plan from the current state and run the due steps."""
        desired, errors, revision = self._desired()
        if desired is None:
            return TickReport(revision, errors, None)
        now, timings = self.clock(), dict[str, float]()
        try:
            live = take_snapshot(desired, self.readers, timings)
        except AdapterError as e:
            log.warning("snapshot failed: %s", e)
            return TickReport(revision, errors, None, snapshot_error=str(e), timings=timings)
        p = _timed(timings, "plan", lambda: make_plan(desired, live, now))
        mine = self.owns(desired) if self.owns is not None else None
        outcomes = _timed(timings, "execute", lambda: execute(
            p, desired, self.backends, now, self.parallel, self.stop.is_set, self.limits,
            mine))
        for o in outcomes:
            level = logging.INFO if o.status == OutcomeStatus.DONE else logging.WARNING
            log.log(level, "%s %s: %s", o.step.kind, o.status, o.detail,
                    extra={"revision": desired.revision, "cell": o.step.cell,
                           "service": o.step.service, "step": o.step.id})
        return TickReport(revision, errors, p, tuple(outcomes), live=live, timings=timings)
