"""JSON log lines for the daemon, with secrets scrubbed.

Owns: the log format (one JSON object per line with time, level, logger, message and the
revision, cell, service and step of whatever is being done) and the redaction of every
registered secret (webhook secret, Git passwords and tokens) from messages and fields.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

CONTEXT_FIELDS = ("revision", "cell", "service", "step")
_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "log_context", default=())
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Never print ``value`` (nor its lines) in any log line from now on."""
    if not value:
        return
    with _secrets_lock:
        for part in [value, *value.splitlines()]:
            if len(part.strip()) >= 4:
                _secrets.add(part.strip())


def redact(text: str) -> str:
    """``text`` with every registered secret replaced."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, REDACTED)
    return text


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add fields (revision, cell, service, step) to every line logged inside."""
    merged = {**dict(_context.get()), **{k: v for k, v in fields.items() if v}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        doc.update(dict(_context.get()))
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value:
                doc[key] = str(value)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, ensure_ascii=False, default=str))


def setup(level: str = "info", stream: TextIO | None = None, json_lines: bool = True) -> None:
    """Route the ``reconciler`` loggers to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else _PlainFormatter())
    root = logging.getLogger("reconciler")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in ("apscheduler", "kubernetes", "urllib3"):
        other = logging.getLogger(name)
        other.handlers[:] = [handler]
        other.propagate = False
        # apscheduler warns on every skipped overlapping run, which the daemon expects
        other.setLevel(logging.ERROR if name == "apscheduler" else logging.WARNING)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = {**dict(_context.get()), **{k: getattr(record, k) for k in CONTEXT_FIELDS
                                    if getattr(record, k, None)}}
        extra = " ".join(f"{k}={v}" for k, v in ctx.items())
        return redact(f"{record.levelname.lower():<7} {record.getMessage()} {extra}".rstrip())
