"""Expand / contract / rollback against a real PostgreSQL, one database per cell."""

from __future__ import annotations

import threading

import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.migrations import migration_phases, run_phase

from .conftest import CELLS, Fleet, sql_migration

pytestmark = pytest.mark.postgres
EXAMPLE = "0007-order-currency"


def test_expand_then_contract_across_three_cells(fleet: Fleet) -> None:
    for cell in CELLS:
        result = run_phase(fleet.desired, cell, EXAMPLE, "expand", env=fleet.env)
        assert (result.outcome, result.phase, result.database) == ("applied", "expanded", "main")
        assert fleet.columns(cell, "orders") == ["id", "amount_cents", "currency",
                                                 "currency_code"]
    fleet.query(CELLS[0], "INSERT INTO orders (amount_cents, currency) VALUES (100, 'usd')")
    assert fleet.query(CELLS[0], "SELECT currency_code FROM orders") == "USD"
    phases = migration_phases(fleet.desired, env=fleet.env)
    assert {c: phases[c]["main"][EXAMPLE].phase for c in CELLS} == dict.fromkeys(
        CELLS, "expanded")

    for cell in CELLS:
        assert run_phase(fleet.desired, cell, EXAMPLE, "contract",
                         env=fleet.env).outcome == "applied"
        assert fleet.columns(cell, "orders") == ["id", "amount_cents", "currency_code"]
        assert fleet.ledger(cell) == [f"{EXAMPLE}:expanded", f"{EXAMPLE}:contracted"]
    phases = migration_phases(fleet.desired, env=fleet.env)
    live = phases[CELLS[2]]["main"][EXAMPLE]
    assert live.phase == "contracted" and live.at is not None and len(live.checksum) == 64
    assert fleet.query(CELLS[1], "SELECT DISTINCT revision FROM reconciler.migration_ledger"
                       ) == "rev-1"


def test_report_on_databases_without_ledger_is_empty(fleet: Fleet) -> None:
    assert migration_phases(fleet.desired, env=fleet.env) == {c: {"main": {}} for c in CELLS}
    assert fleet.ledger(CELLS[0]) == []  # reading never creates the ledger


def test_failing_expand_leaves_ledger_and_schema_unchanged(fleet: Fleet) -> None:
    files = {"m/001.sql": "CREATE TABLE widgets (id int);\n",
             "m/002.sql": "-- second file\nALTER TABLE widgets\n  ADD COLUMN name txet;\n"}
    desired = fleet.with_files(files, sql_migration("0008-widgets", list(files)))
    with pytest.raises(PermanentError) as err:
        run_phase(desired, CELLS[0], "0008-widgets", "expand", env=fleet.env)
    message = str(err.value)
    assert message.startswith("m/002.sql:3:19: type \"txet\" does not exist (SQLSTATE 42704)")
    assert "0008-widgets expand in euw1-canary-01/main" in message
    assert fleet.columns(CELLS[0], "widgets") == []
    assert fleet.ledger(CELLS[0]) == []


def test_runtime_error_without_position_names_the_statement_line(fleet: Fleet) -> None:
    files = {"m/e.sql": "CREATE TABLE t (a int NOT NULL);\n\nINSERT INTO t\n"
                        "  VALUES (1), (NULL);\n"}
    desired = fleet.with_files(files, sql_migration("0009-t", list(files)))
    with pytest.raises(PermanentError, match=r"^m/e\.sql:3:1: null value in column \"a\""):
        run_phase(desired, CELLS[1], "0009-t", "expand", env=fleet.env)
    assert fleet.columns(CELLS[1], "t") == []


def test_rerun_is_a_noop(fleet: Fleet) -> None:
    # Not idempotent SQL: a real second run would fail with "already exists".
    files = {"m/x.sql": "CREATE TABLE once (id int);\nINSERT INTO once VALUES (1);\n"}
    desired = fleet.with_files(files, sql_migration("0010-once", list(files)))
    first = run_phase(desired, CELLS[0], "0010-once", "expand", env=fleet.env)
    second = run_phase(desired, CELLS[0], "0010-once", "expand", env=fleet.env)
    assert (first.outcome, second.outcome) == ("applied", "unchanged")
    assert first.checksum == second.checksum
    assert fleet.query(CELLS[0], "SELECT count(*) FROM once") == "1"
    assert fleet.ledger(CELLS[0]) == ["0010-once:expanded"]


