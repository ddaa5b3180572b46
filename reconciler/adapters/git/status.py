"""Status documents written to a branch with ruamel.yaml round-trip, one commit per tick.

Owns: merging a new status document into the file already in Git so that hand-written
comments and key order survive; committing every changed file of a tick together, by the
status author (the Fleet's ``status.author``, else the operator's), with a
``Reconciler-Status: true`` trailer, only under the status directory (the live Fleet's
``status.path``), and only when something changed; telling whether a range of commits
is nothing but the daemon's own status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pygit2

from reconciler.adapters.git.commits import commit_files, entry_id, head_commit, tree_at
from reconciler.adapters.git.sign import Signer
from reconciler.core.statusdocs import DEFAULT_STATUS_DIR, StatusTarget
from reconciler.core.statusyaml import render

STATUS_TRAILER = "Reconciler-Status: true"


def fixed_target(author: tuple[str, str]) -> Callable[[], StatusTarget]:
    """The default target: ``status/``, authored by ``author``."""
    target = StatusTarget(DEFAULT_STATUS_DIR, author, author)
    return lambda: target


class StatusWriter:
    """Commits status documents to ``ref`` of ``repo``; ``target`` says, at each write,
    where status lives and who authors it (default: ``status/`` by ``author``); every
    commit is signed by ``signer`` when given."""

    def __init__(self, repo: pygit2.Repository, ref: str, author: tuple[str, str],
                 target: Callable[[], StatusTarget] | None = None,
                 signer: Signer | None = None) -> None:
        self.repo = repo
        self.ref = ref
        self.author = author
        self.target = target or fixed_target(author)
        self.signer = signer
        #: path -> (the blob id in Git, the document, the merged text, its blob id) of
        #: the last render: a cell whose document and file did not change is not read
        #: or merged again (ruamel's round trip of 1,000 cells' files took 3.4 s of CPU
        #: per publish; reading each file by its path from the head's tree, ~1 s).
        self._rendered: dict[str, tuple[str | None, str, bytes, str]] = {}

    def changes(self, docs: Mapping[str, Mapping[str, Any]],
                target: StatusTarget | None = None) -> dict[str, bytes]:
        """The files whose text would change."""
        target = target or self.target()
        head = head_commit(self.repo, self.ref)
        trees: dict[str, pygit2.Tree | None] = {}  # each directory's tree, read once
        out: dict[str, bytes] = {}
        for path, doc in docs.items():
            if not target.holds(path):
                raise ValueError(f"{path}: status documents live under {target.prefix}")
            directory, _, name = path.rpartition("/")
            if directory not in trees:
                trees[directory] = tree_at(self.repo, head, directory)
            entry = entry_id(trees[directory], name)
            new, new_id = self._render(path, entry, doc)
            if new_id != entry:
                out[path] = new
        return out

    def _render(self, path: str, old_id: str | None,
                doc: Mapping[str, Any]) -> tuple[bytes, str]:
        """``render(old, doc)`` and its blob id, ``old`` the blob ``old_id``; remembered
        while the file and the document stay the same, so an unchanged cell costs neither
        a read of its file nor a merge (the test checks a merge of its own output gives
        it back)."""
        key = json.dumps(doc, sort_keys=True, default=str)
        seen = self._rendered.get(path)
        # the same document into the same file — or into the file it merged into last
        # time (committed since): merging is idempotent, so the answer is the same
        if seen is not None and seen[1] == key and old_id in (seen[0], seen[3]):
            return seen[2], seen[3]
        blob = self.repo[old_id] if old_id is not None else None
        old = blob.data if isinstance(blob, pygit2.Blob) else None
        new = render(old, doc)
        new_id = str(pygit2.hash(new))
        self._rendered[path] = (old_id, key, new, new_id)
        return new, new_id

    def write(self, docs: Mapping[str, Mapping[str, Any]], summary: str) -> str | None:
        """One commit with every changed document; None when nothing changed."""
        target = self.target()
        changed = self.changes(docs, target)
        if not changed:
            return None
        message = f"status: {summary}\n\n{STATUS_TRAILER}\n"
        sig = pygit2.Signature(*target.author)
        return commit_files(self.repo, self.ref, changed, message, sig, self.signer)


def own_status_only(repo: pygit2.Repository, old: str | None, new: str,
                    author_email: str | Collection[str],
                    directory: str = DEFAULT_STATUS_DIR) -> bool:
    """True when every commit in ``old..new`` is ours — authored by one of
    ``author_email``, with the status trailer — and touches only ``<directory>/``.

    Authorship is not identity: this only decides that a commit needs no new plan (with
    verification on, ``History`` also requires the daemon's signature on each)."""
    if old is None or old == new:
        return old == new
    emails = {author_email} if isinstance(author_email, str) else set(author_email)
    prefix = f"{directory.rstrip('/')}/"
    walker = repo.walk(pygit2.Oid(hex=new), pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(pygit2.Oid(hex=old))
    for commit in walker:
        if commit.author.email not in emails or STATUS_TRAILER not in commit.message:
            return False
        if len(commit.parents) != 1:
            return False
        diff = commit.parents[0].tree.diff_to_tree(commit.tree)
        if any(not (d.new_file.path.startswith(prefix)
                    and d.old_file.path.startswith(prefix)) for d in diff.deltas):
            return False
    return True
