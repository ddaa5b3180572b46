"""The desired-state model: frozen values built by the loader from a validated repository.

Owns: the typed shape of reconciler.yaml, cells, services, releases and migrations.
Every value is immutable; every collection is a tuple or a read-only mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

from reconciler.core.versions import Version, VersionRange

API_VERSION = "reconciler.dev/v1"


def frozen_map(items: Mapping[str, object] | None = None) -> Mapping[str, object]:
    """A read-only copy of ``items``."""
    return MappingProxyType(dict(items or {}))


class RollbackPolicy(StrEnum):
    """``spec.rollout.rollback``: which waves a failure sets back.

    ``wave``: the failing wave and every later one; waves that baked keep the new version.
    ``rollback-all``: every wave.
    """

    WAVE = "wave"
    ALL = "rollback-all"


@dataclass(frozen=True)
class SourceRef:
    """Where a value came from: a repository path with 1-based line and column."""

    path: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class MaxUnavailable:
    """How many cells of a wave may change at once: a count or a percentage."""

    count: int | None = None
    percent: int | None = None

    def for_cells(self, n: int) -> int:
        """The number of cells allowed to change at once in a wave of ``n`` cells (≥ 1)."""
        if self.count is not None:
            return max(1, self.count)
        pct = self.percent if self.percent is not None else 100
        return max(1, (n * pct) // 100)

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True)
class Wave:
    """An ordered step of a rollout: the cell groups it covers and how long it bakes."""

    name: str
    groups: tuple[str, ...]
    bake_seconds: int
    max_unavailable: MaxUnavailable
    source: SourceRef


@dataclass(frozen=True)
class AlarmRule:
    """A Prometheus query, templated per cell, that must stay at or under ``threshold``;
    or, with ``compare == "baseline"``, templated per version and cell set and compared
    between the cells on a new version and those on the previous one in the same
    ``scope`` (``max_ratio`` / ``max_delta``; a baseline under ``min_baseline`` is not
    divided by). See docs/analysis.md."""

    name: str
    query: str
    threshold: float
    comparison: str = ">"
    min_samples: int = 1
    window_seconds: int = 300
    compare: str = "threshold"
    max_ratio: float | None = None
    max_delta: float | None = None
    min_baseline: float = 0.0
    scope: str = "region"

    @property
    def baseline(self) -> bool:
        """Compared against a baseline rather than a threshold."""
        return self.compare == "baseline"


@dataclass(frozen=True)
class TimeWindow:
    """An allowed window (UTC) for starting waves: weekdays (0=Mon) and HH:MM bounds."""

    days: tuple[int, ...]
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class StatusConfig:
    """Where and as whom the daemon writes status back to Git."""

    path: str = "status"
    author_name: str = "reconciler"
    author_email: str = "reconciler@localhost"


@dataclass(frozen=True)
class Fleet:
    """reconciler.yaml: waves, rollout policy, alarm rules, self-heal, status target."""

    name: str
    waves: tuple[Wave, ...]
    rollback_policy: RollbackPolicy
    parallel_rollback: bool
    self_heal: bool
    canary_max_weight_percent: float
    alarms: tuple[AlarmRule, ...]
    time_windows: tuple[TimeWindow, ...]
    status: StatusConfig
    source: SourceRef


@dataclass(frozen=True)
class KubernetesTarget:
    """Where a cell's workloads live."""

    namespace: str
    context: str | None = None
    kubeconfig: str | None = None


@dataclass(frozen=True)
class DatabaseRef:
    """A cell's database: a logical name and where its credentials come from.

    ``secret_env`` / ``secret_file`` name an environment variable or a file holding a
    libpq connection string; a secret itself is never in the repository.
    """

    name: str
    dbname: str
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    secret_env: str | None = None
    secret_file: str | None = None


@dataclass(frozen=True)
class Cell:
    """One complete, independent copy of the stack serving a slice of customers."""

    name: str
    group: str
    region: str
    zone: str
    weight: float
    kubernetes: KubernetesTarget
    terraform_vars: Mapping[str, object]
    databases: tuple[DatabaseRef, ...]
    source: SourceRef

    def database(self, name: str) -> DatabaseRef | None:
        """The cell's database with logical name ``name``."""
        return next((d for d in self.databases if d.name == name), None)


