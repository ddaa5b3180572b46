"""End-to-end fixtures: a local control plane, PostgreSQL, Prometheus with a test exporter,
and the e2e fleet repository (tests/e2e/fleet) wired to them in a temporary directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.adapters.terraform.engine import DEFAULT_MIRROR, mirror_cli_config
from reconciler.localparts.k8s import ControlPlane
from reconciler.localparts.postgres import PostgresCluster, start_cluster
from reconciler.localparts.prometheus import (
    PrometheusServer,
    TestExporter,
    prometheus_binary,
    prometheus_with_exporter,
)
from reconciler.testing.k8s import control_plane_fixture

FLEET = Path(__file__).parent / "fleet"
CELLS = ("e2e-c1", "e2e-z1", "e2e-r1", "e2e-r2")
SECRET_ENV = "E2E_PGPASSWORD"
LOCAL_PROVIDER = "registry.terraform.io/hashicorp/local"

e2e_cluster = control_plane_fixture("e2e")


def unavailable(reason: str) -> None:
    """Fail in CI (every real part must be there), skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def e2e_pg() -> Iterator[PostgresCluster]:
    try:
        cluster = start_cluster()
    except Exception as exc:  # any failure to start means "unavailable"
        unavailable(f"PostgreSQL not available: {exc}")
        raise
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def e2e_prom() -> Iterator[tuple[PrometheusServer, TestExporter]]:
    if prometheus_binary() is None:
        unavailable("prometheus is not installed (apt-get install prometheus)")
    with prometheus_with_exporter(list(CELLS)) as pair:
        yield pair


def set_canary_bake(repo: Path, bake: str) -> None:
    """Rewrite the canary wave's bake time in ``repo``'s reconciler.yaml."""
    path = repo / "reconciler.yaml"
    text = re.sub(r"(\{name: canary, groups: \[canary\], bake: )[^,]+", rf"\g<1>{bake}",
                  path.read_text())
    path.write_text(text)


def bump_release(repo: Path, version: str, canary_bake: str | None = None) -> None:
    """Bump every group of the shop service to ``version`` in ``repo``'s working tree (and
    set the canary's bake time, so an alarm can fire before it is baked)."""
    rel = repo / "releases" / "shop.yaml"
    lines = rel.read_text().splitlines()
    lines[-1] = f"      version: {version}"
    rel.write_text("\n".join(lines) + "\n")
    if canary_bake:
        set_canary_bake(repo, canary_bake)


@dataclass
class Fleet:
    """The e2e repository in a temp dir, wired to the running parts."""

    repo: Path
    plane: ControlPlane
    pg: PostgresCluster
    prom: PrometheusServer
    exporter: TestExporter
    state: Path
    terraform_cli_config: Path
    tf_out: Path

    def git(self, *args: str) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
               "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
        return subprocess.run(["git", *args], cwd=self.repo, env=env, check=True, text=True,
                              capture_output=True).stdout.strip()

    def set_version(self, version: str, canary_bake: str | None = None) -> None:
        """Merge a pull request bumping the shop service (see ``bump_release``) and push
        it to the fleet's bare remote."""
        self.pull()
        bump_release(self.repo, version, canary_bake)
        self.git("commit", "-q", "-am", f"bump shop to {version}")
        self.push()

    def pull(self) -> None:
        """Take what the reconciler pushed (status, reverts) into the working clone."""
        self.git("pull", "-q", "--rebase", "origin", "main")

    def push(self) -> None:
        """Push like a person: rebase over the reconciler's status commits and retry."""
        for attempt in range(10):
            try:
                self.git("push", "-q", "origin", "HEAD:main")
                return
            except subprocess.CalledProcessError:
                if attempt == 9:
                    raise
                self.pull()

    @property
    def remote(self) -> Path:
        """The bare repository the reconciler follows (``file://``)."""
        return self.state.parent / "remote.git"


@pytest.fixture
def fleet(tmp_path: Path, e2e_cluster: ControlPlane, e2e_pg: PostgresCluster,
          e2e_prom: tuple[PrometheusServer, TestExporter],
          monkeypatch: pytest.MonkeyPatch) -> Fleet:
    if not (DEFAULT_MIRROR / LOCAL_PROVIDER / "1.4.0").is_dir():
        unavailable("hashicorp/local is not in the mirror: run hack/terraform.sh")
    tf_config, tf_out = tmp_path / "terraformrc", tmp_path / "tf-out"
    tf_config.write_text(mirror_cli_config(DEFAULT_MIRROR, [LOCAL_PROVIDER]))
    tf_out.mkdir()
    repo = tmp_path / "repo"
    shutil.copytree(FLEET, repo)
    suffix = uuid.uuid4().hex[:6]
    for f in (repo / "cells").glob("*.yaml"):
        text = (f.read_text().replace("KUBECONFIG_PATH", str(e2e_cluster.kubeconfig))
                .replace("PG_PORT", str(e2e_pg.port)).replace("PG_USER", e2e_pg.user)
                .replace("TF_OUT_DIR", str(tf_out)))
        text = text.replace("namespace: e2e-", f"namespace: e2e{suffix}-")
        text = text.replace("dbname: e2e_", f"dbname: e2e{suffix}_")
        f.write_text(text)
    for cell in CELLS:
        e2e_pg.create_database(f"e2e{suffix}_{cell.split('-')[1]}")
    for cell in CELLS:
        e2e_prom[1].set_error_rate(cell, 0.0)
    monkeypatch.setenv(SECRET_ENV, e2e_pg.password)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "fleet")):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={
            **os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"})
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(tmp_path / "remote.git")],
                   check=True, capture_output=True)
    subprocess.run(["git", "remote", "add", "origin", str(tmp_path / "remote.git")], cwd=repo,
                   check=True)
    return Fleet(repo, e2e_cluster, e2e_pg, e2e_prom[0], e2e_prom[1], tmp_path / "state",
                 tf_config, tf_out)
