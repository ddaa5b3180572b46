"""The simulated fleet of the model-based test — FAKES of Kubernetes, Terraform, the
migration ledgers and Prometheus, built on the engine tests' fakes (tests/engine/fakes.py).

No real part can be driven through thousands of event sequences in minutes, so these
stand in for them (the real adapters are covered by tests/integration and tests/e2e).
They keep what the real systems would: what each cell runs and since when it is healthy,
its rollback target (the previous version, as the real inventory records it), drift,
each stack's applied inputs, a ledger per database, each cell's error rate. The machine
turns the world's events on them (a cell Degraded, an alarm, drift, an unreachable API,
failing applies), and every call the engine makes is shown to an observer *before* it
changes anything — the invariants are judged there, on the state the call found.

Every call holds one lock: the executor runs cells in parallel threads, and the observer
must see the fleet as one consistent state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.compose.reconciler import FleetParts
from reconciler.core.alarms import judge
from reconciler.core.live import AlarmState, Drift, MigrationRead, ServiceLive, TerraformLive
from reconciler.core.model import Cell, DesiredState
from reconciler.core.planner.migrations import ledger_databases
from reconciler.core.versions import Version
from tests.engine.fakes import FakeKubernetes, FakeMigrations, FakeTerraform
from tests.model.repo import CELLS, SERVICE, START_VERSION

#: What a backend call is about to do.
KUBERNETES, TERRAFORM, MIGRATIONS = "kubernetes", "terraform", "migrations"


@dataclass(frozen=True)
class Call:
    """One mutating call of the engine into the fleet, seen before it acts."""

    backend: str
    cell: str
    version: str | None  # kubernetes / terraform: the version applied
    desired: DesiredState  # the desired state the engine acted on
    migration: str | None = None
    action: str | None = None  # migrations: expand / contract / rollback


class Observer(Protocol):
    def before(self, call: Call, fleet: FakeFleet) -> None: ...

    def after(self, call: Call, fleet: FakeFleet) -> None: ...

    def changed(self, fleet: FakeFleet) -> None: ...


@dataclass
class Fault:
    """An injected failure of one backend in one cell: ``left`` more calls fail
    temporarily, or every call fails permanently (until a person fixes the cause)."""

    permanent: bool
    left: int = 0


@dataclass
class CellState:
    """What the simulation knows of a cell beyond its ServiceLive."""

    #: Since when the cell is Healthy on the version it runs (None: not Healthy).
    healthy_since: datetime | None
    #: A forward move (upgrade) whose rollout has not yet become Healthy.
    in_flight: bool = False
    #: The cell's pods crash: its rollouts end Degraded (until a new version is applied).
    crashing: bool = False


@dataclass
class FakeFleet:
    """The fake fleet: its state, its faults, and the engine's view of it (``parts``):
    fake Kubernetes, Terraform and migration backends and readers, and a fake Prometheus
    (``read_alarms``: the desired alarm rules judged on each cell's ``error_rate``)."""

    clock: Callable[[], datetime]
    observer: Observer | None = None
    log: list[str] = field(default_factory=list)
    api_down: bool = False
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)  # (backend, cell)
    error_rate: dict[str, float] = field(default_factory=dict)
    cells: dict[str, CellState] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: How many version changes the fleet has seen, and each cell's last one.
    changes: int = 0
    changed: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kubernetes = FakeKubernetes(self.log)
        self.terraform = FakeTerraform(self.log)
        self.migrations = FakeMigrations(self.log)

    def seed(self, desired: DesiredState, since: datetime) -> None:
        """Every cell runs 1.0.0, Healthy since ``since``, its stack applied."""
        for cell in CELLS:
            self.kubernetes.run(cell, SERVICE, START_VERSION)
            self.terraform.record(desired, cell, SERVICE, START_VERSION)
            self.cells[cell] = CellState(since)

    # -- what the engine sees ------------------------------------------------------------
    def parts(self) -> FleetParts:
        return FleetParts(kubernetes=FakeFleetKubernetes(self), terraform=FakeFleetTerraform(self),
                          migrations=FakeFleetMigrations(self), services=self.read_services,
                          terraform_state=self.read_terraform, ledgers=self.read_ledgers,
                          alarms=self.read_alarms)

    def read_services(self, desired: DesiredState) -> Mapping[str, Mapping[str, ServiceLive]]:
        with self.lock:
            if self.api_down:
                raise TemporaryError("kubernetes API: connection refused (simulated)", 5.0)
            return self.kubernetes.read(desired)

    def read_terraform(self, desired: DesiredState) -> Mapping[str, Mapping[str, TerraformLive]]:
        with self.lock:
            return self.terraform.read(desired)

    def read_ledgers(self, desired: DesiredState) -> MigrationRead:
        """The ledgers of the databases the real reader reads (compose.wiring)."""
        with self.lock:
            every = self.migrations.read(desired).phases
            return MigrationRead({
                cell: {db: dict(m) for db, m in dbs.items()
                       if db in ledger_databases(desired, desired.cells[cell])}
                for cell, dbs in every.items() if cell in desired.cells})

    def read_alarms(self, desired: DesiredState) -> tuple[AlarmState, ...]:
        """The fleet's alarm rules judged (by core.alarms) on each cell's error rate."""
        with self.lock:
            rules = [*desired.fleet.alarms, *(r for s in desired.services.values()
                                              for r in s.alarms)]
            return tuple(judge(rule, cell, [self.error_rate.get(cell, 0.0)])
                         for rule in rules for cell in sorted(desired.cells))

    # -- the fleet's own state -----------------------------------------------------------
    def live(self, cell: str) -> ServiceLive:
        return self.kubernetes.live[cell][SERVICE]

    def version(self, cell: str) -> Version:
        v = self.live(cell).version
        assert v is not None
        return v

    def _set(self, cell: str, **changes: Any) -> None:
        self.kubernetes.live[cell][SERVICE] = replace(self.live(cell), **changes)

    def recent(self) -> str:
        """The cell whose version changed last (the first cell before any change)."""
        with self.lock:
            return max(sorted(self.cells), key=lambda c: self.changed.get(c, 0))

    def settle(self) -> None:
        """Time passes: every rollout in progress ends — Healthy, or Degraded where the
        cell's pods crash."""
        with self.lock:
            for cell, st in sorted(self.cells.items()):
                if self.live(cell).health != "Progressing":
                    continue
                if st.crashing:
                    self._set(cell, health="Degraded", message="CrashLoopBackOff")
                else:
                    self._set(cell, health="Healthy", message="")
                    st.healthy_since, st.in_flight = self.clock(), False
            if self.observer is not None:
                self.observer.changed(self)

    def degrade(self, cell: str) -> None:
        """The cell's pods start crashing now."""
        with self.lock:
            st = self.cells[cell]
            st.crashing, st.healthy_since = True, None
            self._set(cell, health="Degraded", message="CrashLoopBackOff")
            if self.observer is not None:
                self.observer.changed(self)

    def drift(self, cell: str, terraform: bool) -> None:
        """Someone changes the cell out of band (a ``kubectl scale``, a console edit)."""
        with self.lock:
            if terraform:
                tf = self.terraform.state.get(cell, {}).get(SERVICE)
                if tf is not None:
                    self.terraform.state[cell][SERVICE] = replace(tf, drifted=True)
            else:
                self._set(cell, drift=(Drift("Deployment", "app", "spec.replicas",
                                             "kubectl-edit", "scaled by hand"),))

    def fail(self, backend: str, cell: str, permanent: bool, times: int = 2) -> None:
        with self.lock:
            self.faults[(backend, cell)] = Fault(permanent, times)

    def heal_faults(self) -> None:
        """A person fixes every cause: no injected failure is left."""
        with self.lock:
            self.faults.clear()

    def _check_fault(self, backend: str, cell: str) -> None:
        if backend == KUBERNETES and self.api_down:
            raise TemporaryError("kubernetes API: connection refused (simulated)", 5.0)
        f = self.faults.get((backend, cell))
        if f is None:
            return
        if f.permanent:
            raise PermanentError(f"{backend}: refused in {cell} (simulated)")
        f.left -= 1
        if f.left <= 0:
            del self.faults[(backend, cell)]
        raise TemporaryError(f"{backend}: timed out in {cell} (simulated)", 1.0)

    def call(self, c: Call, act: Callable[[], Any]) -> Any:
        """Run one mutating call: the observer sees it first, then the fault (if any),
        then the change."""
        with self.lock:
            if self.observer is not None:
                self.observer.before(c, self)
            self._check_fault(c.backend, c.cell)
            out = act()
            if self.observer is not None:
                self.observer.after(c, self)
            return out

    def applied(self, cell: str, version: str, before: ServiceLive) -> None:
        """After a Kubernetes apply (``before``: the cell as it was): a new version starts
        a rollout (Progressing), forgetting drift and crashes; the same version only
        removes drift (no new pods)."""
        st = self.cells[cell]
        if before.version is not None and str(before.version) == version:
            self._set(cell, health=before.health, message=before.message, drift=())
            return
        st.in_flight = before.version is None or Version.parse(version) > before.version
        st.healthy_since, st.crashing = None, False
        self.changes += 1
        self.changed[cell] = self.changes
        self._set(cell, health="Progressing", drift=(), message="rollout in progress")


