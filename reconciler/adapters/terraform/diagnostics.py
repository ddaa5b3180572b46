"""Turning Terraform's error output into the project's errors.

A held state lock is temporary and names its holder; everything else (syntax, unknown
variables, provider errors) is permanent with ``file:line`` from the diagnostic. Values
never appear: only Terraform's summaries and positions are kept.
"""

from __future__ import annotations

import re

from reconciler.adapters.errors import AdapterError, PermanentError, TemporaryError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR = re.compile(r"Error: (?P<summary>[^\n]+)(?:\n[│ ]*\n[│ ]*\s*on (?P<file>[^\s]+) "
                    r"line (?P<line>\d+))?")
_LOCK_FIELD = re.compile(r"^\s*[│ ]*\s*(ID|Path|Operation|Who|Created):\s*(.+)$", re.M)


def _clean(text: str) -> str:
    return _ANSI.sub("", text)


def lock_error(stderr: str, where: str) -> TemporaryError | None:
    """A TemporaryError naming the holder when the state lock could not be acquired."""
    text = _clean(stderr)
    if "Error acquiring the state lock" not in text:
        return None
    info = {k: v.strip() for k, v in _LOCK_FIELD.findall(text)}
    holder = info.get("Who", "unknown holder")
    return TemporaryError(f"{where}: state is locked by {holder} (lock {info.get('ID', '?')}, "
                          f"{info.get('Operation', '?')} since {info.get('Created', '?')})",
                          30.0)


def to_error(stderr: str, where: str) -> AdapterError:
    """The project's error for a failed Terraform command."""
    locked = lock_error(stderr, where)
    if locked is not None:
        return locked
    found = []
    for m in _ERROR.finditer(_clean(stderr)):
        pos = f"{m['file']}:{m['line']}: " if m["file"] else ""
        found.append(f"{pos}{m['summary'].strip()}")
    if not found:
        lines = _clean(stderr).strip().splitlines()
        found = [lines[-1] if lines else "terraform failed without output"]
    return PermanentError(f"{where}: {'; '.join(found)}")
