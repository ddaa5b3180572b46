"""A plain directory as a repository source (local development, tests, the CLI).

Owns: walking a directory without following symlinks and hashing file contents
the way Git does (blob ids), so the parse cache works the same as for Git trees.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.core.source import FileEntry

SKIP_DIRS = {".git", "__pycache__", ".terraform"}


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
        size = path.stat().st_size
        if size > (1 << 20):
            return FileEntry(rel, f"size:{size}:{path.stat().st_mtime_ns}", size)
        return FileEntry(rel, blob_id(path.read_bytes()), size)

    def entries(self) -> Iterable[FileEntry]:
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            base = Path(dirpath)
            for d in list(dirnames):
                if (base / d).is_symlink():
                    dirnames.remove(d)
                    yield self._entry(base / d)
            for name in sorted(filenames):
                yield self._entry(base / name)

    def read(self, path: str) -> bytes:
        full = (self.root / path).resolve()
        if self.root.resolve() not in full.parents:
            raise PermanentError(f"{path}: outside the repository")
        try:
            return full.read_bytes()
        except OSError as e:
            raise PermanentError(f"{path}: {e.strerror}") from None
