"""Status documents written to a branch with ruamel.yaml round-trip, one commit per tick.

Owns: merging a new status document into the file already in Git so that hand-written
comments and key order survive; committing every changed file of a tick together, by the
configured author, with a ``Reconciler-Status: true`` trailer, and only when something
changed; telling whether a range of commits is nothing but the daemon's own status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pygit2

from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.core.statusyaml import render

STATUS_TRAILER = "Reconciler-Status: true"
STATUS_PREFIX = "status/"


class StatusWriter:
    """Commits status documents to ``ref`` of ``repo``."""

    def __init__(self, repo: pygit2.Repository, ref: str, author: tuple[str, str]) -> None:
        self.repo = repo
        self.ref = ref
        self.author = author

    def changes(self, docs: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
        """The files whose text would change."""
        head = head_commit(self.repo, self.ref)
        out: dict[str, bytes] = {}
        for path, doc in docs.items():
            if not path.startswith(STATUS_PREFIX):
                raise ValueError(f"{path}: status documents live under {STATUS_PREFIX}")
            old = read_file(self.repo, head, path)
            new = render(old, doc)
            if new != old:
                out[path] = new
        return out

    def write(self, docs: Mapping[str, Mapping[str, Any]], summary: str) -> str | None:
        """One commit with every changed document; None when nothing changed."""
        changed = self.changes(docs)
        if not changed:
            return None
        message = f"status: {summary}\n\n{STATUS_TRAILER}\n"
        sig = pygit2.Signature(*self.author)
        return commit_files(self.repo, self.ref, changed, message, sig)


def own_status_only(repo: pygit2.Repository, old: str | None, new: str,
                    author_email: str) -> bool:
    """True when every commit in ``old..new`` is ours and touches only ``status/``."""
    if old is None or old == new:
        return old == new
    walker = repo.walk(pygit2.Oid(hex=new), pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(pygit2.Oid(hex=old))
    for commit in walker:
        if commit.author.email != author_email or STATUS_TRAILER not in commit.message:
            return False
        if len(commit.parents) != 1:
            return False
        diff = commit.parents[0].tree.diff_to_tree(commit.tree)
        if any(not (d.new_file.path.startswith(STATUS_PREFIX)
                    and d.old_file.path.startswith(STATUS_PREFIX)) for d in diff.deltas):
            return False
    return True
