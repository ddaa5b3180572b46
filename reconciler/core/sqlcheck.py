"""Statements a migration's SQL step may not contain, found when the repository is loaded.

Owns: the rule that a SQL step runs as one transaction together with its ledger row, so a
step must neither control that transaction (``BEGIN``, ``START TRANSACTION``, ``COMMIT``,
``END``, ``ROLLBACK``, ``ABORT``, ``SAVEPOINT``, ``RELEASE``, ``PREPARE TRANSACTION``,
``SET TRANSACTION``), nor change the limits and identity it runs under (``SET`` /
``RESET`` of ``statement_timeout``, ``lock_timeout``, ``idle_in_transaction_session_timeout``,
``transaction_timeout``, ``SET ROLE``, ``SET SESSION AUTHORIZATION``, ``RESET ALL``,
``DISCARD``), nor run a statement PostgreSQL refuses inside a transaction block
(``VACUUM``, ``… INDEX CONCURRENTLY``, ``CREATE`` / ``DROP DATABASE`` or ``TABLESPACE``,
``ALTER SYSTEM``). ``SAVEPOINT`` and ``ROLLBACK TO SAVEPOINT`` are rejected too: they are
transaction control, and a step that needs them is a step to split.
The check is lexical (``sqlscript`` knows quotes, dollar quotes and comments): it judges
each statement by its first keywords, so the words inside a string, a dollar-quoted
function body or an identifier (``begin_at``) never count. Pure: no I/O.
"""

from __future__ import annotations

from reconciler.core.sqlscript import leading_words, split_statements
from reconciler.core.yamldoc import Problem

_ONE_TRANSACTION = ("a migration step runs in one transaction with its ledger row, which "
                    "the reconciler commits")
_TRANSACTION_WORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT",
                                "RELEASE"})
LIMITS = frozenset({"STATEMENT_TIMEOUT", "LOCK_TIMEOUT", "IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
                    "TRANSACTION_TIMEOUT"})
_IDENTITY = frozenset({"ROLE", "SESSION_AUTHORIZATION"})
_NO_TRANSACTION_BLOCK = {("CREATE", "DATABASE"), ("DROP", "DATABASE"),
                         ("CREATE", "TABLESPACE"), ("DROP", "TABLESPACE"),
                         ("ALTER", "SYSTEM")}


def _transaction(words: list[str]) -> str | None:
    first = words[0]
    if first in _TRANSACTION_WORDS or words[:2] in (["START", "TRANSACTION"],
                                                    ["PREPARE", "TRANSACTION"]):
        name = " ".join(words[:2]) if first in ("START", "PREPARE") else first
        return (f"transaction control statement {name} is not allowed in a migration "
                f"step: {_ONE_TRANSACTION}")
    return None


def _setting_name(words: list[str]) -> tuple[str, list[str]]:
    """What a ``SET`` / ``RESET`` changes, and the words naming it as written."""
    rest = words[1:]
    if words[0] == "SET" and rest[:1] in (["SESSION"], ["LOCAL"]) and rest[1:2] not in (
            ["AUTHORIZATION"], ["CHARACTERISTICS"]):
        rest = rest[1:]
    shown = words[:len(words) - len(rest)]
    if rest[:2] in (["SESSION", "AUTHORIZATION"], ["SESSION", "CHARACTERISTICS"]):
        return "_".join(rest[:2]), shown + rest[:2]
    return (rest[0], shown + rest[:1]) if rest else ("", shown)


def _setting(words: list[str]) -> str | None:
    if words[0] not in ("SET", "RESET"):
        return None
    name, shown = _setting_name(words)
    what = " ".join(w.lower() if w in LIMITS else w for w in shown)
    if name in ("TRANSACTION", "SESSION_CHARACTERISTICS"):
        return f"{what} is not allowed in a migration step: {_ONE_TRANSACTION}"
    if name in LIMITS:
        return (f"{what} is not allowed in a migration step: the step's time limit is its "
                "'timeout' field, and the reconciler sets it")
    if name in _IDENTITY:
        return (f"{what} is not allowed in a migration step: a step runs as the database "
                "user the operator configured")
    if words[0] == "RESET" and name == "ALL":
        return ("RESET ALL is not allowed in a migration step: it would drop the time limit "
                "the reconciler set for the step")
    return None


def _outside_transaction(words: list[str]) -> str | None:
    first = words[0]
    if first == "DISCARD":
        return (f"DISCARD is not allowed in a migration step: it resets the session the "
                f"step runs in ({_ONE_TRANSACTION})")
    if first == "VACUUM":
        name = "VACUUM"
    elif first in ("CREATE", "DROP", "REINDEX") and "CONCURRENTLY" in words and (
            first == "REINDEX" or words[words.index("CONCURRENTLY") - 1] == "INDEX"):
        name = " ".join(words[:words.index("CONCURRENTLY") + 1])
    elif tuple(words[:2]) in _NO_TRANSACTION_BLOCK:
        name = " ".join(words[:2])
    else:
        return None
    return (f"{name} cannot run inside a transaction block, and {_ONE_TRANSACTION}; "
            "run it from a job step instead")


def check_sql(path: str, text: str) -> list[Problem]:
    """Every forbidden statement of the SQL file ``path``, at the line and column it starts."""
    problems: list[Problem] = []
    for statement in split_statements(text):
        words = leading_words(statement.text)
        if not words:
            continue
        message = _transaction(words) or _setting(words) or _outside_transaction(words)
        if message is not None:
            problems.append(Problem(path, *statement.position(text), message))
    return problems