class FakeFleetKubernetes:
    """Fake KubernetesBackend of the fake fleet (FakeKubernetes, with rollouts that take
    time and cells that fail)."""

    def __init__(self, fleet: FakeFleet) -> None:
        self.fleet = fleet

    def apply(self, desired: DesiredState, cell: Cell, service: str, version: str,
              terraform_outputs: Mapping[str, Any]) -> str:
        f = self.fleet

        def act() -> str:
            before = f.live(cell.name)
            out = f.kubernetes.apply(desired, cell, service, version, terraform_outputs)
            f.applied(cell.name, version, before)
            return out
        result: str = f.call(Call(KUBERNETES, cell.name, version, desired), act)
        return result


class FakeFleetTerraform:
    """Fake TerraformBackend of the fake fleet (FakeTerraform, shown to the observer)."""

    def __init__(self, fleet: FakeFleet) -> None:
        self.fleet = fleet

    def apply(self, desired: DesiredState, cell: Cell, service: str,
              version: str) -> Mapping[str, Any]:
        f = self.fleet
        out: Mapping[str, Any] = f.call(Call(TERRAFORM, cell.name, version, desired),
                                        lambda: f.terraform.apply(desired, cell, service,
                                                                  version))
        return out

    def outputs(self, desired: DesiredState, cell: Cell, service: str) -> Mapping[str, Any]:
        with self.fleet.lock:
            return self.fleet.terraform.outputs(desired, cell, service)


class FakeFleetMigrations:
    """Fake MigrationBackend of the fake fleet (FakeMigrations' ledger, shown to the
    observer)."""

    def __init__(self, fleet: FakeFleet) -> None:
        self.fleet = fleet

    def run(self, desired: DesiredState, cell: str, migration: str, action: str) -> str:
        f = self.fleet
        out: str = f.call(Call(MIGRATIONS, cell, None, desired, migration, str(action)),
                          lambda: f.migrations.run(desired, cell, migration, action))
        return out

