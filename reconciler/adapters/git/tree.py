"""A Git tree object of any revision as a repository source — no working tree needed.

Owns: walking a pygit2 tree into ``FileEntry`` values whose content id is the blob id
(so the loader's parse cache re-parses only blobs that changed between commits), and
flagging symlinks (mode 120000) and submodules so the loader rejects them. Entry names
are passed on exactly as stored — a crafted tree may hold names such as ``..`` or
``a/../../b`` — so the loader's path check (``core.source.path_problem``) sees and
rejects them; ``read`` only serves paths this walk produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.core.source import FileEntry

_LINK = pygit2.enums.FileMode.LINK
_TREE = pygit2.enums.FileMode.TREE
_COMMIT = pygit2.enums.FileMode.COMMIT


class GitTreeSource:
    """Read-only view of ``revision`` (any rev-parse spec) in a pygit2 repository."""

    def __init__(self, repo: pygit2.Repository, revision: str = "HEAD") -> None:
        try:
            commit = repo.revparse_single(revision).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise PermanentError(f"unknown revision {revision!r}: {e}") from None
        self.repo = repo
        self.revision = str(commit.id)
        self._tree = commit.tree
        self._blobs: dict[str, Any] = {}

    def _walk(self, root: Any) -> Iterator[FileEntry]:
        pending: list[tuple[Any, str]] = [(root, "")]
        while pending:  # iterative: a crafted, very deep tree cannot exhaust the stack
            tree, prefix = pending.pop()
            for entry in tree:
                name = entry.name if entry.name is not None else ""
                path = f"{prefix}{name}"
                if entry.filemode == _TREE:
                    pending.append((self.repo[entry.id], path + "/"))
                elif entry.filemode == _COMMIT:
                    yield FileEntry(path, str(entry.id), 0, True)
                else:
                    blob = self.repo[entry.id]
                    size = blob.size if isinstance(blob, pygit2.Blob) else 0
                    if entry.filemode != _LINK:
                        self._blobs[path] = entry.id
                    yield FileEntry(path, str(entry.id), size, entry.filemode == _LINK)

    def entries(self) -> Iterator[FileEntry]:
        self._blobs.clear()
        yield from self._walk(self._tree)

    def read(self, path: str) -> bytes:
        """The blob at ``path``, a path ``entries`` produced (never a symlink's target)."""
        oid = self._blobs.get(path)
        if oid is None:
            if not self._blobs:
                for _ in self.entries():
                    pass
            oid = self._blobs.get(path)
            if oid is None:
                raise PermanentError(f"{path}: not a file in revision {self.revision[:12]}")
        blob = self.repo[oid]
        if not isinstance(blob, pygit2.Blob):
            raise PermanentError(f"{path}: not a file in revision {self.revision[:12]}")
        return blob.data
