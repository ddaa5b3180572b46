"""Reading the followed branch's recent commits for the dashboard's history.

Owns: walking the bare cache's branch (first parents, newest first) and reading, per
commit, its message, author, time, changed paths and the texts of the few files history
needs (``core.history.wanted``) before and after. Read-only; a cache that cannot be read
is a ``TemporaryError``. What the commits mean is ``reconciler.core.history``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pygit2

from reconciler.adapters.errors import TemporaryError
from reconciler.core.history import MAX_FILE, CommitRecord


def _text(repo: pygit2.Repository, tree: pygit2.Tree | None, path: str) -> str | None:
    if tree is None:
        return None
    try:
        obj = repo[tree[path].id]
    except KeyError:
        return None
    if not isinstance(obj, pygit2.Blob) or obj.size > MAX_FILE:
        return None
    return obj.data.decode(errors="replace")


def _paths(repo: pygit2.Repository, commit: pygit2.Commit) -> tuple[str, ...]:
    if commit.parents:
        diff = commit.parents[0].tree.diff_to_tree(commit.tree)
    else:
        diff = commit.tree.diff_to_tree(swap=True)
    out = []
    for d in diff.deltas:
        out.append(d.new_file.path)
        if d.old_file.path != d.new_file.path:
            out.append(d.old_file.path)
    return tuple(out)


def _when(commit: pygit2.Commit) -> datetime:
    tz = timezone(timedelta(minutes=commit.commit_time_offset))
    return datetime.fromtimestamp(commit.commit_time, tz).astimezone(UTC)


class GitLog:
    """The recent commits of ``branch`` in the bare cache at ``cache``; ``wanted`` says
    which changed files' texts to read. Cached by the branch head."""

    def __init__(self, cache: Path, branch: str, wanted: Callable[[str], bool],
                 limit: int = 200) -> None:
        self.cache, self.ref, self.wanted, self.limit = cache, f"refs/heads/{branch}", \
            wanted, limit
        self._lock = threading.Lock()
        self._head: str | None = None
        self._records: tuple[CommitRecord, ...] = ()

    def head(self) -> str | None:
        """The branch head (None before the first fetch)."""
        try:
            repo = pygit2.Repository(str(self.cache))
            ref = repo.references.get(self.ref)
            return str(ref.target) if ref is not None else None
        except (pygit2.GitError, OSError) as e:
            raise TemporaryError(f"cannot read the Git cache: {e}", 5.0) from None

    def recent(self) -> tuple[CommitRecord, ...]:
        """The newest ``limit`` commits on the first-parent line, newest first."""
        with self._lock:
            head = self.head()
            if head is None:
                return ()
            if head == self._head:
                return self._records
            try:
                records = self._read(head)
            except (pygit2.GitError, OSError, KeyError) as e:
                raise TemporaryError(f"cannot read the Git history: {e}", 5.0) from None
            self._head, self._records = head, records
            return records

    def _read(self, head: str) -> tuple[CommitRecord, ...]:
        repo = pygit2.Repository(str(self.cache))
        commit = repo[head]
        out: list[CommitRecord] = []
        while isinstance(commit, pygit2.Commit) and len(out) < self.limit:
            paths = _paths(repo, commit)
            parent_tree = commit.parents[0].tree if commit.parents else None
            files = {p: (_text(repo, parent_tree, p), _text(repo, commit.tree, p))
                     for p in paths if self.wanted(p)}
            out.append(CommitRecord(str(commit.id), commit.author.name, commit.author.email,
                                    _when(commit), commit.message, paths, files))
            commit = commit.parents[0] if commit.parents else None
        return tuple(out)
