"""The real backends and snapshot readers, built from the adapters.

Owns: adapting each adapter's API to the executor's protocols (``backends.py``) and the
reconcile tick's readers, so the daemon, the demo and the end-to-end tests assemble a
``Reconciler`` the same way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.adapters.errors import AdapterError, PermanentError
from reconciler.adapters.kubernetes import bluegreen
from reconciler.adapters.kubernetes.apply import Change, Held, apply_service, nothing_held
from reconciler.adapters.kubernetes.client import ClientCache, Target
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.jobs import KubernetesJobs
from reconciler.adapters.kubernetes.snapshot import FleetReader
from reconciler.adapters.migrations.job_runner import MigrationJobRunner
from reconciler.adapters.migrations.report import read_phases
from reconciler.adapters.migrations.runner import run_phase
from reconciler.adapters.prometheus import PrometheusClient, analyse, evaluate
from reconciler.core.live import AlarmState, MigrationLive, MigrationRead, ServiceLive
from reconciler.core.model import Cell, DesiredState
from reconciler.core.planner.bluegreen import COLOURED
from reconciler.core.planner.migrations import ledger_databases
from reconciler.core.policy import Policy, kind_allowed
from reconciler.core.render import default_context, render_service
from reconciler.core.traffic import shape_of
from reconciler.engine.backends import JsonValue

log = logging.getLogger("reconciler.analysis")


@dataclass
class KubernetesApply:
    """Renders a service's templates for a cell and server-side applies them."""

    clients: ClientCache
    policy: Policy | None = None
    #: Sharded replicas: recorded on the inventory as the replica that applied.
    replica: str | None = None
    #: The drift watch's store, read instead of listing when it can be trusted.
    watched: WatchCache | None = None

    def __post_init__(self) -> None:
        self._reader = FleetReader(self.clients, self.watched)

    def apply(self, desired: DesiredState, cell: Cell, service: str, version: str,
              terraform_outputs: Mapping[str, JsonValue]) -> str:
        objs = render_service(desired, default_context(cell, service, version,
                                                       terraform_outputs))
        if self.policy is not None:
            denied = sorted({str(o.get("kind")) for o in objs
                             if not kind_allowed(self.policy, cell, str(o.get("kind")))})
            if denied:
                raise PermanentError(f"{', '.join(denied)} in {service} not allowed for cell "
                                     f"{cell.name} by {self.policy.source}: nothing applied")
        kube = self.clients.for_cell(cell)
        svc = desired.services[service]
        if svc.strategy in COLOURED:
            result = bluegreen.converge(kube, cell, service, version, objs, shape_of(svc))
        else:
            result = apply_service(kube, cell, service, version, objs, self.replica,
                                   self._held(cell))
        counts: dict[str, int] = {}
        for change in result.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        return f"applied {service} {version} to {cell.name}: {summary}"

    def read(self, desired: DesiredState) -> dict[str, dict[str, ServiceLive]]:
        return self._reader(desired)

    def _held(self, cell: Cell) -> Held:
        """What the drift watch holds of ``cell``'s objects (nothing when not watched)."""
        watched, target = self.watched, Target.of(cell)
        if watched is None:
            return nothing_held
        return lambda ref: watched.held(target, ref.api_version, ref.kind,
                                        ref.namespace or "", ref.name)

    def switch(self, desired: DesiredState, cell: Cell, service: str, version: str) -> str:
        result = bluegreen.switch(self.clients.for_cell(cell), cell, service, version,
                                  shape_of(desired.services[service]))
        return f"{service} {version} serves in {cell.name}: {_summary(result.changes)}"

    def shift(self, desired: DesiredState, cell: Cell, service: str, version: str,
              weight: int, mirror: bool, now: datetime) -> str:
        result = bluegreen.shift(self.clients.for_cell(cell), cell, service, version, weight,
                                 mirror, now.isoformat(), shape_of(desired.services[service]))
        what = "mirrors the requests" if mirror else f"takes {weight}%"
        return f"{service} {version} {what} in {cell.name}: {_summary(result.changes)}"

    def scale_down(self, desired: DesiredState, cell: Cell, service: str) -> str:
        result = bluegreen.scale_down(self.clients.for_cell(cell), cell, service)
        return f"old colour of {service} scaled to zero in {cell.name}: " \
            f"{_summary(result.changes)}"


