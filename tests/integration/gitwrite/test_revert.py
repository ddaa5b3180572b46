"""Revert commits for automatic rollbacks, on a real local Git repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.revert import LocalGit
from reconciler.adapters.git.tree import GitTreeSource
from reconciler.core.loader import load_repository
from reconciler.core.model import DesiredState
from tests.integration.gittree.test_gittree import EXAMPLE, git

LATER = ["euw1-a", "euw1-b", "euw1-c", "use1-a", "use1-b", "use1-c"]
ALL = ["canary", *LATER]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fleet at 1.5.0")
    return path


def bump(repo: Path, version: str, also_cell: bool = False) -> str:
    rel = repo / "releases" / "api.yaml"
    rel.write_text(rel.read_text().replace("version: 1.5.0", f"version: {version}"))
    if also_cell:
        cell = repo / "cells" / "use1-c-02.yaml"
        cell.write_text(cell.read_text().replace("weight: 8", "weight: 9"))
    git(repo, "commit", "-q", "-am", f"bump api to {version}")
    return git(repo, "rev-parse", "HEAD")


def load(repo: Path) -> DesiredState:
    desired = load_repository(GitTreeSource(pygit2.Repository(str(repo)))).desired
    assert desired is not None
    return desired


def versions(desired: DesiredState) -> dict[str, str]:
    rel = desired.releases["api"]
    return {g: str(rel.version_for(g)) for g in ALL}


def test_release_only_bump_is_really_reverted(repo: Path) -> None:
    sha = bump(repo, "1.6.0")
    new = LocalGit(str(repo)).revert(load(repo), "api", ALL, "1.6.0",
                                     "alarm 'http-error-rate' = 0.31 > 0.02 on euw1-canary-01")
    assert git(repo, "rev-parse", "HEAD") == new
    message = git(repo, "log", "-1", "--format=%B")
    assert "alarm 'http-error-rate' = 0.31 > 0.02" in message
    assert f"Reconciler-Rollback-Of: {sha}" in message
    assert git(repo, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{sha}~1^{{tree}}")
    assert set(versions(load(repo)).values()) == {"1.5.0"}
    assert git(repo, "status", "--porcelain") == ""


def test_partial_rollback_keeps_earlier_waves(repo: Path) -> None:
    bump(repo, "1.6.0")
    LocalGit(str(repo)).revert(load(repo), "api", LATER, "1.6.0", "euw1-a-01 is Degraded")
    after = versions(load(repo))
    assert after["canary"] == "1.6.0"
    assert {after[g] for g in LATER} == {"1.5.0"}
    assert "# The version of the api" in (repo / "releases" / "api.yaml").read_text()


def test_mixed_commit_gets_a_targeted_edit(repo: Path) -> None:
    sha = bump(repo, "1.6.0", also_cell=True)
    LocalGit(str(repo)).revert(load(repo), "api", ALL, "1.6.0", "canary degraded")
    desired = load(repo)
    assert set(versions(desired).values()) == {"1.5.0"}
    assert desired.cells["use1-c-02"].weight == 9.0  # the unrelated change stays
    assert f"Reconciler-Rollback-Of: {sha}" in git(repo, "log", "-1", "--format=%B")


def test_unknown_bump_is_a_clear_error(repo: Path) -> None:
    with pytest.raises(PermanentError, match=r"no commit bumps api to 9\.9\.9"):
        LocalGit(str(repo)).revert(load(repo), "api", ALL, "9.9.9", "x")


@pytest.mark.parametrize("also_cell", [False, True], ids=["real-revert", "targeted-edit"])
def test_a_second_revert_of_the_same_bump_commits_nothing(repo: Path, also_cell: bool) -> None:
    bump(repo, "1.6.0", also_cell=also_cell)
    gitw = LocalGit(str(repo))
    first = gitw.revert(load(repo), "api", ALL, "1.6.0", "canary degraded")
    (repo / "status").mkdir(exist_ok=True)
    (repo / "status" / "note.yaml").write_text("progress: 1\n")  # a status commit on top
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "status")
    count = git(repo, "rev-list", "--count", "HEAD")
    again = gitw.revert(load(repo), "api", ALL, "1.6.0", "canary degraded")
    assert again == first
    assert git(repo, "rev-list", "--count", "HEAD") == count


def test_a_bump_reverted_by_a_person_is_not_reverted_again(repo: Path) -> None:
    bump(repo, "1.6.0")
    git(repo, "revert", "--no-edit", "HEAD")
    head = git(repo, "rev-parse", "HEAD")
    assert LocalGit(str(repo)).revert(load(repo), "api", ALL, "1.6.0", "late alarm") == head
    assert git(repo, "rev-parse", "HEAD") == head
