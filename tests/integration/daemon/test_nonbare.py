"""A local non-bare repository given to ``reconciler run`` is refused at start, with the
way out: Git (libgit2's local transport) refuses every push to it, so status and reverts
would queue forever. A bare repository at a local path is followed and pushed to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.compose.sources import open_source
from reconciler.daemon.config import DaemonConfig, RepoConfig
from reconciler.engine.tick import TickReport
from reconciler.testing.gitserver import git

pytestmark = pytest.mark.git
EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"


def _clone(tmp_path: Path) -> Path:
    work = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "fleet")
    return work


def _cfg(tmp_path: Path, url: Path, branch: str = "main") -> DaemonConfig:
    return DaemonConfig(repo=RepoConfig(url=str(url), branch=branch),
                        state_dir=str(tmp_path / "state"))


def test_a_non_bare_repository_is_refused_at_start(tmp_path: Path) -> None:
    work = _clone(tmp_path)
    with pytest.raises(PermanentError) as e:
        open_source(_cfg(tmp_path, work))
    assert "is a non-bare repository" in str(e.value)
    assert "git clone --bare" in str(e.value)
    assert not (tmp_path / "state" / "git").exists()  # nothing fetched


def test_run_exits_1_with_the_reason(tmp_path: Path) -> None:
    work = _clone(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "run", "--repo", str(work),
                           "--state-dir", str(tmp_path / "state"), "--listen",
                           "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "non-bare repository" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bare_repository_at_a_local_path_is_followed_and_status_pushed(
        tmp_path: Path) -> None:
    work = _clone(tmp_path)
    git(tmp_path, "clone", "-q", "--bare", str(work), str(tmp_path / "fleet.git"))
    source = open_source(_cfg(tmp_path, tmp_path / "fleet.git"))
    result = source.sync()
    assert result.revision == git(work, "rev-parse", "HEAD")
    source.publish(TickReport(result.revision, (), None))
    assert source.pending() == 0
    log = git(tmp_path / "fleet.git", "log", "--format=%an|%s", "main")
    assert log.splitlines()[0].startswith("reconciler|status:"), log
