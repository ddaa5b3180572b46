"""A Git tree object of any revision as a repository source — no working tree needed.

Owns: walking a pygit2 tree into ``FileEntry`` values whose content id is the blob id
(so the loader's parse cache re-parses only blobs that changed between commits), and
flagging symlinks (mode 120000) and submodules so the loader rejects them.
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

    def _walk(self, tree: Any, prefix: str) -> Iterator[FileEntry]:
        for entry in tree:
            path = f"{prefix}{entry.name}"
            if entry.filemode == _TREE:
                yield from self._walk(self.repo[entry.id], path + "/")
            elif entry.filemode == _COMMIT:
                yield FileEntry(path, str(entry.id), 0, True)
            else:
                blob = self.repo[entry.id]
                size = blob.size if isinstance(blob, pygit2.Blob) else 0
                self._blobs[path] = entry.id
                yield FileEntry(path, str(entry.id), size, entry.filemode == _LINK)

    def entries(self) -> Iterator[FileEntry]:
        yield from self._walk(self._tree, "")

    def read(self, path: str) -> bytes:
        oid = self._blobs.get(path)
        if oid is None:
            try:
                oid = self._tree[path].id
            except KeyError:
                raise PermanentError(f"{path}: not in revision {self.revision[:12]}") from None
        blob = self.repo[oid]
        if not isinstance(blob, pygit2.Blob):
            raise PermanentError(f"{path}: not a file in revision {self.revision[:12]}")
        return blob.data
