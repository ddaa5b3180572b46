"""``reconciler diff`` as a user runs it on a Git repository: two revisions compared
without a checkout, the working tree against HEAD, a repository in a subdirectory;
manifests, Terraform inputs and SQL in wave order; exit codes 0 / 1 / 2; Markdown."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cli.test_cli import EXAMPLE, ROOT, run

HOWTO = ROOT / "docs" / "repository.md"
NOW = "2026-11-22T10:00:00Z"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_AUTHOR_DATE": "2026-11-22T09:00:00Z", "GIT_COMMITTER_DATE":
           "2026-11-22T09:00:00Z"}
BUMP = (EXAMPLE / "releases" / "api.yaml").read_text().replace("1.5.0", "1.6.0")
MIGRATION = """\
apiVersion: reconciler.dev/v1
kind: Migration
metadata:
  name: 0008-order-notes
spec:
  service: api
  database: main
  requiredBy: ">=1.6.0"
  oldShapeUsedBy: "<1.6.0"
  soak: 1h
  expand:
    sql: [sql/0008-expand.sql]
  contract:
    sql: [sql/0008-contract.sql]
"""


def git(cwd: Path, *args: str) -> str:
    import os

    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def _bump(repo: Path) -> None:
    (repo / "releases" / "api.yaml").write_text(BUMP)
    (repo / "migrations" / "api" / "0008-order-notes.yaml").write_text(MIGRATION)
    (repo / "migrations" / "api" / "sql" / "0008-expand.sql").write_text(
        "ALTER TABLE orders ADD COLUMN IF NOT EXISTS notes text;\n")
    (repo / "migrations" / "api" / "sql" / "0008-contract.sql").write_text(
        "ALTER TABLE orders ALTER COLUMN notes SET NOT NULL;\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example fleet committed (``main``), then a bump with a migration committed."""
    work = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the example fleet")
    git(work, "checkout", "-qb", "bump")
    _bump(work)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "api 1.6.0 with migration 0008")
    return work


def test_two_revisions_without_a_checkout(repo: Path) -> None:
    (repo / "releases" / "worker.yaml").write_text("not even yaml: [")  # the working tree
    r = run("diff", str(repo), "--base", "main", "--head", "bump", "--now", NOW)
    assert r.returncode == 2, r.stderr
    out = r.stdout
    assert out.startswith("Diff: main (")
    assert "14 cells change in 4 waves" in out
    waves = [out.index(f"wave {i}/4 ") for i in range(1, 5)]
    assert waves == sorted(waves), "waves in order"
    canary = out[waves[0]:waves[1]]
    assert "~ api 1.5.0 → 1.6.0 on 2 cells: euw1-canary-01, euw1-canary-02" in canary
    assert "-        image: registry.shop.example/api:1.5.0" in canary
    assert "+        image: registry.shop.example/api:1.6.0" in canary
    assert 'terraform services/api/terraform: service_version "1.5.0" → "1.6.0"' in canary
    sql = out[out.index("\nSQL\n"):]
    assert "0008-order-notes expand on database 'main' of 14 cells" in sql
    assert "    ALTER TABLE orders ADD COLUMN IF NOT EXISTS notes text;" in sql
    assert sql.index(" expand ") < sql.index(" contract ")
    assert git(repo, "status", "--porcelain").strip() == "M releases/worker.yaml"


def test_the_working_tree_against_head(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    assert run("diff", str(repo)).returncode == 0  # nothing edited
    (repo / "releases" / "api.yaml").write_text(BUMP)
    r = run("diff", str(repo), "--now", NOW, "--cell", "euw1-canary-01", "use1-c-02")
    assert r.returncode == 2, r.stderr
    assert "Diff: HEAD (" in r.stdout and "→ the working tree" in r.stdout
    assert "2 cells change in 2 waves" in r.stdout
    assert "SQL" not in r.stdout  # 0007 is contracted everywhere already


def test_a_repository_in_a_subdirectory(tmp_path: Path) -> None:
    top = tmp_path / "project"
    shutil.copytree(EXAMPLE, top / "deploy" / "fleet")
    git(top, "init", "-q", "-b", "main")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "fleet under deploy/")
    _bump(top / "deploy" / "fleet")
    r = run("diff", "deploy/fleet", "--base", "main", "--now", NOW, "-o", "json", cwd=top)
    assert r.returncode == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["changed"] is True and doc["summary"]["cells"] == 14
    assert [s["action"] for s in doc["sql"]] == ["expand", "contract"]


