"""Real Git remotes on loopback: an HTTP server running git-http-backend with basic auth,
and an sshd with key auth. Missing parts fail under CI=true and skip elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.testing.gitserver import (
    GitServerUnavailable,
    HttpGitServer,
    SshGitServer,
    seed_bare,
)

USER, PASSWORD = "deploy-bot", "hunter2-very-secret-token"


def _unavailable(e: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"git servers unavailable under CI: {e}")
    pytest.skip(f"git servers unavailable: {e}")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "releases").mkdir(parents=True)
    (src / "reconciler.yaml").write_text("kind: Fleet\n")
    (src / "releases" / "api.yaml").write_text("version: 1.0.0\n")
    r = tmp_path / "srv"
    r.mkdir()
    seed_bare(r, "fleet.git", src)
    return r


@pytest.fixture()
def http_server(root: Path) -> Iterator[HttpGitServer]:
    try:
        with HttpGitServer(root, USER, PASSWORD) as s:
            yield s
    except GitServerUnavailable as e:
        _unavailable(e)


@pytest.fixture()
def ssh_server(root: Path, tmp_path: Path) -> Iterator[SshGitServer]:
    try:
        with SshGitServer(root, tmp_path / "sshd") as s:
            yield s
    except GitServerUnavailable as e:
        _unavailable(e)
