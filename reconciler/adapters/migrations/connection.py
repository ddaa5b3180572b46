"""Connecting to a cell's database from a ``DatabaseRef``, without ever leaking a secret.

The secret named by ``secret_env`` / ``secret_file`` is either a libpq connection string
(``postgresql://…`` or ``key=value …``, whose keys override the reference's fields) or a
bare password. Every message built here has the secret values removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from reconciler.adapters import secrets
from reconciler.adapters.errors import PermanentError
from reconciler.adapters.migrations.pgerrors import connect_error
from reconciler.core.model import DatabaseRef

CONNECT_TIMEOUT_SECONDS = 5
_CONNINFO = re.compile(r"^\s*(postgres(ql)?://|[A-Za-z_]+\s*=)")


@dataclass(frozen=True)
class Target:
    """A resolved database: where it is (for messages) and how to connect (secret)."""

    cell: str
    ref: DatabaseRef
    conninfo: str = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def label(self) -> str:
        """``cell/database`` — the safe name of this target in messages."""
        return f"{self.cell}/{self.ref.name}"

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def read_secret(ref: DatabaseRef, env: Mapping[str, str]) -> str | None:
    """The secret text the reference names, or None when it names none (the variable
    wins when both a variable and a file are named)."""
    file = None if ref.secret_env else ref.secret_file
    return secrets.read_secret(file, ref.secret_env, env, f"the secret of database {ref.name}")


def _secret_params(ref: DatabaseRef, secret: str | None) -> dict[str, str]:
    if not secret:
        return {}
    if not _CONNINFO.match(secret):
        return {"password": secret}
    try:
        return {k: str(v) for k, v in conninfo_to_dict(secret).items() if v is not None}
    except psycopg.Error:
        raise PermanentError(f"database {ref.name}: the secret is not a valid libpq "
                             "connection string") from None


def resolve(cell: str, ref: DatabaseRef, env: Mapping[str, str]) -> Target:
    """The connection for ``ref`` of ``cell``: reference fields overlaid by the secret."""
    secret = read_secret(ref, env)
    params: dict[str, str | int] = {"host": ref.host, "port": ref.port, "user": ref.user,
                                    "dbname": ref.dbname}
    extra = _secret_params(ref, secret)
    params.update(extra)
    params.update({"connect_timeout": CONNECT_TIMEOUT_SECONDS,
                   "application_name": "reconciler"})
    secrets = tuple(s for s in (secret, extra.get("password")) if s)
    try:
        conninfo = make_conninfo("", **params)
    except psycopg.Error:
        raise PermanentError(f"database {ref.name} of {cell}: invalid connection "
                             "parameters") from None
    return Target(cell, ref, conninfo, secrets)


def connect(target: Target) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to ``target``; errors translated, secrets removed."""
    try:
        return psycopg.connect(target.conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise connect_error(target, exc) from None