def test_markdown_comment_and_yaml(repo: Path) -> None:
    r = run("diff", str(repo), "--base", "main", "--head", "bump", "--now", NOW,
            "-o", "markdown", SHOP_DB_PASSWORD="hunter2-secret")
    assert r.returncode == 2, r.stderr
    md = r.stdout
    assert md.startswith("### reconciler diff: main (")
    assert "| wave | cells | services | steps | Terraform stacks | migration steps |" in md
    assert md.count("<details><summary>wave ") == 4 and "<summary>SQL — 2 migration steps" in md
    assert "hunter2" not in md
    as_yaml = run("diff", str(repo), "--base", "main", "--head", "bump", "--now", NOW,
                  "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["summary"]["migrationSteps"] == 2


def test_exit_codes(repo: Path, tmp_path: Path) -> None:
    assert run("diff", str(repo), "--base", "bump", "--head", "bump").returncode == 0
    bad_rev = run("diff", str(repo), "--base", "no-such-branch")
    assert bad_rev.returncode == 1 and "--base no-such-branch: unknown revision" in bad_rev.stderr
    assert run("diff", str(repo), "--no-such-flag").returncode == 1
    assert run("diff", str(repo), "--cell", "nope").returncode == 1
    plain = tmp_path / "plain"
    shutil.copytree(EXAMPLE, plain)
    r = run("diff", str(plain), "--base", "main")
    assert r.returncode == 1 and "not in a Git repository" in r.stderr
    broken = repo / "cells" / "euw1-a-01.yaml"
    broken.write_text(broken.read_text().replace("weight: 8", "weight: heavy"))
    r = run("diff", "fleet", cwd=repo.parent)
    assert r.returncode == 1
    assert r.stderr.startswith("fleet/cells/euw1-a-01.yaml:9:11: spec.weight:")
    git(repo, "commit", "-qam", "a broken cell")
    r = run("diff", str(repo), "--base", "HEAD", "--head", "HEAD")
    assert r.returncode == 1
    assert r.stderr.startswith("HEAD:cells/euw1-a-01.yaml:9:11: spec.weight:")


def test_the_settled_example_previews_like_plan(repo: Path) -> None:
    """The diff's plan is the plan of the head against the fleet settled on the base."""
    git(repo, "checkout", "-q", "main")
    (repo / "releases" / "api.yaml").write_text(BUMP)
    diff = json.loads(run("diff", str(repo), "--now", NOW, "-o", "json").stdout)
    plan = json.loads(run("plan", str(repo), "--live", str(ROOT / "examples" /
                                                        "live-settled.json"),
                          "--now", NOW, "-o", "json").stdout)
    assert diff["summary"]["steps"] == plan["summary"]["steps"] == 42


def test_a_head_the_policy_rejects_is_not_previewed(repo: Path) -> None:
    """The operator's policy is checked before anything is planned or dry-run."""
    policy = str(ROOT / "examples" / "policy.yaml")
    ok = run("diff", str(repo), "--base", "main", "--head", "bump", "--policy", policy,
             "--now", NOW)
    assert ok.returncode == 2, ok.stderr
    cell = repo / "cells" / "euw1-a-01.yaml"
    cell.write_text(cell.read_text().replace("context: eu-west-1", "context: prod-admin"))
    r = run("diff", "fleet", "--base", "main", "--policy", policy, "--terraform", "plan",
            cwd=repo.parent)
    assert r.returncode == 1
    assert r.stderr.startswith("fleet/cells/euw1-a-01.yaml:") and "prod-admin" in r.stderr
    assert "is not a valid desired state" in r.stderr.splitlines()[-1]
