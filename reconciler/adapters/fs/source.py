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

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.core.source import FileEntry, path_problem

SKIP_DIRS = {"__pycache__", ".terraform"}
SKIP_TOP = {".git"}


def blob_id(data: bytes) -> str:
    """The Git blob id of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


#: Files up to this size keep the bytes the walk read (``read`` then reads nothing again).
KEEP_BYTES = 256 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class DirectorySource:
    """Read-only view of a working directory as one revision."""

    def __init__(self, root: str | os.PathLike[str], revision: str = "working-tree") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise PermanentError(f"{self.root}: not a directory")
        self.revision = revision
        self._kept: dict[str, bytes] = {}

    def _file(self, full: str, rel: str, st: os.stat_result) -> FileEntry:
        size = st.st_size
        if size > (1 << 20):
            return FileEntry(rel, f"size:{size}:{st.st_mtime_ns}", size)
        try:
            fd = os.open(full, os.O_RDONLY | _NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                data = f.read()
        except OSError as e:
            return FileEntry(rel, "unreadable", 0, skipped=f"cannot be read: {e.strerror}")
        if len(data) <= KEEP_BYTES:
            self._kept[rel] = data
        return FileEntry(rel, blob_id(data), len(data))

    def _entry(self, entry: os.DirEntry[str], rel: str) -> FileEntry:
        if entry.is_symlink():
            return FileEntry(rel, "symlink:" + os.readlink(entry.path), 0, True)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as e:
            return FileEntry(rel, "unreadable", 0, skipped=f"cannot be read: {e.strerror}")
        if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device is no repository file
            return FileEntry(rel, "special", 0,
                             skipped="not a regular file (a socket, FIFO or device)")
        return self._file(entry.path, rel, st)

    def entries(self) -> Iterable[FileEntry]:
        self._kept.clear()
        pending: list[tuple[str, str]] = [(str(self.root), "")]
        while pending:  # depth first, names sorted, like os.walk(topdown=True)
            directory, prefix = pending.pop()
            try:
                with os.scandir(directory) as it:
                    found = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for entry in found:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if entry.name in SKIP_DIRS or (not prefix and entry.name in SKIP_TOP):
                        continue
                    subdirs.append((entry.path, rel + "/"))
                else:
                    yield self._entry(entry, rel)
            pending.extend(reversed(subdirs))

    def read(self, path: str) -> bytes:
        """The file at ``path``; refused when any component is a symlink or it escapes:
        each directory is opened relative to the one before it without following a
        link, then the file the same way (or the bytes the walk read this way)."""
        why = path_problem(path)
        if why is not None:
            raise PermanentError(f"{path}: {why}")
        kept = self._kept.get(path)
        if kept is not None:
            return kept
        parts = path.split("/")
        fds: list[int] = []
        try:
            fds.append(os.open(self.root, os.O_RDONLY | _DIRECTORY))
            for part in parts[:-1]:
                fds.append(os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fds[-1]))
            fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW, dir_fd=fds[-1])
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PermanentError(f"{path}: a symbolic link or outside the "
                                     "repository") from None
            raise PermanentError(f"{path}: {e.strerror}") from None
        finally:
            for d in fds:
                os.close(d)
        with os.fdopen(fd, "rb") as f:
            return f.read()