@dataclass(frozen=True)
class HealthSettings:
    """How a service's rollout is judged healthy."""

    progress_deadline_seconds: int = 600
    min_ready_seconds: int = 0


@dataclass(frozen=True)
class ChartArchive:
    """``kubernetes.helm.chart: {name, version, digest}``: the archive
    ``<name>-<version>.tgz`` of the operator's chart cache, used only when its sha256
    is ``digest`` (``sha256:<hex>``); ``path``: the service file naming it."""

    name: str
    version: str
    digest: str
    path: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"


@dataclass(frozen=True)
class HelmChart:
    """``kubernetes.helm``: a chart directory vendored in the repository (or a pinned
    chart archive: ``archive``, ``chart`` then empty), its values files (applied in
    order, under the per-cell layer) and the Helm release name."""

    chart: str  # repository path of the chart directory ("" for an archive)
    values: tuple[str, ...] = ()  # repository paths of values files
    release_name: str = ""
    archive: ChartArchive | None = None


@dataclass(frozen=True)
class Traffic:
    """How a ``blueGreen`` or ``canary`` service's new version takes traffic in a cell
    (docs/strategies.md): the canary's weights in percent (strictly increasing, the last
    100; ``(100,)`` for blueGreen), the pause after each step, and how long the cell's
    requests are mirrored to it first (0: no shadow phase)."""

    steps: tuple[int, ...] = (100,)
    pause_seconds: int = 60
    shadow_seconds: int = 0


@dataclass(frozen=True)
class Service:
    """A service: Kubernetes manifests (templates, a Kustomize directory or a Helm chart),
    a Terraform stack, health and alarms."""

    name: str
    manifests: tuple[str, ...]  # repository paths of manifest templates
    terraform: str | None  # repository path of the stack directory
    health: HealthSettings
    alarms: tuple[AlarmRule, ...]
    databases: tuple[str, ...]  # logical database names the service uses
    source: SourceRef
    #: How a cell moves to a new version: ``rolling`` (the Deployment's own rolling
    #: update) or ``blueGreen`` (docs/strategies.md).
    strategy: str = "rolling"
    #: blueGreen/canary: steps, pauses and the shadow phase.
    traffic: Traffic = Traffic()
    flag: str | None = None  # the flag this service stands for (``core/flags.py``)
    kustomize: str | None = None  # repository path of a Kustomize directory
    helm: HelmChart | None = None

    @property
    def tool(self) -> str | None:
        """``helm`` or ``kustomize`` when a tool renders the manifests, else None."""
        return "helm" if self.helm else "kustomize" if self.kustomize else None

    @property
    def tool_root(self) -> str | None:
        """The chart or Kustomize directory a tool renders (None for templates and for a
        chart archive, which is not in the repository)."""
        return (self.helm.chart or None) if self.helm else self.kustomize


@dataclass(frozen=True)
class ReleaseEntry:
    """One line of a release: these groups run this version."""

    groups: tuple[str, ...]
    version: Version
    source: SourceRef


@dataclass(frozen=True)
class Release:
    """releases/<svc>.yaml: the version per cell group, bumped by pull requests."""

    service: str
    entries: tuple[ReleaseEntry, ...]
    source: SourceRef

    def version_for(self, group: str) -> Version | None:
        """The version ``group`` should run, or None when the release does not name it."""
        return self._by_group.get(group)

    @cached_property
    def _by_group(self) -> dict[str, Version]:
        out: dict[str, Version] = {}
        for entry in self.entries:
            for g in entry.groups:
                out.setdefault(g, entry.version)
        return out


@dataclass(frozen=True)
class FlagRequirement:
    """A variant needs the cell to run a version of ``service`` within ``versions``."""

    service: str
    versions: VersionRange
    text: str
    source: SourceRef


@dataclass(frozen=True)
class FlagVariant:
    """One variant of a flag: its name, its value (JSON text) and what it requires."""

    name: str
    value: str
    requires: FlagRequirement | None
    source: SourceRef


