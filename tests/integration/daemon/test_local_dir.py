"""``reconciler run --repo DIR`` on a plain directory: watched, re-planned on save, status
in the state directory; an invalid save is reported with file:line:col and the last good
revision stays."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.compose.daemon import build_daemon
from reconciler.daemon.config import DaemonConfig, RepoConfig
from reconciler.testing.gitserver import free_port

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"


def _wait(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_watched_directory(tmp_path: Path) -> None:
    repo = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, repo)
    state = tmp_path / "state"
    cfg = DaemonConfig(repo=RepoConfig(url=str(repo)), listen=f"127.0.0.1:{free_port()}",
                       state_dir=str(state), poll_interval=3600, reconcile_interval=3600)
    d = build_daemon(cfg)
    desired = state / "status" / "desired.yaml"
    d.start()
    try:
        _wait(lambda: desired.exists() and "valid: true" in desired.read_text(), "first tick")
        release = repo / "releases" / "api.yaml"
        good = release.read_text()
        release.write_text(good.replace("version: 1.5.0", "version: [oops", 1))
        _wait(lambda: "valid: false" in desired.read_text(), "the invalid save")
        text = desired.read_text()
        assert "releases/api.yaml:" in text and "lastGoodRevision" in text
        assert d.source is not None and d.source.reconciler.last_good is not None
        release.write_text(good)
        _wait(lambda: "valid: true" in desired.read_text(), "the fixed save")
    finally:
        d.shutdown()
