"""Reading the ledgers: which migrations are in which phase, per cell and database.

Owns: the migrations part of the live snapshot
(``LiveSnapshot.databases``: cell -> database -> migration id -> ``MigrationLive``),
from the latest row in force of each migration. A database without a ledger yet reports
nothing done. Read-only: never creates the ledger.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import psycopg

from reconciler.adapters.migrations.connection import connect, resolve
from reconciler.adapters.migrations.ledger import (
    LedgerRow,
    generation,
    ledger_exists,
    read_rows,
)
from reconciler.adapters.migrations.pgerrors import session_error
from reconciler.core.live import MigrationLive
from reconciler.core.model import Cell, DatabaseRef, DesiredState


def read_phases(cell: str, ref: DatabaseRef,
                env: Mapping[str, str] | None = None) -> dict[str, MigrationLive]:
    """Migration id -> its phase in force in one database (latest row since a rollback)."""
    target = resolve(cell, ref, os.environ if env is None else env)
    with connect(target) as conn:
        try:
            rows = read_rows(conn) if ledger_exists(conn) else []
        except psycopg.Error as exc:
            raise session_error(target, exc, "reading the migration ledger") from None
    by_id: dict[str, list[LedgerRow]] = {}
    for row in rows:
        by_id.setdefault(row.migration_id, []).append(row)
    return {mid: _live(generation(history)[-1]) for mid, history in sorted(by_id.items())}


def _live(row: LedgerRow) -> MigrationLive:
    return MigrationLive(row.phase, row.at, row.checksum)


def migration_databases(desired: DesiredState, cell: Cell) -> tuple[DatabaseRef, ...]:
    """The cell's databases that some migration targets."""
    names = {m.database for m in desired.migrations}
    return tuple(d for d in cell.databases if d.name in names)


def migration_phases(desired: DesiredState, cells: Iterable[str] | None = None,
                     env: Mapping[str, str] | None = None,
                     ) -> dict[str, dict[str, dict[str, MigrationLive]]]:
    """cell -> database -> migration id -> phase, for ``cells`` (default: every cell).

    Raises the first adapter error (an unreachable database is a ``TemporaryError``);
    callers wanting partial results call ``read_phases`` per database.
    """
    out: dict[str, dict[str, dict[str, MigrationLive]]] = {}
    for name in sorted(desired.cells if cells is None else cells):
        cell = desired.cells[name]
        out[name] = {ref.name: read_phases(name, ref, env)
                     for ref in migration_databases(desired, cell)}
    return out
