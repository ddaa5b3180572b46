"""Running the SQL files of a step inside the caller's transaction.

Owns: statement timeouts and turning a failing statement into an error naming the file,
line and column with PostgreSQL's own message. Never commits: the caller's transaction
holds the ledger row too, so a failure leaves schema and ledger as they were. A step with a
statement that would end or escape that transaction (``core.sqlcheck``: ``COMMIT``,
``SET statement_timeout``, ``VACUUM``, …) is refused before any of it runs, even when the
repository's validation was bypassed, and a statement that leaves the transaction anyway
stops the step before the next one.
"""

from __future__ import annotations

import psycopg
from psycopg.pq import TransactionStatus

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.migrations.connection import Target
from reconciler.adapters.migrations.ledger import Conn
from reconciler.adapters.migrations.pgerrors import (
    RETRY_SECONDS,
    describe_sql_error,
    is_temporary,
)
from reconciler.adapters.migrations.steps import StepTexts
from reconciler.core.sqlcheck import check_sql
from reconciler.core.sqlscript import Statement, split_statements


def _statement_error(target: Target, where: str, path: str, source: str,
                     statement: Statement, exc: psycopg.Error) -> Exception:
    pos = exc.diag.statement_position
    line, col = statement.position(source, int(pos) if pos and pos.isdigit() else 1)
    message = target.redact(f"{path}:{line}:{col}: {describe_sql_error(exc)} ({where})")
    if is_temporary(exc):
        return TemporaryError(message, RETRY_SECONDS)
    return PermanentError(message)


def _refuse_forbidden(target: Target, step: StepTexts, where: str) -> None:
    problems = [p for path, source in step.files for p in check_sql(path, source)]
    if problems:
        raise PermanentError(target.redact("; ".join(str(p) for p in problems)
                                           + f" ({where}; nothing of the step was run)"))


def run_sql_step(conn: Conn, target: Target, step: StepTexts, where: str) -> int:
    """Execute every statement of ``step``'s files in order; the number executed."""
    _refuse_forbidden(target, step, where)
    timeout_ms = max(step.timeout_seconds, 0) * 1000
    conn.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
    count = 0
    for path, source in step.files:
        for statement in split_statements(source):
            try:
                conn.execute(statement.text)
            except psycopg.Error as exc:
                raise _statement_error(target, where, path, source, statement, exc) from None
            if conn.info.transaction_status != TransactionStatus.INTRANS:
                line, col = statement.position(source)
                raise PermanentError(target.redact(
                    f"{path}:{line}:{col}: the statement left the step's transaction "
                    f"({where})"))
            count += 1
    conn.execute("SET LOCAL statement_timeout = 0")
    return count
