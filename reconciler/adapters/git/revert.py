"""Writing rollbacks back to a local Git repository with pygit2.

Owns: the revert commit of an automatic rollback — a real ``git revert`` of the bump
commit when that commit touched only release files, otherwise a targeted edit of the
release file setting the failing groups back to the versions they had before the bump —
with the reason in the message and a ``Reconciler-Rollback-Of: <sha>`` trailer, signed
with the daemon's key when it has one.
Pushing to a remote is not done here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import pygit2
from ruamel.yaml import YAML

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.sign import Signer, make_commit
from reconciler.core import flags
from reconciler.core.model import DesiredState
from reconciler.core.yamldoc import YamlProblem, checked_text

TRAILER = "Reconciler-Rollback-Of"


def _changed_paths(repo: pygit2.Repository, commit: pygit2.Commit) -> list[str]:
    if not commit.parents:
        return ["<root commit>"]
    diff = commit.parents[0].tree.diff_to_tree(commit.tree)
    return [d.new_file.path for d in diff.deltas]


def _release_text(repo: pygit2.Repository, commit: pygit2.Commit, path: str) -> str | None:
    try:
        blob = repo[commit.tree[path].id]
    except KeyError:
        return None
    return blob.data.decode() if isinstance(blob, pygit2.Blob) else None


def _checked(text: str) -> str:
    """A release file's text within the YAML limits (it comes from the branch)."""
    try:
        return checked_text("release", text)
    except YamlProblem as e:
        raise PermanentError(f"cannot revert: {e.problem}") from None


def _file(service: str) -> str:
    """The file holding a service's versions: its release, or a flag's file."""
    name = flags.flag_name(service)
    return f"flags/{name}.yaml" if name is not None else f"releases/{service}.yaml"


def _versions(text: str | None) -> dict[str, str]:
    """group -> version of a release file, or of a flag file (its variants as versions)."""
    if text is None:
        return {}
    doc: Any = YAML(typ="safe").load(_checked(text))
    if doc.get("kind") == "Flag":
        names = [str(v["name"]) for v in doc["spec"]["variants"]]
        default = str(doc["spec"]["defaultVariant"])
        return {g: str(flags.as_version(names, default, str(e["variant"])))
                for e in doc["spec"]["groups"] for g in e["groups"]}
    return {g: str(e["version"]) for e in doc["spec"]["versions"] for g in e["groups"]}


