"""The ledger table in every target database, and the rules for reading it.

Owns: the table ``reconciler.migration_ledger`` (append-only; one row per phase done, with
the revision, the step's checksum and the time), the advisory lock serialising every
runner on one database, and the decision whether a requested phase runs, is a no-op, or
is refused. A *generation* is the rows since the last rollback: the phases in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.migrations.steps import StepTexts

LEDGER_TABLE = "reconciler.migration_ledger"
# pg_advisory_xact_lock key: first 63 bits of sha256("reconciler.migration_ledger").
LOCK_KEY = 0x2F1C7B4E9A3D5C61
DDL = (
    "CREATE SCHEMA IF NOT EXISTS reconciler",
    f"""CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
        seq bigserial PRIMARY KEY,
        migration_id text NOT NULL,
        service text NOT NULL,
        phase text NOT NULL CHECK (phase IN ('expanded', 'contracted', 'rolled-back')),
        step_kind text NOT NULL,
        checksum text NOT NULL,
        revision text NOT NULL,
        cell text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        applied_by text NOT NULL DEFAULT current_user)""",
    f"CREATE INDEX IF NOT EXISTS migration_ledger_by_id ON {LEDGER_TABLE} (migration_id, seq)",
)
RELEVANT = {"expand": ("expanded",), "contract": ("expanded", "contracted"),
            "rollback": ("expanded", "rolled-back")}


@dataclass(frozen=True)
class LedgerRow:
    """One recorded phase of one migration."""

    migration_id: str
    phase: str
    checksum: str
    revision: str
    step_kind: str
    at: datetime


@dataclass(frozen=True)
class Decision:
    """What to do with a requested phase: ``run``, ``unchanged`` (done) or ``skipped``."""

    verdict: str
    reason: str = ""


Conn = psycopg.Connection[tuple[object, ...]]


def lock_and_prepare(conn: Conn, lock_wait_seconds: int) -> None:
    """Inside a transaction: take the database's migration lock, create the ledger."""
    conn.execute(f"SET LOCAL lock_timeout = '{int(lock_wait_seconds * 1000)}ms'")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    conn.execute("SET LOCAL lock_timeout = 0")
    for statement in DDL:
        conn.execute(statement)


def ledger_exists(conn: Conn) -> bool:
    """Whether the ledger table exists in this database."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (LEDGER_TABLE,)).fetchone()
    return bool(row and row[0])


def read_rows(conn: Conn, migration_id: str | None = None) -> list[LedgerRow]:
    """Every ledger row (of one migration, or all) in the order they were recorded."""
    query = (f"SELECT migration_id, phase, checksum, revision, step_kind, applied_at "
             f"FROM {LEDGER_TABLE}")
    if migration_id is None:
        rows = conn.execute(query + " ORDER BY seq").fetchall()
    else:
        rows = conn.execute(query + " WHERE migration_id = %s ORDER BY seq",
                            (migration_id,)).fetchall()
    return [LedgerRow(*row) for row in rows]  # type: ignore[arg-type]


def record(conn: Conn, cell: str, service: str, migration_id: str, step: StepTexts,
           revision: str) -> None:
    """Append the row saying ``step`` was done."""
    conn.execute(
        f"INSERT INTO {LEDGER_TABLE} (migration_id, service, phase, step_kind, checksum, "
        "revision, cell) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (migration_id, service, step.phase, step.kind, step.checksum, revision, cell))


def generation(rows: Sequence[LedgerRow]) -> list[LedgerRow]:
    """The rows in force: from the last ``rolled-back`` row on (or all rows)."""
    last = max((i for i, r in enumerate(rows) if r.phase == "rolled-back"), default=-1)
    return list(rows[last:]) if last >= 0 else list(rows)


def verify(rows: Sequence[LedgerRow], action: str, checksums: dict[str, str]) -> None:
    """Refuse when a done step relevant to ``action`` changed since it was recorded."""
    for row in rows:
        if row.phase in RELEVANT[action] and checksums.get(row.phase) != row.checksum:
            raise PermanentError(
                f"migration {row.migration_id}: the step recorded as {row.phase} at "
                f"revision {row.revision} has changed (checksum {row.checksum[:12]} in the "
                f"ledger, {str(checksums.get(row.phase))[:12]} now); a done step is never "
                "re-run: restore its files or write a new migration")


def decide(rows: Sequence[LedgerRow], action: str, checksums: dict[str, str]) -> Decision:
    """Whether ``action`` runs given the ledger ``rows`` of its migration."""
    current = generation(rows)
    latest = current[-1].phase if current else None
    if action == "expand" and latest == "rolled-back":
        return Decision("run")
    verify(current, action, checksums)
    return _decide_phase(action, latest)


def _decide_phase(action: str, latest: str | None) -> Decision:
    if action == "expand":
        return Decision("unchanged") if latest in ("expanded", "contracted") else Decision("run")
    if action == "contract":
        if latest == "contracted":
            return Decision("unchanged")
        if latest == "expanded":
            return Decision("run")
        raise PermanentError(f"cannot contract: the migration is {latest or 'not expanded'}")
    if latest == "contracted":
        raise PermanentError("rollback refused: the migration is contracted; rolling back "
                             "needs a restore or a forward fix")
    if latest == "rolled-back":
        return Decision("unchanged")
    if latest == "expanded":
        return Decision("run")
    return Decision("skipped", "never expanded here: nothing to roll back")
