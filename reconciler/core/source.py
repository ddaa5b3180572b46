"""The provider protocol through which the loader reads a repository.

Owns: the contract between the pure loader and whatever holds the files (a directory,
a Git tree object). Implementations live in ``reconciler.adapters`` (``fs``, ``git``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

#: Path components no repository file may have (Git's own directory, any case).
_FORBIDDEN_COMPONENTS = {".git"}
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class FileEntry:
    """A file of the repository: its path (``/``-separated, relative), content id and size.

    ``content_id`` is the Git blob id when read from Git, or any stable hash of the
    bytes; the loader's parse cache is keyed by it. ``is_symlink`` entries are rejected.
    ``skipped`` names why a directory entry is no file of the revision (a socket, FIFO
    or device; an unreadable file): the loader leaves it out with a warning.
    """

    path: str
    content_id: str
    size: int
    is_symlink: bool = False
    skipped: str | None = None


class RepoSource(Protocol):
    """Read-only access to one revision of a desired-state repository."""

    revision: str

    def entries(self) -> Iterable[FileEntry]:
        """Every file (not directories) of the revision, in any order."""
        ...

    def read(self, path: str) -> bytes:
        """The bytes of the file at ``path``; only called for paths from ``entries``."""
        ...


@lru_cache(maxsize=1 << 16)
def path_problem(path: str) -> str | None:
    """Why ``path`` may not be a repository file path, or None when it is normal.

    A normal path is relative, ``/``-separated, valid UTF-8, and has no empty, ``.``,
    ``..`` or ``.git`` component, no backslash, no NUL or other control character:
    the same text names the same file in the repository, on disk and in a workspace.
    """
    if not path:
        return "empty path"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "path is not valid UTF-8"
    bad = _BAD_CHAR.search(path)
    if bad is not None:
        return "path contains a backslash" if bad.group() == "\\" else \
            "path contains a control character (NUL, newline, ...)"
    if path.startswith("/"):
        return "absolute path"
    for part in path.split("/"):
        if part in ("", "."):
            return "path has an empty or '.' component"
        if part == "..":
            return "path has a '..' component (escapes its directory)"
        if part.lower() in _FORBIDDEN_COMPONENTS:
            return "path has a '.git' component"
    return None


class SubdirSource:
    """The files of ``source`` under directory ``prefix``, with paths relative to it: a
    desired-state repository kept in a subdirectory of a larger Git repository
    (``example-repo/`` of this project). Pure: only paths are mapped."""

    def __init__(self, source: RepoSource, prefix: str) -> None:
        self.source = source
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.revision = source.revision

    def entries(self) -> Iterable[FileEntry]:
        n = len(self.prefix)
        for e in self.source.entries():
            if e.path.startswith(self.prefix):
                yield FileEntry(e.path[n:], e.content_id, e.size, e.is_symlink, e.skipped)

    def read(self, path: str) -> bytes:
        return self.source.read(self.prefix + path)
