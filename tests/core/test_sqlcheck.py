"""SQL steps that would end, escape or re-limit their one transaction are rejected on load.

Table-driven from fixture files: ``fixtures/sqlcheck/rejected.sql`` annotates each refused
statement with ``-- expect COL: fragment`` on the line before it; ``accepted.sql`` holds
look-alikes (``COMMIT`` in strings, comments and function bodies, a ``begin_at`` column,
``BEGIN ATOMIC`` bodies, harmless ``SET``) that must pass.
"""

from __future__ import annotations

import re

import pytest

from reconciler.core.loader import load_repository
from reconciler.core.sqlcheck import check_sql
from reconciler.core.sqlscript import split_statements
from tests.core.support import FIXTURES, base_files, overlay

SQL = FIXTURES / "sqlcheck"
REJECTED = (SQL / "rejected.sql").read_text()
ACCEPTED = (SQL / "accepted.sql").read_text()
_EXPECT = re.compile(r"^-- expect (\d+): (.*)$")


def _expectations() -> list[tuple[int, int, str]]:
    """(line, col, fragment) of every annotated statement in ``rejected.sql``."""
    out = []
    for number, line in enumerate(REJECTED.splitlines(), start=1):
        m = _EXPECT.match(line)
        if m:
            out.append((number + 1, int(m[1]), m[2]))
    return out


EXPECTED = _expectations()


@pytest.mark.parametrize(("line", "col", "fragment"), EXPECTED,
                         ids=[f"{line}:{frag}" for line, _, frag in EXPECTED])
def test_each_forbidden_statement_is_reported_at_its_position(line: int, col: int,
                                                              fragment: str) -> None:
    here = [p for p in check_sql("m/x.sql", REJECTED) if (p.line, p.col) == (line, col)]
    assert len(here) == 1, (line, col, [str(p) for p in check_sql("m/x.sql", REJECTED)])
    assert str(here[0]).startswith(f"m/x.sql:{line}:{col}: {fragment}")


@pytest.mark.parametrize(("line", "col", "fragment"), EXPECTED,
                         ids=[f"{line}:{frag}" for line, _, frag in EXPECTED])
def test_each_forbidden_statement_alone_is_rejected(line: int, col: int,
                                                    fragment: str) -> None:
    text = REJECTED.splitlines()[line - 1]
    problems = check_sql("a.sql", "SELECT 1;\n" + text + "\n")
    assert [str(p) for p in problems][:1] and str(problems[0]).startswith(
        f"a.sql:2:{col}: {fragment}")


def test_nothing_else_in_the_rejected_file_is_reported() -> None:
    found = {(p.line, p.col) for p in check_sql("m/x.sql", REJECTED)}
    assert found == {(line, col) for line, col, _ in EXPECTED}
    assert len(EXPECTED) >= 30


def test_look_alikes_are_accepted() -> None:
    assert [str(p) for p in check_sql("m/ok.sql", ACCEPTED)] == []


@pytest.mark.parametrize("text", [
    "ALTER TABLE t ADD COLUMN begin_at timestamptz;",
    "SELECT 'COMMIT;';",
    "SELECT $$ COMMIT; $$;",
    "SELECT $tag$ ROLLBACK; $tag$;",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;",
    "SELECT \"commit\" FROM t;",
    "UPDATE t SET statement_timeout = 1;",
    "CREATE INDEX concurrently_seen ON t (a);",
    "-- COMMIT;\nSELECT 1;",
    "SET search_path = app, public;",
])
def test_similar_statements_pass(text: str) -> None:
    assert check_sql("a.sql", text) == []


def test_begin_atomic_body_is_one_statement_and_what_follows_is_judged() -> None:
    text = ("CREATE FUNCTION s(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
            "  SELECT CASE WHEN a > 0 THEN 1 ELSE -1 END;\n  SELECT 2;\nEND;\nCOMMIT;\n")
    statements = split_statements(text)
    assert [s.text.split()[0].rstrip(";") for s in statements] == ["CREATE", "COMMIT"]
    assert statements[0].text.endswith("END;")
    assert [str(p)[:13] for p in check_sql("f.sql", text)] == ["f.sql:6:1: tr"]


def test_commit_in_an_expand_file_rejects_the_whole_revision() -> None:
    path = "migrations/app/m1-expand.sql"
    original = base_files()[path].decode()
    text = ("CREATE TABLE part_one (id int);\n"
            "INSERT INTO part_one VALUES (1);\n"
            "  COMMIT;\n" + original)
    result = load_repository(overlay({path: text}))
    assert result.desired is None
    assert [str(p) for p in result.errors] == [
        f"{path}:3:3: transaction control statement COMMIT is not allowed in a migration "
        "step: a migration step runs in one transaction with its ledger row, which the "
        "reconciler commits"]


def test_every_step_file_is_checked_and_each_file_once() -> None:
    changes = {"migrations/app/m1-contract.sql": "VACUUM;\n",
               "migrations/app/m1-rollback.sql": "SELECT 1;\nSET ROLE postgres;\n"}
    result = load_repository(overlay(changes))
    assert sorted(str(p).split(": ")[0] for p in result.errors) == [
        "migrations/app/m1-contract.sql:1:1", "migrations/app/m1-rollback.sql:2:1"]
