"""Revert commits for a flag's automatic rollback, on a real local Git repository: the
flag file is set back (a real ``git revert`` of a flag-only commit, a targeted edit of
the flag file otherwise), exactly once."""

from __future__ import annotations

from pathlib import Path

from reconciler.adapters.git.revert import LocalGit
from reconciler.core import flags
from tests.integration.gittree.test_gittree import git
from tests.integration.gitwrite.test_revert import ALL, LATER, load, repo

__all__ = ["repo"]

FLAG = """apiVersion: reconciler.dev/v1
kind: Flag
metadata:
  name: checkout-v2
spec:
  variants:
    - name: "off"
      value: false
    - name: "on"
      value: true
  defaultVariant: "off"
  groups:
    # every group; the kill switch sets them all back to "off"
    - groups: [canary, euw1-a, euw1-b, euw1-c, use1-a, use1-b, use1-c]
      variant: "off"
"""
ON = str(flags.as_version(["off", "on"], "off", "on"))


def add_flag(repo: Path) -> None:
    (repo / "flags").mkdir()
    (repo / "flags" / "checkout-v2.yaml").write_text(FLAG)
    git(repo, "add", "flags")
    git(repo, "commit", "-q", "-m", "flag checkout-v2, off")


def turn_on(repo: Path, also_cell: bool = False) -> str:
    path = repo / "flags" / "checkout-v2.yaml"
    path.write_text(path.read_text().replace('variant: "off"', 'variant: "on"'))
    if also_cell:
        cell = repo / "cells" / "use1-c-02.yaml"
        cell.write_text(cell.read_text().replace("weight: 8", "weight: 9"))
    git(repo, "commit", "-q", "-am", "checkout-v2 on")
    return git(repo, "rev-parse", "HEAD")


def variants(repo: Path) -> dict[str, str | None]:
    flag = load(repo).flags["checkout-v2"]
    rel = flags.stand_ins(flag)[1]
    return {g: flags.variant_of(rel.version_for(g)) for g in ALL}


def test_flag_only_commit_is_really_reverted(repo: Path) -> None:
    add_flag(repo)
    sha = turn_on(repo)
    git_ = LocalGit(str(repo))
    new = git_.revert(load(repo), "flag.checkout-v2", ALL, ON, "alarm 'x' fired on c after on")
    assert git(repo, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{sha}~1^{{tree}}")
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith("Roll back flag.checkout-v2 on in canary")
    assert f"Reconciler-Rollback-Of: {sha}" in message
    assert set(variants(repo).values()) == {"off"}
    again = git_.revert(load(repo), "flag.checkout-v2", ALL, ON, "again")
    assert again == new  # idempotent: one revert commit per failure


def test_failing_wave_and_later_set_back_by_a_targeted_edit(repo: Path) -> None:
    add_flag(repo)
    turn_on(repo, also_cell=True)
    LocalGit(str(repo)).revert(load(repo), "flag.checkout-v2", LATER, ON, "euw1-a-01 alarm")
    after = variants(repo)
    assert after["canary"] == "on"
    assert {after[g] for g in LATER} == {"off"}
    assert load(repo).cells["use1-c-02"].weight == 9.0
    assert "# every group" in (repo / "flags" / "checkout-v2.yaml").read_text()
