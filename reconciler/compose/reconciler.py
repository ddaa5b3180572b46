"""Assembling a Reconciler from the real adapters for a repository directory.

Owns: one place where the daemon's local mode, the demo and the end-to-end tests wire
the same loader, snapshot readers and backends, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.fs.progress import FileProgressStore
from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.git.progress import GitProgressStore
from reconciler.adapters.git.revert import LocalGit
from reconciler.adapters.git.tree import GitTreeSource
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.adapters.prometheus import PrometheusClient
from reconciler.adapters.terraform import TerraformRunner, TerraformSettings
from reconciler.compose.wiring import AlarmEvaluator, KubernetesApply, MigrationRunner
from reconciler.core.live import WaveProgress
from reconciler.core.loader import LoadResult, ParseCache, load_repository
from reconciler.engine.backends import Backends, GitBackend, ProgressStore
from reconciler.engine.tick import Readers, Reconciler


@dataclass(frozen=True)
class LocalSettings:
    """Where things are for a reconciler over a local repository directory."""

    repo: Path
    state_dir: Path
    prometheus_url: str | None = None
    git_author: tuple[str, str] | None = ("reconciler", "reconciler@localhost")
    terraform_cli_config: Path | None = None
    parallel: int = 8


def _build(load: Callable[[], LoadResult], state_dir: Path, prometheus_url: str | None,
           git: GitBackend | None, progress: ProgressStore,
           rollout: Callable[[], Mapping[str, Mapping[str, WaveProgress]]],
           terraform_cli_config: Path | None, parallel: int) -> Reconciler:
    clients = ClientCache()
    kube = KubernetesApply(clients)
    migrations = MigrationRunner(clients=clients)
    terraform = TerraformRunner(TerraformSettings(state_dir=state_dir / "terraform",
                                                  cli_config_file=terraform_cli_config))
    alarms = AlarmEvaluator(PrometheusClient(prometheus_url)).read if prometheus_url else None
    readers = Readers(services=kube.read, terraform=terraform.read, migrations=migrations.read,
                      alarms=alarms, rollout=rollout, terraform_drift=terraform.drift_addresses)
    backends = Backends(kubernetes=kube, terraform=terraform, migrations=migrations, git=git,
                        progress=progress)
    return Reconciler(load, readers, backends, parallel=parallel)


def local_reconciler(s: LocalSettings) -> Reconciler:
    """A Reconciler over ``s.repo`` with every real backend."""
    cache = ParseCache()

    def load() -> LoadResult:
        return load_repository(DirectorySource(s.repo), cache)

    progress = FileProgressStore(s.state_dir / "progress.json")
    git = LocalGit(str(s.repo), *s.git_author) if s.git_author and \
        (s.repo / ".git").exists() else None
    return _build(load, s.state_dir, s.prometheus_url, git, progress, progress.rollout,
                  s.terraform_cli_config, s.parallel)


@dataclass(frozen=True)
class GitSettings:
    """Where things are for a reconciler over a (bare) Git cache of the remote."""

    cache: Path
    branch: str
    state_dir: Path
    revision: Callable[[], str | None]
    author: tuple[str, str] = ("reconciler", "reconciler@localhost")
    prometheus_url: str | None = None
    terraform_cli_config: Path | None = None
    parallel: int = 8


def git_reconciler(s: GitSettings) -> Reconciler:
    """A Reconciler loading ``s.revision()`` from the Git cache; progress and reverts go to
    the local branch (the daemon pushes them)."""
    cache = ParseCache()
    repo = pygit2.Repository(str(s.cache))
    ref = f"refs/heads/{s.branch}"

    def load() -> LoadResult:
        revision = s.revision()
        if revision is None:
            raise PermanentError("no verified desired revision yet")
        return load_repository(GitTreeSource(repo, revision), cache)

    progress = GitProgressStore(repo, ref, s.author)
    git = LocalGit(str(s.cache), *s.author, ref=ref)
    return _build(load, s.state_dir, s.prometheus_url, git, progress, progress.rollout,
                  s.terraform_cli_config, s.parallel)
