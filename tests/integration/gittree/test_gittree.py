"""Loading desired state straight from Git objects (no checkout), with the blob-id cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.git.tree import GitTreeSource
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
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fleet")
    return path


def test_tree_load_equals_directory_load(repo: Path) -> None:
    from_git = load_repository(GitTreeSource(pygit2.Repository(str(repo))))
    from_dir = load_repository(DirectorySource(repo))
    assert from_git.desired is not None and from_dir.desired is not None
    assert from_git.revision == git(repo, "rev-parse", "HEAD")
    assert dict(from_git.desired.file_ids) == dict(from_dir.desired.file_ids)
    assert from_git.desired.cells == from_dir.desired.cells
    assert from_git.desired.files == from_dir.desired.files


def test_commit_changing_one_file_reparses_one_file(repo: Path) -> None:
    cache = ParseCache()
    first = load_repository(GitTreeSource(pygit2.Repository(str(repo))), cache)
    assert first.ok and first.parsed == 20
    rel = repo / "releases" / "api.yaml"
    rel.write_text(rel.read_text().replace("1.5.0", "1.6.0"))
    git(repo, "commit", "-q", "-am", "bump api")
    second = load_repository(GitTreeSource(pygit2.Repository(str(repo))), cache)
    assert second.parsed == 1
    assert second.desired is not None
    assert str(second.desired.releases["api"].entries[0].version) == "1.6.0"
    older = load_repository(GitTreeSource(pygit2.Repository(str(repo)), "HEAD~1"), cache)
    assert older.parsed == 0
    assert older.desired is not None
    assert str(older.desired.releases["api"].entries[0].version) == "1.5.0"


def test_symlinks_and_bad_revisions_are_rejected(repo: Path) -> None:
    (repo / "cells" / "evil.yaml").symlink_to("/etc/passwd")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "symlink")
    result = load_repository(GitTreeSource(pygit2.Repository(str(repo))))
    assert not result.ok
    assert [str(e) for e in result.errors] == [
        "cells/evil.yaml:1:1: symbolic links are not allowed in the repository"]
    with pytest.raises(PermanentError, match="unknown revision"):
        GitTreeSource(pygit2.Repository(str(repo)), "no-such-branch")
