"""Translating psycopg / PostgreSQL errors into temporary or permanent adapter errors.

Temporary: the server is unreachable, starting up or shutting down, the connection was
lost, too many connections, a lock wait, a deadlock or serialization failure. Permanent:
authentication, a missing database, and every SQL error of a step (with the server's
message, the step's file, line and column).
"""

from __future__ import annotations

from typing import Protocol

import psycopg

from reconciler.adapters.errors import AdapterError, PermanentError, TemporaryError

RETRY_SECONDS = 5.0
TEMPORARY_SQLSTATES = frozenset({"40001", "40P01", "55P03", "53300", "57P01", "57P02",
                                 "57P03", "57P05"})
TEMPORARY_CLASSES = ("08", "53", "58")
PERMANENT_CONNECT_TEXT = ("authentication failed", "does not exist", "no pg_hba.conf entry",
                          "permission denied", "role ", "SSL required", "unsupported")


class TargetLike(Protocol):
    """What a message needs of the database it is about (``connection.Target`` is one):
    a safe name and a way to remove secrets. A protocol, so this module imports nothing
    from ``connection`` (which imports this one)."""

    @property
    def label(self) -> str: ...

    def redact(self, text: str) -> str: ...


def is_temporary(exc: psycopg.Error) -> bool:
    """Whether retrying later may succeed."""
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state in TEMPORARY_SQLSTATES or state.startswith(TEMPORARY_CLASSES)


def first_line(text: str) -> str:
    """The first non-empty line of a library message."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())


def connect_error(target: TargetLike, exc: psycopg.Error) -> AdapterError:
    """The adapter error for a failed connection attempt."""
    text = target.redact(first_line(str(exc)))
    message = f"database {target.label}: {text}"
    if any(marker in text for marker in PERMANENT_CONNECT_TEXT):
        return PermanentError(message)
    return TemporaryError(message, RETRY_SECONDS)


def session_error(target: TargetLike, exc: psycopg.Error, doing: str) -> AdapterError:
    """The adapter error for a failure outside a step's own SQL (ledger, lock, commit)."""
    text = target.redact(first_line(str(exc)))
    message = f"database {target.label}: {doing}: {text}"
    if is_temporary(exc):
        return TemporaryError(message, RETRY_SECONDS)
    return PermanentError(message)


def describe_sql_error(exc: psycopg.Error) -> str:
    """PostgreSQL's message with its SQLSTATE, detail and hint."""
    diag = exc.diag
    parts = [diag.message_primary or first_line(str(exc))]
    if exc.sqlstate:
        parts[0] += f" (SQLSTATE {exc.sqlstate})"
    parts += [f"{label}: {value}" for label, value in
              (("detail", diag.message_detail), ("hint", diag.message_hint),
               ("where", diag.context)) if value]
    return "; ".join(parts)
