"""Assembling a Reconciler from the real adapters for a repository directory.

Owns: one place where the daemon's local mode, the demo and the end-to-end tests wire
the same loader, snapshot readers and backends, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.fs import DirectorySource
from reconciler.adapters.gitwrite import LocalGit
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.adapters.prometheus import PrometheusClient
from reconciler.adapters.terraform import TerraformRunner, TerraformSettings
from reconciler.core.loader import LoadResult, ParseCache, load_repository
from reconciler.daemon.execution.backends import Backends
from reconciler.daemon.execution.progress import FileProgressStore
from reconciler.daemon.execution.reconcile import Readers, Reconciler
from reconciler.daemon.execution.wiring import AlarmEvaluator, KubernetesApply, MigrationRunner


@dataclass(frozen=True)
class LocalSettings:
    """Where things are for a reconciler over a local repository directory."""

    repo: Path
    state_dir: Path
    prometheus_url: str | None = None
    git_author: tuple[str, str] | None = ("reconciler", "reconciler@localhost")
    terraform_cli_config: Path | None = None
    parallel: int = 8


def local_reconciler(s: LocalSettings) -> Reconciler:
    """A Reconciler over ``s.repo`` with every real backend."""
    cache = ParseCache()

    def load() -> LoadResult:
        return load_repository(DirectorySource(s.repo), cache)

    clients = ClientCache()
    kube = KubernetesApply(clients)
    migrations = MigrationRunner(clients=clients)
    terraform = TerraformRunner(TerraformSettings(state_dir=s.state_dir / "terraform",
                                                  cli_config_file=s.terraform_cli_config))
    progress = FileProgressStore(s.state_dir / "progress.json")
    alarms = AlarmEvaluator(PrometheusClient(s.prometheus_url)).read \
        if s.prometheus_url else None
    git = LocalGit(str(s.repo), *s.git_author) if s.git_author and \
        (s.repo / ".git").exists() else None
    readers = Readers(services=kube.read, terraform=terraform.read, migrations=migrations.read,
                      alarms=alarms, rollout=progress.rollout)
    backends = Backends(kubernetes=kube, terraform=terraform, migrations=migrations, git=git,
                        progress=progress)
    return Reconciler(load, readers, backends, parallel=s.parallel)
