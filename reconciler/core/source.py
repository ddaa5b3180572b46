"""The provider protocol through which the loader reads a repository.

Owns: the contract between the pure loader and whatever holds the files (a directory,
a Git tree object). Implementations live in ``reconciler.adapters`` (``fs``, ``git``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class FileEntry:
    """A file of the repository: its path (``/``-separated, relative), content id and size.

    ``content_id`` is the Git blob id when read from Git, or any stable hash of the
    bytes; the loader's parse cache is keyed by it. ``is_symlink`` entries are rejected.
    """

    path: str
    content_id: str
    size: int
    is_symlink: bool = False


class RepoSource(Protocol):
    """Read-only access to one revision of a desired-state repository."""

    revision: str

    def entries(self) -> Iterable[FileEntry]:
        """Every file (not directories) of the revision, in any order."""
        ...

    def read(self, path: str) -> bytes:
        """The bytes of the file at ``path``; only called for paths from ``entries``."""
        ...
