"""A plain directory as a repository source (local development, tests, the CLI).

Owns: walking a directory without following symlinks and hashing file contents
the way Git does (blob ids), so the parse cache works the same as for Git trees.
Symlinks (to files or directories) and nested ``.git`` directories are reported as
entries so the loader rejects the revision; only the top-level ``.git`` (the checkout's
own repository) is skipped. A socket, FIFO or device, or a file that cannot be read, is
reported as skipped (the loader warns and leaves it out). ``read`` never follows a
symlink nor leaves the root.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.core.source import FileEntry, path_problem

SKIP_DIRS = {"__pycache__", ".terraform"}
SKIP_TOP = {".git"}


def blob_id(data: bytes) -> str:
    """The Git blob id of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class DirectorySource:
    """Read-only view of a working directory as one revision."""

    def __init__(self, root: str | os.PathLike[str], revision: str = "working-tree") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise PermanentError(f"{self.root}: not a directory")
        self.revision = revision

    def _entry(self, path: Path) -> FileEntry:
        rel = path.relative_to(self.root).as_posix()
        if path.is_symlink():
            return FileEntry(rel, "symlink:" + os.readlink(path), 0, True)
        if not path.is_file():  # a FIFO, socket or device is no repository file
            return FileEntry(rel, "special", 0,
                             skipped="not a regular file (a socket, FIFO or device)")
        try:
            size = path.stat().st_size
            if size > (1 << 20):
                return FileEntry(rel, f"size:{size}:{path.stat().st_mtime_ns}", size)
            return FileEntry(rel, blob_id(path.read_bytes()), size)
        except OSError as e:
            return FileEntry(rel, "unreadable", 0, skipped=f"cannot be read: {e.strerror}")

    def entries(self) -> Iterable[FileEntry]:
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(dirpath)
            top = base == self.root
            dirnames[:] = sorted(d for d in dirnames
                                 if d not in SKIP_DIRS and not (top and d in SKIP_TOP))
            for d in list(dirnames):
                if (base / d).is_symlink():
                    dirnames.remove(d)
                    yield self._entry(base / d)
            for name in sorted(filenames):
                yield self._entry(base / name)

    def read(self, path: str) -> bytes:
        """The file at ``path``; refused when any component is a symlink or it escapes."""
        why = path_problem(path)
        if why is not None:
            raise PermanentError(f"{path}: {why}")
        root = self.root.resolve()
        full = root.joinpath(*path.split("/"))
        if full.resolve() != full or not full.is_relative_to(root):
            raise PermanentError(f"{path}: a symbolic link or outside the repository")
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            raise PermanentError(f"{path}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            return f.read()
