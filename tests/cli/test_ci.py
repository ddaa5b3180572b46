"""docs/ci.md: the pull-request check's script on a real clone (the base branch read from
``origin``), and the GitHub Actions / GitLab CI files the page shows are the ones in
``examples/ci/`` and run that script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli.test_cli import EXAMPLE, ROOT, env
from tests.cli.test_diff import BUMP, git

CI = ROOT / "examples" / "ci"
POLICY = ROOT / "examples" / "policy.yaml"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A pull request's checkout: ``origin/main`` holds the example fleet."""
    seed = tmp_path / "seed"
    shutil.copytree(EXAMPLE, seed)
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "the example fleet")
    git(tmp_path, "clone", "-q", "--bare", str(seed), "origin.git")
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), "pr")
    work = tmp_path / "pr"
    git(work, "checkout", "-qb", "bump-api")
    return work


def check(work: Path) -> subprocess.CompletedProcess[str]:
    extra = {"BASE": "origin/main", "POLICY": str(POLICY), "OUT": str(work / "diff.md"),
             "RECONCILER": f"{sys.executable} -m reconciler.cli"}
    return subprocess.run(["bash", str(CI / "pr-check.sh"), "."], cwd=work, text=True,
                          capture_output=True, timeout=120, env=env(**extra), check=False)


def test_the_script_previews_a_valid_change(clone: Path) -> None:
    (clone / "releases" / "api.yaml").write_text(BUMP)
    git(clone, "commit", "-qam", "api 1.6.0")
    r = check(clone)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the merge changes the fleet" in r.stdout
    md = (clone / "diff.md").read_text()
    assert md.startswith("### reconciler diff: origin/main (")
    assert "<details><summary>wave 1/4 canary — 2 cells</summary>" in md


def test_the_script_passes_a_change_that_changes_nothing(clone: Path) -> None:
    (clone / "README.md").write_text("notes only\n")
    r = check(clone)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no changes to the fleet" in r.stdout
    assert "No changes: merging this changes nothing" in (clone / "diff.md").read_text()


def test_the_script_fails_an_invalid_or_disallowed_change(clone: Path) -> None:
    cell = clone / "cells" / "euw1-a-01.yaml"
    cell.write_text(cell.read_text().replace("context: eu-west-1", "context: prod-admin"))
    r = check(clone)
    assert r.returncode == 1
    assert "cells/euw1-a-01.yaml" in r.stderr  # the policy names the cell's target
    assert "invalid" in (clone / "diff.md").read_text()


def test_the_page_shows_the_example_files_and_they_run_the_script() -> None:
    page = (ROOT / "docs" / "ci.md").read_text()
    for name in ("pr-check.sh", "github-actions.yml", "gitlab-ci.yml"):
        assert (CI / name).read_text() in page, f"docs/ci.md does not show {name} as it is"
    gh = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = gh["jobs"]["preview"]["steps"]
    assert any("pr-check.sh" in s.get("run", "") for s in steps)
    assert gh["permissions"] == {"contents": "read", "pull-requests": "write"}
    triggers = gh.get("on", gh.get(True))  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and "pull_request_target" not in triggers
    gl = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    assert any("pr-check.sh" in line for line in gl["reconciler-preview"]["script"])
    assert os.access(CI / "pr-check.sh", os.X_OK)
