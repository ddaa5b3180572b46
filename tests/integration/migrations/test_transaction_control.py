"""A SQL step is one transaction with its ledger row (issue #14 item 8).

A probe put ``COMMIT;`` in the middle of an expand file: the statements before it were
committed with no ledger row, and every retry failed on the half-made schema. Now such a
file rejects the revision at ``validate`` time, the runner refuses it before running any
of it when validation is bypassed, and any failure inside a step — in a statement or in
writing the ledger row — leaves neither the step's changes nor a ledger row.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.migrations import run_phase
from reconciler.adapters.migrations.ledger import DDL

from .conftest import CELLS, REPO_ROOT, Fleet, sql_migration

pytestmark = pytest.mark.postgres
EXPAND = "migrations/api/sql/0007-expand.sql"
HALF_COMMITTED = ("CREATE TABLE part_one (id int);\n"
                  "INSERT INTO part_one VALUES (1);\n"
                  "COMMIT;\n"
                  "CREATE TABLE part_two (id int);\n")


def test_validate_rejects_commit_in_an_expand_file(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "example-repo", repo)
    expand = repo / EXPAND
    expand.write_text(HALF_COMMITTED + expand.read_text())
    # from inside the repository, as a person would: paths are shown relative to it
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "validate", "."],
                          capture_output=True, text=True, timeout=120, check=False, cwd=repo,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert f"{EXPAND}:3:1: transaction control statement COMMIT is not allowed in a " \
           "migration step: a migration step runs in one transaction with its ledger " \
           "row, which the reconciler commits" in lines, proc.stderr
    assert "1 error: desired state rejected" in lines


def test_commit_forced_through_the_runner_leaves_nothing(fleet: Fleet) -> None:
    files = {"m/half.sql": HALF_COMMITTED}
    desired = fleet.with_files(files, sql_migration("0020-half", list(files)))
    for _ in range(2):  # a retry meets the same clean database and the same refusal
        with pytest.raises(PermanentError) as err:
            run_phase(desired, CELLS[0], "0020-half", "expand", env=fleet.env)
        assert str(err.value).startswith("m/half.sql:3:1: transaction control statement "
                                         "COMMIT is not allowed")
        assert "nothing of the step was run" in str(err.value)
        assert fleet.columns(CELLS[0], "part_one") == []
        assert fleet.columns(CELLS[0], "part_two") == []
        assert fleet.ledger(CELLS[0]) == []


@pytest.mark.parametrize(("statement", "fragment"), [
    ("ROLLBACK;", "transaction control statement ROLLBACK"),
    ("END;", "transaction control statement END"),
    ("SAVEPOINT s;", "transaction control statement SAVEPOINT"),
    ("SET statement_timeout = 0;", "SET statement_timeout is not allowed"),
    ("SET SESSION lock_timeout = 0;", "SET SESSION lock_timeout is not allowed"),
    ("RESET ALL;", "RESET ALL is not allowed"),
    ("SET ROLE postgres;", "SET ROLE is not allowed"),
    ("CREATE INDEX CONCURRENTLY p1 ON part_one (id);",
     "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"),
])
def test_runner_refuses_every_forbidden_kind_before_running(fleet: Fleet, statement: str,
                                                            fragment: str) -> None:
    files = {"m/f.sql": f"CREATE TABLE part_one (id int);\n{statement}\n"
                        "CREATE TABLE part_two (id int);\n"}
    desired = fleet.with_files(files, sql_migration("0021-f", list(files)))
    with pytest.raises(PermanentError, match=r"^m/f\.sql:2:1: ") as err:
        run_phase(desired, CELLS[1], "0021-f", "expand", env=fleet.env)
    assert fragment in str(err.value)
    assert fleet.columns(CELLS[1], "part_one") == []
    assert fleet.ledger(CELLS[1]) == []


def test_failure_in_the_middle_of_a_step_leaves_nothing_then_rerun_is_a_noop(
        fleet: Fleet) -> None:
    broken = ("CREATE TABLE staged (id serial PRIMARY KEY, v int);\n"
              "INSERT INTO staged (v) SELECT g FROM generate_series(1, 100) g;\n"
              "CREATE INDEX staged_v ON staged (v);\n"
              "UPDATE staged SET v = v / (v - 50);\n"
              "CREATE TABLE after_failure (id int);\n")
    desired = fleet.with_files({"m/s.sql": broken}, sql_migration("0022-s", ["m/s.sql"]))
    with pytest.raises(PermanentError, match=r"^m/s\.sql:4:1: division by zero"):
        run_phase(desired, CELLS[2], "0022-s", "expand", env=fleet.env)
    assert fleet.query(CELLS[2], "SELECT count(*) FROM pg_class WHERE relname LIKE "
                                 "'staged%' OR relname = 'after_failure'") == "0"
    assert fleet.ledger(CELLS[2]) == []

    fixed = broken.replace("v / (v - 50)", "v * 2")
    desired = fleet.with_files({"m/s.sql": fixed}, sql_migration("0022-s", ["m/s.sql"]),
                               revision="rev-2")
    outcomes = [run_phase(desired, CELLS[2], "0022-s", "expand", env=fleet.env).outcome
                for _ in range(2)]
    assert outcomes == ["applied", "unchanged"]
    assert fleet.query(CELLS[2], "SELECT count(*), max(v) FROM staged") == "100|200"
    assert fleet.ledger(CELLS[2]) == ["0022-s:expanded"]


def test_a_ledger_row_that_cannot_be_written_undoes_the_step(fleet: Fleet) -> None:
    cell = CELLS[0]
    for statement in DDL:
        fleet.query(cell, statement)
    fleet.query(cell, "CREATE FUNCTION reconciler.refuse() RETURNS trigger LANGUAGE plpgsql "
                      "AS $$ BEGIN RAISE EXCEPTION 'ledger refused'; END $$")
    fleet.query(cell, "CREATE TRIGGER refuse BEFORE INSERT ON reconciler.migration_ledger "
                      "FOR EACH ROW EXECUTE FUNCTION reconciler.refuse()")
    files = {"m/l.sql": "CREATE TABLE with_ledger (id int);\nINSERT INTO with_ledger "
                        "VALUES (1);\n"}
    desired = fleet.with_files(files, sql_migration("0023-l", list(files)))
    with pytest.raises(PermanentError, match="ledger refused"):
        run_phase(desired, cell, "0023-l", "expand", env=fleet.env)
    assert fleet.columns(cell, "with_ledger") == []
    assert fleet.ledger(cell) == []

    fleet.query(cell, "DROP TRIGGER refuse ON reconciler.migration_ledger")
    assert run_phase(desired, cell, "0023-l", "expand", env=fleet.env).outcome == "applied"
    assert fleet.query(cell, "SELECT count(*) FROM with_ledger") == "1"
    assert fleet.ledger(cell) == ["0023-l:expanded"]
