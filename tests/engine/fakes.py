"""In-memory fakes of the engine's backends and snapshot readers, for unit tests only.

Each fake stands in for one adapter (Kubernetes, Terraform, migrations, Git, the progress
store) behind the protocols of ``reconciler.engine.backends``: it records every call in
one shared log (so tests see the order across backends), keeps what it "applied" as the
live state its reader returns (so a run of ticks moves forward), and raises the adapter
error a test names for a cell. They are used by tests/engine and, extended into a
simulated fleet, by the model-based test (tests/model/fleet.py); never by the product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.core.hashing import terraform_input_hash
from reconciler.core.live import (
    MigrationLive,
    MigrationRead,
    ServiceLive,
    TerraformLive,
    WaveProgress,
)
from reconciler.core.model import Cell, DesiredState
from reconciler.core.versions import Version
from reconciler.engine.backends import Backends
from reconciler.engine.tick import Readers

#: Adapter errors to raise, by cell name (or by service for the Git fake).
Failures = Mapping[str, Exception]


def _raise_for(failures: Failures, key: str) -> None:
    if key in failures:
        raise failures[key]


class FakeKubernetes:
    """Fake KubernetesBackend (unit tests only): an apply makes the cell run the version,
    with ``health``; ``read`` is the matching services reader of the live snapshot."""

    def __init__(self, log: list[str], fail: Failures | None = None,
                 health: str = "Healthy") -> None:
        self.log, self.fail, self.health = log, dict(fail or {}), health
        self.live: dict[str, dict[str, ServiceLive]] = {}
        self.outputs_seen: dict[str, Mapping[str, Any]] = {}

    def run(self, cell: str, service: str, version: str, health: str = "Healthy",
            previous: str | None = None) -> None:
        """Set what a cell runs, as if applied earlier."""
        self.live.setdefault(cell, {})[service] = ServiceLive(
            Version.parse(version), health, Version.parse(previous) if previous else None)

    def apply(self, desired: DesiredState, cell: Cell, service: str, version: str,
              terraform_outputs: Mapping[str, Any]) -> str:
        self.log.append(f"kubernetes.apply {cell.name} {service} {version}")
        _raise_for(self.fail, cell.name)
        self.outputs_seen[cell.name] = dict(terraform_outputs)
        now = self.live.get(cell.name, {}).get(service)
        # as the real adapter records it: the version it ran, unless re-applied as it is
        old = now.version if now else None
        kept = now.previous_version if now else None
        previous = old if old is not None and str(old) != version else kept
        self.run(cell.name, service, version, self.health,
                 str(previous) if previous is not None else None)
        return f"{service} {version} applied in {cell.name}"

    def read(self, desired: DesiredState) -> Mapping[str, Mapping[str, ServiceLive]]:
        return {c: dict(s) for c, s in self.live.items()}


class FakeTerraform:
    """Fake TerraformBackend (unit tests only): an apply records the input hash the real
    adapter would record; ``read`` is the Terraform reader of the live snapshot."""

    def __init__(self, log: list[str], fail: Failures | None = None) -> None:
        self.log, self.fail = log, dict(fail or {})
        self.state: dict[str, dict[str, TerraformLive]] = {}

    def record(self, desired: DesiredState, cell: str, service: str, version: str,
               drifted: bool = False) -> None:
        """Set a stack as applied earlier with the inputs of ``version``."""
        h = terraform_input_hash(desired, desired.cells[cell], service, version)
        outputs = {"queue_url": f"https://queue.{cell}.example"}
        self.state.setdefault(cell, {})[service] = TerraformLive(h, drifted, outputs)

    def apply(self, desired: DesiredState, cell: Cell, service: str,
              version: str) -> Mapping[str, Any]:
        self.log.append(f"terraform.apply {cell.name} {service} {version}")
        _raise_for(self.fail, cell.name)
        self.record(desired, cell.name, service, version)
        return self.state[cell.name][service].outputs

    def outputs(self, desired: DesiredState, cell: Cell, service: str) -> Mapping[str, Any]:
        tf = self.state.get(cell.name, {}).get(service)
        return dict(tf.outputs) if tf else {}

    def read(self, desired: DesiredState) -> Mapping[str, Mapping[str, TerraformLive]]:
        return {c: dict(s) for c, s in self.state.items()}


#: The ledger phase each migration action records.
PHASES = {"expand": "expanded", "contract": "contracted", "rollback": "rolled-back"}


class FakeMigrations:
    """Fake MigrationBackend (unit tests only): records each phase run in a ledger per
    cell and database (as the real ledger table does), answers ``applied`` (or ``already
    applied`` for a re-run); ``read`` is the migration reader of the live snapshot."""

    def __init__(self, log: list[str], fail: Failures | None = None) -> None:
        self.log, self.fail = log, dict(fail or {})
        #: cell -> database -> migration id -> last phase
        self.ledger: dict[str, dict[str, dict[str, MigrationLive]]] = {}

    def run(self, desired: DesiredState, cell: str, migration: str, action: str) -> str:
        self.log.append(f"migrations.run {cell} {migration} {action}")
        _raise_for(self.fail, cell)
        m = next((m for m in desired.migrations if m.id == migration), None)
        entries = self.ledger.setdefault(cell, {}).setdefault(m.database if m else "main", {})
        phase = PHASES[str(action)]
        if migration in entries and entries[migration].phase == phase:
            return "already applied"
        entries[migration] = MigrationLive(phase)
        return "applied"

    def phase(self, cell: str, database: str, migration: str) -> str | None:
        m = self.ledger.get(cell, {}).get(database, {}).get(migration)
        return m.phase if m else None

    def read(self, desired: DesiredState) -> MigrationRead:
        return MigrationRead({c: {db: dict(m) for db, m in dbs.items()}
                              for c, dbs in self.ledger.items()})


@dataclass(frozen=True)
class Revert:
    """One revert the Git fake was asked to commit."""

    service: str
    groups: tuple[str, ...]
    version: str
    reason: str


class FakeGit:
    """Fake GitBackend (unit tests only): records each revert asked for (with its groups)
    and answers a made-up commit id."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, log: list[str], fail: Failures | None = None) -> None:
        self.log, self.fail = log, dict(fail or {})
        self.reverts: list[Revert] = []

    def revert(self, desired: DesiredState, service: str, groups: Sequence[str],
               version: str, reason: str) -> str:
        self.log.append(f"git.revert {service} {version}")
        _raise_for(self.fail, service)
        self.reverts.append(Revert(service, tuple(groups), version, reason))
        return self.COMMIT


