"""Running one phase (expand / contract / rollback) of one migration in one cell.

Owns: the order lock → ledger check → step → ledger row. SQL steps run in the same
transaction as their ledger row, under a transaction-scoped advisory lock, so a crash or
a lost connection at any point leaves either both or neither. Job steps cannot share a
transaction: the Job has a deterministic name (a re-run waits for the same Job instead of
starting another), and the ledger row is written after it completed, re-checked under
the lock. Returns what happened; raises only adapter errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import psycopg

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.migrations.connection import Target, connect, resolve
from reconciler.adapters.migrations.ledger import (
    RELEVANT,
    Decision,
    decide,
    lock_and_prepare,
    read_rows,
    record,
)
from reconciler.adapters.migrations.pgerrors import session_error
from reconciler.adapters.migrations.sql_runner import run_sql_step
from reconciler.adapters.migrations.steps import ACTIONS, StepTexts, resolve_step
from reconciler.core.model import Cell, DesiredState, Migration

LOCK_WAIT_SECONDS = 60


class JobRunner(Protocol):
    """Runs a ``job`` step to completion (see ``job_runner.MigrationJobRunner``)."""

    def run(self, desired: DesiredState, cell: Cell, migration: Migration,
            step: StepTexts) -> str:
        """Create (or find) the step's Job, wait until it completes; its name."""
        ...


@dataclass(frozen=True)
class PhaseResult:
    """The outcome of one phase in one cell's database."""

    cell: str
    database: str
    migration_id: str
    action: str  # expand | contract | rollback
    phase: str  # the ledger phase: expanded | contracted | rolled-back
    outcome: str  # applied | unchanged | skipped
    checksum: str
    detail: str = ""


@dataclass(frozen=True)
class _Run:
    desired: DesiredState
    cell: Cell
    migration: Migration
    step: StepTexts
    checksums: dict[str, str]
    target: Target

    @property
    def where(self) -> str:
        return f"migration {self.migration.id} {self.step.action} in {self.target.label}"

    def result(self, outcome: str, detail: str = "") -> PhaseResult:
        return PhaseResult(self.cell.name, self.target.ref.name, self.migration.id,
                           self.step.action, self.step.phase, outcome, self.step.checksum,
                           detail)


def find_migration(desired: DesiredState, migration_id: str) -> Migration:
    """The migration with id ``migration_id``."""
    found = next((m for m in desired.migrations if m.id == migration_id), None)
    if found is None:
        raise PermanentError(f"no migration {migration_id} at {desired.revision}")
    return found


def _prepare(desired: DesiredState, cell_name: str, migration_id: str, action: str,
             env: Mapping[str, str]) -> _Run:
    if action not in ACTIONS:
        raise PermanentError(f"unknown migration action {action!r}")
    migration = find_migration(desired, migration_id)
    cell = desired.cells.get(cell_name)
    ref = cell.database(migration.database) if cell else None
    if cell is None or ref is None:
        raise PermanentError(f"cell {cell_name} has no database {migration.database} "
                             f"(migration {migration_id})")
    inverse = {phase: act for act, phase in ACTIONS.items()}
    checksums = {phase: resolve_step(desired, migration, inverse[phase]).checksum
                 for phase in RELEVANT[action]}
    step = resolve_step(desired, migration, action)
    return _Run(desired, cell, migration, step, checksums, resolve(cell.name, ref, env))


def _check(conn: psycopg.Connection[tuple[object, ...]], run: _Run,
           lock_wait: int) -> Decision:
    lock_and_prepare(conn, lock_wait)
    return decide(read_rows(conn, run.migration.id), run.step.action, run.checksums)


def _record(conn: psycopg.Connection[tuple[object, ...]], run: _Run) -> None:
    record(conn, run.cell.name, run.migration.service, run.migration.id, run.step,
           run.desired.revision)


def _run_in_transaction(run: _Run, lock_wait: int) -> PhaseResult:
    with connect(run.target) as conn:
        try:
            with conn.transaction():
                decision = _check(conn, run, lock_wait)
                if decision.verdict != "run":
                    return run.result(decision.verdict, decision.reason)
                if run.step.kind == "none" and run.step.action == "rollback":
                    return run.result("skipped", "the migration has no rollback step")
                if run.step.kind == "sql":
                    run_sql_step(conn, run.target, run.step, run.where)
                _record(conn, run)
        except psycopg.Error as exc:
            raise session_error(run.target, exc, run.where) from None
    return run.result("applied")


def _in_transaction(run: _Run, lock_wait: int, then_record: bool) -> Decision:
    with connect(run.target) as conn:
        try:
            with conn.transaction():
                decision = _check(conn, run, lock_wait)
                if then_record and decision.verdict == "run":
                    _record(conn, run)
                return decision
        except psycopg.Error as exc:
            raise session_error(run.target, exc, run.where) from None


def _run_job(run: _Run, jobs: JobRunner | None, lock_wait: int) -> PhaseResult:
    decision = _in_transaction(run, lock_wait, then_record=False)
    if decision.verdict != "run":
        return run.result(decision.verdict, decision.reason)
    if jobs is None:
        raise PermanentError(f"{run.where}: a job step needs a Kubernetes job runner")
    name = jobs.run(run.desired, run.cell, run.migration, run.step)
    again = _in_transaction(run, lock_wait, then_record=True)
    outcome = "applied" if again.verdict == "run" else again.verdict
    return run.result(outcome, f"job {name}")


def run_phase(desired: DesiredState, cell: str, migration_id: str, action: str, *,
              env: Mapping[str, str] | None = None, jobs: JobRunner | None = None,
              lock_wait_seconds: int = LOCK_WAIT_SECONDS) -> PhaseResult:
    """Run ``action`` (expand, contract, rollback) of a migration in one cell's database.

    A phase already recorded is a no-op (``unchanged``); a recorded step whose files
    changed, a contract before expand and a rollback after contract are refused with a
    ``PermanentError``; an unreachable or restarting server is a ``TemporaryError``.
    """
    run = _prepare(desired, cell, migration_id, action, os.environ if env is None else env)
    if run.step.kind == "job":
        return _run_job(run, jobs, lock_wait_seconds)
    return _run_in_transaction(run, lock_wait_seconds)
