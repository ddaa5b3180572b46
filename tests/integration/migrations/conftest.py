"""Fixtures for the migrations adapter: one real PostgreSQL cluster per session, fresh
databases (one per cell) per test, and the example repository rewired to reach them."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.adapters.fs.source import DirectorySource
from reconciler.core.loader import load_repository
from reconciler.core.model import DesiredState, Migration, MigrationStep, SourceRef
from reconciler.core.versions import VersionRange
from reconciler.localparts.postgres import PostgresCluster, PostgresUnavailable, start_cluster

REPO_ROOT = Path(__file__).resolve().parents[3]
CELLS = ("euw1-canary-01", "euw1-canary-02", "euw1-a-01")
SECRET_ENV = "TEST_CELL_DB_SECRET"


def unavailable(reason: str) -> None:
    """Fail in CI (the component must be there), skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresCluster]:
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        unavailable(f"PostgreSQL not available: {exc}")
        raise
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def example() -> DesiredState:
    result = load_repository(DirectorySource(REPO_ROOT / "example-repo", revision="rev-1"))
    assert result.desired is not None, result.errors
    return result.desired


@dataclass
class Fleet:
    """Three cells of the example repository, each with its own fresh database."""

    pg: PostgresCluster
    desired: DesiredState
    dbnames: dict[str, str]
    env: dict[str, str]

    def query(self, cell: str, sql: str) -> str:
        return self.pg.psql(sql, self.dbnames[cell])

    def ledger(self, cell: str) -> list[str]:
        """``migration_id:phase`` rows of the cell's ledger, oldest first ([] if none)."""
        if self.query(cell, "SELECT to_regclass('reconciler.migration_ledger')") == "":
            return []
        out = self.query(cell, "SELECT migration_id || ':' || phase "
                               "FROM reconciler.migration_ledger ORDER BY seq")
        return out.splitlines()

    def columns(self, cell: str, table: str) -> list[str]:
        return self.query(cell, "SELECT column_name FROM information_schema.columns "
                                f"WHERE table_name = '{table}' ORDER BY ordinal_position"
                          ).splitlines()

    def with_files(self, files: dict[str, str], *migrations: Migration,
                   revision: str | None = None) -> DesiredState:
        """The fleet's desired state with more migrations and file texts."""
        return dataclasses.replace(
            self.desired, revision=revision or self.desired.revision,
            migrations=self.desired.migrations + migrations,
            files={**self.desired.files, **files})


def rewire(desired: DesiredState, pg: PostgresCluster, dbnames: dict[str, str]) -> DesiredState:
    """Only ``dbnames``' cells, their database ``main`` pointed at the test cluster."""
    cells = {}
    for name, dbname in dbnames.items():
        cell = desired.cells[name]
        main = dataclasses.replace(cell.databases[0], host=pg.host, port=pg.port,
                                   user=pg.user, dbname=dbname, secret_env=SECRET_ENV)
        cells[name] = dataclasses.replace(cell, databases=(main,))
    return dataclasses.replace(desired, cells=cells)


@pytest.fixture
def fleet(pg: PostgresCluster, example: DesiredState) -> Fleet:
    tag = uuid.uuid4().hex[:8]
    dbnames = {c: f"t_{tag}_{c.replace('-', '_')}" for c in CELLS}
    for dbname in dbnames.values():
        pg.create_database(dbname)
    return Fleet(pg, rewire(example, pg, dbnames), dbnames, {SECRET_ENV: pg.password})


def sql_migration(mid: str, expand: list[str], contract: list[str] | None = None,
                  rollback: list[str] | None = None, kind: str = "sql") -> Migration:
    """A migration of service ``api`` on database ``main`` with the given SQL files."""
    def step(files: list[str] | None) -> MigrationStep | None:
        return MigrationStep("sql", tuple(files), timeout_seconds=30) if files else None

    return Migration(mid, "api", "main", VersionRange.parse(">=2.0.0"),
                     VersionRange.parse("<2.0.0"), 0, MigrationStep(kind, tuple(expand)),
                     step(contract), step(rollback), SourceRef(f"migrations/api/{mid}.yaml"))
