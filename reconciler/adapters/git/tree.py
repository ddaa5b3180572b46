"""A Git tree object of any revision as a repository source — no working tree needed.

Owns: walking a pygit2 tree into ``FileEntry`` values whose content id is the blob id
(so the loader's parse cache re-parses only blobs that changed between commits), and
flagging symlinks (mode 120000) and submodules so the loader rejects them. Entry names
are passed on exactly as stored — a crafted tree may hold names such as ``..`` or
``a/../../b`` — so the loader's path check (``core.source.path_problem``) sees and
rejects them; ``read`` only serves paths this walk produced. Two revisions read with one
``TreeCache`` (``reconciler diff``'s base and head) walk a directory whose tree is the
same in both (a bump leaves ``cells/`` alone) once; a walked blob up to ``KEEP_BYTES`` is
kept, so ``read`` looks nothing up again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.core.source import FileEntry

_LINK = pygit2.enums.FileMode.LINK
_TREE = pygit2.enums.FileMode.TREE
_COMMIT = pygit2.enums.FileMode.COMMIT
#: Blobs up to this size stay in memory from the walk to ``read`` (as DirectorySource).
KEEP_BYTES = 256 * 1024


@dataclass(frozen=True)
class _Walked:
    """One tree object at one path, walked: its entries (not those of its subtrees), the
    subtrees to walk, and what ``read`` serves for each of its blobs."""

    files: tuple[FileEntry, ...]
    subtrees: tuple[tuple[Any, str], ...]
    blobs: dict[str, Any]


@dataclass
class TreeCache:
    """Walked trees by (tree id, path), shared by the sources of one repository so a
    tree that two revisions share is walked once. Lives as long as its owner keeps it
    (one ``reconciler diff``): unbounded, like the revisions it serves."""

    trees: dict[tuple[str, str], _Walked] = field(default_factory=dict)


class GitTreeSource:
    """Read-only view of ``revision`` (any rev-parse spec) in a pygit2 repository."""

    def __init__(self, repo: pygit2.Repository, revision: str = "HEAD",
                 cache: TreeCache | None = None) -> None:
        try:
            commit = repo.revparse_single(revision).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise PermanentError(f"unknown revision {revision!r}: {e}") from None
        self.repo = repo
        self.revision = str(commit.id)
        self._tree = commit.tree
        self._cache = cache
        #: path -> the Blob object (kept from the walk) or the id to look up
        self._blobs: dict[str, Any] = {}

    def _walk_one(self, tree: Any, prefix: str) -> _Walked:
        files: list[FileEntry] = []
        subtrees: list[tuple[Any, str]] = []
        blobs: dict[str, Any] = {}
        for entry in tree:
            name = entry.name if entry.name is not None else ""
            path = f"{prefix}{name}"
            mode, oid = entry.filemode, entry.id  # each read builds a new value: once
            if mode == _TREE:
                subtrees.append((oid, path + "/"))
            elif mode == _COMMIT:
                files.append(FileEntry(path, str(oid), 0, True))
            else:
                blob = self.repo[oid]
                size, kept = 0, oid
                if isinstance(blob, pygit2.Blob):
                    size = blob.size
                    kept = blob if size <= KEEP_BYTES else oid
                if mode != _LINK:
                    blobs[path] = kept
                files.append(FileEntry(path, str(oid), size, mode == _LINK))
        return _Walked(tuple(files), tuple(subtrees), blobs)

    def _walk(self, root: Any) -> Iterator[FileEntry]:
        pending: list[tuple[Any, str]] = [(root.id, "")]
        while pending:  # iterative: a crafted, very deep tree cannot exhaust the stack
            oid, prefix = pending.pop()
            key = (str(oid), prefix)
            walked = self._cache.trees.get(key) if self._cache is not None else None
            if walked is None:
                walked = self._walk_one(self.repo[oid], prefix)
                if self._cache is not None:
                    self._cache.trees[key] = walked
            self._blobs.update(walked.blobs)
            yield from walked.files
            pending.extend(walked.subtrees)

    def entries(self) -> Iterator[FileEntry]:
        self._blobs.clear()
        yield from self._walk(self._tree)

    def read(self, path: str) -> bytes:
        """The blob at ``path``, a path ``entries`` produced (never a symlink's target)."""
        blob = self._blobs.get(path)
        if blob is None:
            if not self._blobs:
                for _ in self.entries():
                    pass
            blob = self._blobs.get(path)
            if blob is None:
                raise PermanentError(f"{path}: not a file in revision {self.revision[:12]}")
        if not isinstance(blob, pygit2.Blob):
            blob = self.repo[blob]
        if not isinstance(blob, pygit2.Blob):
            raise PermanentError(f"{path}: not a file in revision {self.revision[:12]}")
        return blob.data
