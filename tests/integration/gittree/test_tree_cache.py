"""Two revisions read with one TreeCache: a tree both share is walked once, and every
entry, every byte read and every load is what a source without the cache gives."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git import tree as gittree
from reconciler.adapters.git.tree import GitTreeSource, TreeCache
from reconciler.core.loader import ParseCache, load_repository

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, path)
    (path / "big.bin").write_bytes(b"x" * (gittree.KEEP_BYTES + 1))  # read, not kept
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fleet")
    release = path / "releases" / "api.yaml"
    release.write_text(release.read_text().replace("1.5.0", "1.6.0"))
    git(path, "commit", "-q", "-am", "bump api")
    return path


def test_shared_trees_are_walked_once(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[str] = []
    original = GitTreeSource._walk_one

    def counting(self: GitTreeSource, tree: object, prefix: str) -> object:
        walked.append(prefix)
        return original(self, tree, prefix)

    monkeypatch.setattr(GitTreeSource, "_walk_one", counting)
    r = pygit2.Repository(str(repo))
    trees = TreeCache()
    base = list(GitTreeSource(r, "HEAD~1", trees).entries())
    first = len(walked)
    head = list(GitTreeSource(r, "HEAD", trees).entries())
    assert sorted(walked[first:]) == ["", "releases/"]  # only the trees the bump changed
    assert "cells/" in walked[:first]
    assert head == list(GitTreeSource(r, "HEAD").entries())  # same entries, same order
    assert base == list(GitTreeSource(r, "HEAD~1").entries())


def test_reads_and_loads_are_a_plain_source_s(repo: Path) -> None:
    r = pygit2.Repository(str(repo))
    trees = TreeCache()
    for rev in ("HEAD~1", "HEAD", "HEAD~1"):
        cached, plain = GitTreeSource(r, rev, trees), GitTreeSource(r, rev)
        entries = list(cached.entries())
        list(plain.entries())
        for e in entries:
            assert cached.read(e.path) == plain.read(e.path), e.path
        assert cached.read("big.bin") == b"x" * (gittree.KEEP_BYTES + 1)
        with pytest.raises(PermanentError):
            cached.read("cells/no-such-cell.yaml")
        a = load_repository(GitTreeSource(r, rev, trees), ParseCache())
        b = load_repository(GitTreeSource(r, rev), ParseCache())
        assert a.ok and a.desired == b.desired
