"""Durations and repository-relative paths as written in desired-state files.

Owns: ``10m`` / ``1h30m`` / ``45s`` / integer seconds, and resolving a path written in a
file against that file's directory without ever leaving the repository.
"""

from __future__ import annotations

import posixpath
import re

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def seconds(value: object, default: int = 0) -> int:
    """Seconds in ``value`` (int, or text such as ``1h30m``); ``default`` when None."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    if str(value).isdigit():  # "0", "45": plain seconds
        return int(str(value))
    m = _DURATION.match(str(value))
    if not m or not any(m.groups()):
        raise ValueError(f"invalid duration {value!r}: use e.g. 90s, 10m, 1h30m")
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def resolve(base_file: str, rel: str) -> str:
    """The repository path ``rel`` names, relative to ``base_file``'s directory.

    Raises ValueError when it is absolute or escapes the repository root.
    """
    if rel.startswith("/") or "\\" in rel:
        raise ValueError(f"path {rel!r} must be relative and use '/'")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(base_file), rel))
    if joined == ".." or joined.startswith("../") or joined == ".":
        raise ValueError(f"path {rel!r} escapes the repository")
    return joined
