"""Real Git remotes on loopback: an HTTP server running git-http-backend with basic auth,
and an sshd with key auth. Missing parts fail under CI=true and skip elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.testing.gitserver import (
    GitServerUnavailable,
    HttpGitServer,
    SshGitServer,
    seed_bare,
    unavailable,
)

USER, PASSWORD = "deploy-bot", "hunter2-very-secret-token"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """Server root with ``fleet.git`` seeded with a release and a status file."""
    src = tmp_path / "src"
    (src / "releases").mkdir(parents=True)
    (src / "status").mkdir()
    (src / "reconciler.yaml").write_text("kind: Fleet\n")
    (src / "releases" / "api.yaml").write_text("version: 1.0.0\n")
    (src / "status" / "desired.yaml").write_text("valid: unknown\n")
    r = tmp_path / "srv"
    r.mkdir()
    seed_bare(r, "fleet.git", src)
    return r


@pytest.fixture()
def http_server(root: Path) -> Iterator[HttpGitServer]:
    try:
        server = HttpGitServer(root, USER, PASSWORD).start()
    except GitServerUnavailable as e:
        unavailable(e)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def ssh_server(root: Path, tmp_path: Path) -> Iterator[SshGitServer]:
    try:
        server = SshGitServer(root, tmp_path / "sshd").start()
    except GitServerUnavailable as e:
        unavailable(e)
    try:
        yield server
    finally:
        server.stop()
