"""Commits built in memory on a branch of any pygit2 repository (bare or not).

Owns: turning "these paths now hold these bytes (or are gone)" into nested trees and one
commit on a branch ref, without an index or a working tree, so the daemon can commit to
its bare cache of the remote (signed with the daemon's key when it has one); and reading
a file of a branch's head, or a directory's tree of it once for many files.
"""

from __future__ import annotations

from collections.abc import Mapping

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.sign import Signer, make_commit

_TREE = pygit2.enums.FileMode.TREE
_BLOB = pygit2.enums.FileMode.BLOB


def head_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit | None:
    """The commit ``ref`` points to (None when the branch does not exist yet)."""
    try:
        target = repo.references[ref].resolve().target
    except KeyError:
        return None
    commit = repo[target]
    return commit if isinstance(commit, pygit2.Commit) else None


def read_file(repo: pygit2.Repository, commit: pygit2.Commit | None, path: str) -> bytes | None:
    """``path`` in ``commit``'s tree, or None when absent."""
    if commit is None:
        return None
    try:
        obj = repo[commit.tree[path].id]
    except KeyError:
        return None
    return obj.data if isinstance(obj, pygit2.Blob) else None


def tree_at(repo: pygit2.Repository, commit: pygit2.Commit | None,
            directory: str) -> pygit2.Tree | None:
    """The tree at ``directory`` ('' for the root) in ``commit``; None when absent."""
    tree: pygit2.Tree | None = commit.tree if commit is not None else None
    for name in (p for p in directory.split("/") if p):
        tree = _subtree(repo, tree, name)
    return tree


def entry_id(tree: pygit2.Tree | None, name: str) -> str | None:
    """The blob id of file ``name`` directly in ``tree``; None when there is none."""
    entry = _entry(tree, name)
    if entry is None:
        return None
    return str(entry.id) if entry.filemode in (_BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE) \
        else None


def _entry(tree: pygit2.Tree | None, name: str) -> pygit2.Object | None:
    """The entry ``name`` directly in ``tree``; None when there is no tree or no such entry."""
    if tree is None:
        return None
    try:
        return tree[name]
    except KeyError:
        return None


def _subtree(repo: pygit2.Repository, tree: pygit2.Tree | None, name: str) -> pygit2.Tree | None:
    entry = _entry(tree, name)
    if entry is None:
        return None
    obj = repo[entry.id]
    return obj if isinstance(obj, pygit2.Tree) else None


def _build(repo: pygit2.Repository, tree: pygit2.Tree | None,
           changes: Mapping[str, bytes | None]) -> pygit2.Oid | None:
    """The id of ``tree`` with ``changes`` (paths relative to it); None when empty."""
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    nested: dict[str, dict[str, bytes | None]] = {}
    for path, data in changes.items():
        head, sep, rest = path.partition("/")
        if sep:
            nested.setdefault(head, {})[rest] = data
        elif data is None:
            if builder.get(head) is not None:
                builder.remove(head)
        else:
            builder.insert(head, repo.create_blob(data), _BLOB)
    for name, sub in nested.items():
        oid = _build(repo, _subtree(repo, tree, name), sub)
        if oid is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, oid, _TREE)
    if len(builder) == 0:
        return None
    written: pygit2.Oid = builder.write()
    return written


def commit_files(repo: pygit2.Repository, ref: str, changes: Mapping[str, bytes | None],
                 message: str, author: pygit2.Signature,
                 signer: Signer | None = None) -> str | None:
    """Commit ``changes`` on ``ref`` (signed by ``signer`` when given); the new commit
    id, or None when nothing changed."""
    parent = head_commit(repo, ref)
    for path in changes:
        if path.startswith("/") or ".." in path.split("/"):
            raise PermanentError(f"{path}: not a path inside the repository")
    tree = _build(repo, parent.tree if parent else None, changes)
    if tree is None:
        raise PermanentError("refusing to commit an empty tree")
    if parent is not None and tree == parent.tree.id:
        return None
    parents = [parent.id] if parent is not None else []
    return str(make_commit(repo, ref, author, author, message, tree, parents, signer))