def test_concurrent_runners_apply_once(fleet: Fleet) -> None:
    files = {"m/x.sql": "CREATE TABLE raced (id int);\nSELECT pg_sleep(0.2);\n"}
    desired = fleet.with_files(files, sql_migration("0011-race", list(files)))
    outcomes: list[str] = []

    def runner() -> None:
        outcomes.append(run_phase(desired, CELLS[2], "0011-race", "expand",
                                  env=fleet.env).outcome)

    threads = [threading.Thread(target=runner) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["applied", "unchanged", "unchanged"]
    assert fleet.ledger(CELLS[2]) == ["0011-race:expanded"]


def test_rollback_before_contract_and_refused_after(fleet: Fleet) -> None:
    cell = CELLS[0]
    run_phase(fleet.desired, cell, EXAMPLE, "expand", env=fleet.env)
    rolled = run_phase(fleet.desired, cell, EXAMPLE, "rollback", env=fleet.env)
    assert (rolled.outcome, rolled.phase) == ("applied", "rolled-back")
    assert fleet.columns(cell, "orders") == ["id", "amount_cents", "currency"]
    assert run_phase(fleet.desired, cell, EXAMPLE, "rollback", env=fleet.env).outcome == (
        "unchanged")
    live = migration_phases(fleet.desired, [cell], env=fleet.env)[cell]["main"][EXAMPLE]
    assert live.phase == "rolled-back"
    with pytest.raises(PermanentError, match="cannot contract: the migration is rolled-back"):
        run_phase(fleet.desired, cell, EXAMPLE, "contract", env=fleet.env)

    # Forward again: a new generation, then contract; now rollback is refused.
    assert run_phase(fleet.desired, cell, EXAMPLE, "expand", env=fleet.env).outcome == "applied"
    run_phase(fleet.desired, cell, EXAMPLE, "contract", env=fleet.env)
    with pytest.raises(PermanentError, match="rollback refused: the migration is contracted"):
        run_phase(fleet.desired, cell, EXAMPLE, "rollback", env=fleet.env)
    assert fleet.ledger(cell) == [f"{EXAMPLE}:{p}" for p in
                                  ("expanded", "rolled-back", "expanded", "contracted")]


def test_rollback_of_a_migration_never_expanded_is_skipped(fleet: Fleet) -> None:
    result = run_phase(fleet.desired, CELLS[1], EXAMPLE, "rollback", env=fleet.env)
    assert result.outcome == "skipped"
    assert fleet.ledger(CELLS[1]) == []


def test_contract_before_expand_is_refused(fleet: Fleet) -> None:
    with pytest.raises(PermanentError, match="cannot contract: the migration is not expanded"):
        run_phase(fleet.desired, CELLS[1], EXAMPLE, "contract", env=fleet.env)


def test_changed_checksum_of_a_done_step_is_rejected(fleet: Fleet) -> None:
    cell = CELLS[1]
    run_phase(fleet.desired, cell, EXAMPLE, "expand", env=fleet.env)
    path = "migrations/api/sql/0007-expand.sql"
    edited = fleet.with_files({path: fleet.desired.files[path] + "\n-- edited\n"},
                              revision="rev-2")
    for action in ("expand", "contract", "rollback"):
        with pytest.raises(PermanentError, match="recorded as expanded at revision rev-1 "
                                                 "has changed"):
            run_phase(edited, cell, EXAMPLE, action, env=fleet.env)
    assert fleet.ledger(cell) == [f"{EXAMPLE}:expanded"]
    assert "currency" in fleet.columns(cell, "orders")


def test_migration_without_contract_step_records_contract(fleet: Fleet) -> None:
    files = {"m/add.sql": "CREATE TABLE additive (id int);\n"}
    desired = fleet.with_files(files, sql_migration("0012-add", list(files)))
    run_phase(desired, CELLS[2], "0012-add", "expand", env=fleet.env)
    result = run_phase(desired, CELLS[2], "0012-add", "contract", env=fleet.env)
    assert result.outcome == "applied"
    assert fleet.ledger(CELLS[2]) == ["0012-add:expanded", "0012-add:contracted"]
    with pytest.raises(PermanentError, match="contracted"):
        run_phase(desired, CELLS[2], "0012-add", "rollback", env=fleet.env)


def test_database_restart_is_temporary_then_succeeds(fleet: Fleet) -> None:
    files = {"m/t.sql": "CREATE TABLE restart_probe (id int);\n"}
    desired = fleet.with_files(files, sql_migration("0013-restart", list(files)))
    fleet.pg.stop("fast")
    try:
        with pytest.raises(TemporaryError) as err:
            run_phase(desired, CELLS[0], "0013-restart", "expand", env=fleet.env)
        assert fleet.pg.password not in str(err.value)
    finally:
        fleet.pg.start()
    assert run_phase(desired, CELLS[0], "0013-restart", "expand",
                     env=fleet.env).outcome == "applied"
    assert fleet.ledger(CELLS[0]) == ["0013-restart:expanded"]