def _split_entries(entries: Any, groups: Sequence[str], old: dict[str, str],
                   key: str = "version") -> Any:
    """Release entries with ``groups`` set back to their ``old`` versions (entries split
    where only some of their groups go back; comments of kept entries survive)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    out = CommentedSeq()
    for entry in entries:
        stay = [g for g in entry["groups"] if g not in groups or g not in old]
        back: dict[str, list[str]] = {}
        for g in entry["groups"]:
            if g in groups and g in old:
                back.setdefault(old[g], []).append(g)
        if stay:
            entry["groups"] = type(entry["groups"])(stay) if stay != list(entry["groups"]) \
                else entry["groups"]
            out.append(entry)
        for version, gs in back.items():
            new = CommentedMap()
            new["groups"] = gs
            new[key] = version if key == "version" else DoubleQuotedScalarString(
                flags.variant_of(version) or "")  # quoted: YAML 1.1 reads on/off as booleans
            out.append(new)
    return out


@dataclass
class LocalGit:
    """A local (non-bare) repository whose branch the daemon commits to; its revert
    commits are signed by ``signer`` when given."""

    path: str
    author_name: str = "reconciler"
    author_email: str = "reconciler@localhost"
    ref: str = "HEAD"  # a bare cache commits to refs/heads/<branch> instead
    signer: Signer | None = field(default=None, repr=False)

    @property
    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(self.path)

    def _head(self, repo: pygit2.Repository) -> pygit2.Commit:
        head = repo[repo.references[self.ref].resolve().target]
        assert isinstance(head, pygit2.Commit)
        return head

    def _signature(self) -> pygit2.Signature:
        return pygit2.Signature(self.author_name, self.author_email)

    def bump_commit(self, service: str, version: str) -> pygit2.Commit:
        """The newest commit that set a group of ``service`` to ``version``."""
        repo = self.repo
        path = _file(service)
        for commit in repo.walk(self._head(repo).id, pygit2.enums.SortMode.TOPOLOGICAL):
            now = _versions(_release_text(repo, commit, path))
            before = _versions(_release_text(repo, commit.parents[0], path)) \
                if commit.parents else {}
            if version in now.values() and now != before and version not in before.values():
                return commit
        raise PermanentError(f"no commit bumps {service} to {version}")

    def _commit(self, repo: pygit2.Repository, tree: pygit2.Oid, message: str) -> str:
        sig = self._signature()
        oid = make_commit(repo, self.ref, sig, sig, message, tree, [self._head(repo).id],
                          self.signer)
        if not repo.is_bare and self.ref == "HEAD":
            repo.checkout_head(  # type: ignore[no-untyped-call]
                strategy=pygit2.enums.CheckoutStrategy.FORCE)
        return str(oid)

    def _message(self, service: str, version: str, groups: Sequence[str], reason: str,
                 sha: str) -> str:
        what = f"{service} {flags.shown(service, version)}"
        return (f"Roll back {what} in {', '.join(groups)}\n\n{reason}\n\n"
                f"Reconciler-Status: true\n{TRAILER}: {sha}\n")

    def already_reverted(self, service: str, groups: Sequence[str],
                         bump: pygit2.Commit) -> str | None:
        """The commit that already rolled ``bump`` back on this branch (ours, found by its
        trailer), or the head when none of ``groups`` runs the bump's version any more
        (a person reverted it); None when the rollback is still to be committed."""
        repo, head = self.repo, self._head(self.repo)
        needle = f"{TRAILER}: {bump.id}"
        for commit in repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL):
            if commit.id == bump.id:
                break
            if needle in commit.message:
                return str(commit.id)
        path = _file(service)
        now, then = (_versions(_release_text(repo, c, path)) for c in (head, bump))
        if not any(now.get(g) == then.get(g) for g in groups if g in then):
            return str(head.id)
        return None

    def revert(self, desired: DesiredState, service: str, groups: Sequence[str],
               version: str, reason: str) -> str:
        """Commit the rollback of ``version`` for ``groups``; the commit's id. Idempotent:
        a rollback already on the branch is returned instead of committed twice."""
        repo = self.repo
        bump = self.bump_commit(service, version)
        done = self.already_reverted(service, groups, bump)
        if done is not None:
            return done
        message = self._message(service, version, groups, reason, str(bump.id))
        paths = _changed_paths(repo, bump)
        head = self._head(repo)
        path = _file(service)
        before = _versions(_release_text(repo, bump.parents[0], path)) if bump.parents else {}
        changed = {g for g, v in _versions(_release_text(repo, bump, path)).items()
                   if before.get(g) != v}
        only = all(p.startswith("releases/") for p in paths) if path.startswith(
            "releases/") else paths == [path]
        if only and changed <= set(groups):
            index = repo.revert_commit(bump, head)
            if not index.conflicts:
                return self._commit(repo, index.write_tree(repo), message)
        return self._targeted(repo, bump, service, groups, message)

    def _targeted(self, repo: pygit2.Repository, bump: pygit2.Commit, service: str,
                  groups: Sequence[str], message: str) -> str:
        path = _file(service)
        old = _versions(_release_text(repo, bump.parents[0], path)) if bump.parents else {}
        text = _release_text(repo, self._head(repo), path)
        if text is None:
            raise PermanentError(f"{path} is missing at HEAD")
        yaml = YAML()
        yaml.preserve_quotes = True
        doc = yaml.load(_checked(text))
        key, value = ("groups", "variant") if doc["kind"] == "Flag" else ("versions", "version")
        doc["spec"][key] = _split_entries(doc["spec"][key], groups, old, value)
        out = StringIO()
        yaml.dump(doc, out)
        folder, name = path.split("/", 1)
        tree = repo.TreeBuilder(self._head(repo).tree)
        sub = repo.TreeBuilder(self._head(repo).tree[folder].id)
        sub.insert(name, repo.create_blob(out.getvalue().encode()), pygit2.enums.FileMode.BLOB)
        tree.insert(folder, sub.write(), pygit2.enums.FileMode.TREE)
        return self._commit(repo, tree.write(), message)