class FakeProgress:
    """Fake ProgressStore (unit tests only): keeps bakes and failures in a dict, and is the
    rollout reader of the live snapshot (as the Git status documents are)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.waves: dict[str, dict[str, WaveProgress]] = {}

    def start_bake(self, service: str, wave: str, version: str, at: datetime) -> None:
        self.log.append(f"progress.start_bake {service} {wave} {version}")
        self.waves.setdefault(service, {})[wave] = WaveProgress(Version.parse(version), at)

    def record_failure(self, service: str, wave: str, version: str, reason: str) -> None:
        self.log.append(f"progress.record_failure {service} {wave} {version}")
        now = self.waves.get(service, {}).get(wave)
        self.waves.setdefault(service, {})[wave] = WaveProgress(
            now.version if now else Version.parse(version), now.bake_started_at if now else None,
            Version.parse(version), reason)

    def clear_failure(self, service: str, wave: str) -> bool:
        self.log.append(f"progress.clear_failure {service} {wave}")
        now = self.waves.get(service, {}).get(wave)
        if now is not None:
            self.waves[service][wave] = WaveProgress(now.version, now.bake_started_at)
        return True

    def rollout(self) -> Mapping[str, Mapping[str, WaveProgress]]:
        return {s: dict(w) for s, w in self.waves.items()}


class FakeDriftCheck:
    """Fake Terraform drift checker (unit tests only): records which stacks it was asked
    to plan and answers the changes (or raises the error) a test gives per cell."""

    def __init__(self, changes: Mapping[str, tuple[str, ...]] | None = None,
                 fail: Failures | None = None) -> None:
        self.changes, self.fail = dict(changes or {}), dict(fail or {})
        self.checked: list[tuple[str, str, str]] = []

    def __call__(self, desired: DesiredState, cell: Cell, service: str,
                 version: str) -> tuple[str, ...]:
        self.checked.append((cell.name, service, version))
        _raise_for(self.fail, cell.name)
        return self.changes.get(cell.name, ())


class Fakes:
    """One fake of each backend, sharing one call log; ``fail`` gives each fake (by
    backend name) the errors to raise."""

    def __init__(self, fail: Mapping[str, Failures] | None = None) -> None:
        f = fail or {}
        self.log: list[str] = []
        self.kubernetes = FakeKubernetes(self.log, f.get("kubernetes"))
        self.terraform = FakeTerraform(self.log, f.get("terraform"))
        self.migrations = FakeMigrations(self.log, f.get("migrations"))
        self.git = FakeGit(self.log, f.get("git"))
        self.progress = FakeProgress(self.log)

    def backends(self, without: Sequence[str] = ()) -> Backends:
        """The fakes as the executor's backends; those named in ``without`` are absent."""
        return Backends(
            kubernetes=None if "kubernetes" in without else self.kubernetes,
            terraform=None if "terraform" in without else self.terraform,
            migrations=None if "migrations" in without else self.migrations,
            git=None if "git" in without else self.git,
            progress=self.progress)

    def readers(self, drift: FakeDriftCheck | None = None) -> Readers:
        """The fakes' state as the tick's snapshot readers."""
        return Readers(services=self.kubernetes.read, terraform=self.terraform.read,
                       rollout=self.progress.rollout, terraform_drift=drift)