@dataclass(frozen=True)
class Flag:
    """flags/<name>.yaml: variants, a default variant, optional flagd targeting (JSON
    text) and the variant per cell group, bumped by pull requests like a release."""

    name: str
    variants: tuple[FlagVariant, ...]
    default_variant: str
    targeting: str | None
    entries: tuple[ReleaseEntry, ...]  # ``version``: the variant as a flag version
    source: SourceRef

    def variant(self, name: str) -> FlagVariant | None:
        """The variant called ``name``."""
        return next((v for v in self.variants if v.name == name), None)


@dataclass(frozen=True)
class MigrationStep:
    """One phase of a migration: SQL files in the repository, or a Kubernetes Job."""

    kind: str  # "sql" | "job"
    files: tuple[str, ...] = ()
    job: str | None = None  # repository path of a Job manifest template
    timeout_seconds: int = 600


@dataclass(frozen=True)
class Migration:
    """An expand/contract schema change and the version ranges that need it."""

    id: str
    service: str
    database: str
    required_by: VersionRange
    old_shape_used_by: VersionRange
    soak_seconds: int
    expand: MigrationStep
    contract: MigrationStep | None
    rollback: MigrationStep | None
    source: SourceRef


@dataclass(frozen=True)
class DesiredState:
    """A whole, validated desired-state repository at one revision."""

    revision: str
    fleet: Fleet
    cells: Mapping[str, Cell]
    services: Mapping[str, Service]
    releases: Mapping[str, Release]
    migrations: tuple[Migration, ...]
    file_ids: Mapping[str, str] = field(default_factory=dict)  # path -> content id
    files: Mapping[str, str] = field(default_factory=dict)  # referenced templates, SQL, stacks
    flags: Mapping[str, Flag] = field(default_factory=dict)  # also in services/releases
    #: What renders Helm charts and Kustomize directories (``toolrender.ToolRenderer``),
    #: plugged in by the composition root; None where no tool may run.
    tools: Any = field(default=None, compare=False, repr=False)
    #: Stack directory -> the variables its configuration declares, as read by
    #: Terraform's own parser (compose adds them after loading). A stack not named here
    #: counts every variable the cell passes as an input (core/hashing.py).
    stack_variables: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def files_under(self, prefix: str) -> dict[str, str]:
        """Referenced file texts under directory ``prefix``, keyed by path relative to it."""
        base = prefix.rstrip("/") + "/"
        return {p[len(base):]: t for p, t in sorted(self.files.items()) if p.startswith(base)}

    def files_under_once(self, prefix: str) -> Mapping[str, str]:
        """``files_under(prefix)``, computed once per desired state (read per cell)."""
        found = self._files_under.get(prefix)
        if found is None:
            found = self._files_under[prefix] = MappingProxyType(self.files_under(prefix))
        return found

    @cached_property
    def _files_under(self) -> dict[str, Mapping[str, str]]:
        return {}

    def wave_of_group(self, group: str) -> Wave | None:
        """The wave that names ``group``."""
        return next((w for w in self.fleet.waves if group in w.groups), None)

    def cells_of_wave(self, wave: Wave) -> tuple[Cell, ...]:
        """The wave's cells, sorted by name."""
        return tuple(sorted((c for c in self.cells.values() if c.group in wave.groups),
                            key=lambda c: c.name))

    def desired_version(self, service: str, cell: Cell) -> Version | None:
        """The version ``cell`` should run for ``service``."""
        release = self.releases.get(service)
        return release.version_for(cell.group) if release else None

    def migrations_of(self, service: str) -> tuple[Migration, ...]:
        """The service's migrations in id order."""
        return self._migrations_by_service.get(service, ())

    @cached_property
    def _migrations_by_service(self) -> dict[str, tuple[Migration, ...]]:
        out: dict[str, list[Migration]] = {}
        for m in sorted(self.migrations, key=lambda m: m.id):
            out.setdefault(m.service, []).append(m)
        return {k: tuple(v) for k, v in out.items()}
