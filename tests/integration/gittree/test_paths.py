"""Crafted Git trees: entry names with ``..`` and symlink entries reject the revision.

The trees are written as raw Git objects, so the entry names really contain ``..``
(``git`` itself refuses to create them; a hostile pusher need not use ``git``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.tree import GitTreeSource
from reconciler.adapters.terraform.engine import TerraformSettings
from reconciler.adapters.terraform.workspace import Workspace
from reconciler.core.loader import load_repository

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"
EVIL = "../../../../evil"
BLOB, LINK, TREE = 0o100644, 0o120000, 0o040000


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def raw_tree(repo: pygit2.Repository, entries: list[tuple[int, str, pygit2.Oid]]) -> pygit2.Oid:
    """A tree object written byte by byte: names are taken exactly as given."""
    data = b"".join(b"%o %s\0" % (mode, name.encode()) + oid.raw
                    for mode, name, oid in sorted(entries, key=lambda e: e[1]))
    return repo.odb.write(pygit2.enums.ObjectType.TREE, data)


def replace_subtree(repo: pygit2.Repository, tree: pygit2.Tree, path: list[str],
                    new: pygit2.Oid) -> pygit2.Oid:
    builder = repo.TreeBuilder(tree)
    if len(path) == 1:
        builder.insert(path[0], new, TREE)
    else:
        child = repo[tree[path[0]].id]
        assert isinstance(child, pygit2.Tree)
        builder.insert(path[0], replace_subtree(repo, child, path[1:], new), TREE)
    return builder.write()


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, str]:
    """The example fleet, then a commit whose api stack holds ``../../../../evil`` and a
    symlink ``link.tf`` pointing at the cache's Git config."""
    path = tmp_path / "cache" / "fleet"
    shutil.copytree(EXAMPLE, path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fleet")
    repo = pygit2.Repository(str(path))
    head = repo.head.peel(pygit2.Commit)
    stack = repo[head.tree["services/api/terraform"].id]
    assert isinstance(stack, pygit2.Tree)
    entries: list[tuple[int, str, pygit2.Oid]] = [(int(e.filemode), e.name or "", e.id)
                                                  for e in stack]
    entries.append((BLOB, EVIL, repo.create_blob(b"# written outside the workspace\n")))
    entries.append((LINK, "link.tf", repo.create_blob(b"../../../../.git/config")))
    new_stack = raw_tree(repo, entries)
    root = replace_subtree(repo, head.tree, ["services", "api", "terraform"], new_stack)
    sig = pygit2.Signature("t", "t@example.com")
    commit = repo.create_commit("refs/heads/main", sig, sig, "evil", root, [head.id])
    return path, str(commit)


def test_the_crafted_tree_really_holds_the_names(crafted: tuple[Path, str]) -> None:
    path, commit = crafted
    paths = {e.path: e for e in GitTreeSource(pygit2.Repository(str(path)), commit).entries()}
    assert f"services/api/terraform/{EVIL}" in paths
    assert paths["services/api/terraform/link.tf"].is_symlink


def test_load_rejects_dotdot_and_symlink_entries(crafted: tuple[Path, str],
                                                 tmp_path: Path) -> None:
    path, commit = crafted
    result = load_repository(GitTreeSource(pygit2.Repository(str(path)), commit))
    assert not result.ok and result.desired is None
    text = [str(p) for p in result.errors]
    assert f"services/api/terraform/{EVIL}:1:1: path has a '..' component " \
           "(escapes its directory)" in text
    assert "services/api/terraform/link.tf:1:1: symbolic links are not allowed in the " \
           "repository" in text
    # the previous revision still loads: only the crafted one is rejected
    assert load_repository(GitTreeSource(pygit2.Repository(str(path)), "HEAD~1")).ok


class _NoEngine:
    def run(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("Terraform must not run for a refused stack")


def test_the_workspace_refuses_the_crafted_stack_and_writes_nothing(
        crafted: tuple[Path, str], tmp_path: Path) -> None:
    """Defence in depth: even handed the stack as today's loader read it, nothing lands
    outside the workspace."""
    path, commit = crafted
    source = GitTreeSource(pygit2.Repository(str(path)), commit)
    prefix = "services/api/terraform/"
    stack = {e.path[len(prefix):]: source.read(e.path).decode()
             for e in source.entries() if e.path.startswith(prefix) and not e.is_symlink}
    assert EVIL in stack
    state = tmp_path / "state"
    before = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(state))
    ws = Workspace(state / "api" / "euw1-a-01", "api", "euw1-a-01", _NoEngine(),  # type: ignore[arg-type]
                   TerraformSettings(state_dir=state))
    with pytest.raises(PermanentError, match="refusing to write"):
        ws.prepare(stack, {})
    after = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(state))
    assert after == before
    assert not (tmp_path / "evil").exists() and not any(tmp_path.rglob("evil"))