def _summary(changes: Sequence[Change]) -> str:
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "no change"


@dataclass
class MigrationRunner:
    """Runs migration phases against the cells' PostgreSQL databases (job steps as
    Kubernetes Jobs when ``clients`` is given)."""

    env: Mapping[str, str] | None = None
    clients: ClientCache | None = None

    def run(self, desired: DesiredState, cell: str, migration: str, action: str) -> str:
        env = os.environ if self.env is None else self.env
        jobs = None if self.clients is None else MigrationJobRunner(KubernetesJobs(self.clients))
        return run_phase(desired, cell, migration, action, env=env, jobs=jobs).outcome

    def read(self, desired: DesiredState) -> MigrationRead:
        """Every cell's ledgers; a cell whose database cannot be read is a fault of that
        cell alone (it is held with the reason; the others are planned)."""
        env = os.environ if self.env is None else self.env
        phases: dict[str, dict[str, dict[str, MigrationLive]]] = {}
        faults: dict[str, str] = {}
        for name in sorted(desired.cells):
            cell = desired.cells[name]
            wanted = ledger_databases(desired, cell)
            try:
                phases[name] = {ref.name: read_phases(name, ref, env) for ref in cell.databases
                                if ref.name in wanted}
            except AdapterError as e:
                faults[name] = f"migration ledger unreadable: {e}"
        return MigrationRead(phases, faults)


#: How long one evaluation of the alarm rules stands for the same desired state: the
#: range queries' step, the finest resolution their answers have. While a wave's
#: workloads report, ticks come several a second, and evaluating every rule for every
#: cell was most of each one (and of Prometheus's work), taking the two cores from the
#: controllers rolling the wave out.
ALARM_REUSE_SECONDS = 1.0


@dataclass
class AlarmEvaluator:
    """Evaluates the fleet's and services' alarm rules for every cell (at most once per
    ``reuse_seconds`` for the same desired state); ``analyse`` runs the baseline
    comparisons and logs each decision when it changes."""

    client: PrometheusClient
    decided: dict[tuple[str, str], str] = field(default_factory=dict)
    reuse_seconds: float = ALARM_REUSE_SECONDS
    clock: Callable[[], float] = time.monotonic
    #: The last evaluation: its rules and cells (what the queries are made of), when it
    #: started, its states.
    _last: tuple[object, float, tuple[AlarmState, ...]] | None = field(
        default=None, init=False, repr=False)

    def read(self, desired: DesiredState) -> tuple[AlarmState, ...]:
        rules = list(desired.fleet.alarms)
        for svc in desired.services.values():
            rules += svc.alarms
        cells: Sequence[Cell] = [desired.cells[n] for n in sorted(desired.cells)]
        key, now, last = (tuple(rules), tuple(cells)), self.clock(), self._last
        if last is not None and 0 <= now - last[1] < self.reuse_seconds and last[0] == key:
            return last[2]
        states = tuple(evaluate(self.client, rules, cells))
        self._last = (key, now, states)
        return states

    def analyse(self, desired: DesiredState,
                services: Mapping[str, Mapping[str, ServiceLive]]) -> tuple[AlarmState, ...]:
        states = analyse(self.client, desired, services)
        for a in states:
            decision = "firing" if a.firing else "pending" if a.pending else "passing"
            key = (a.rule, a.cell)
            if self.decided.get(key) != decision:
                self.decided[key] = decision
                level = logging.WARNING if a.firing else logging.INFO
                log.log(level, "analysis %r %s for %s: %s", a.rule, decision, a.cell, a.detail,
                        extra={"revision": desired.revision, "cell": a.cell})
        return states
