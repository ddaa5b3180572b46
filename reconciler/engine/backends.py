"""What the executor talks to, as protocols: the real adapters plug in behind them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeAlias

from reconciler.core.kinds.migration import MigrationAction
from reconciler.core.model import Cell, DesiredState

#: A decoded JSON value: what a Terraform output holds (any shape the module declares).
JsonValue: TypeAlias = (
    "str | int | float | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None")


class TerraformBackend(Protocol):
    """Applies a cell's stack for a service and reads its outputs."""

    def apply(self, desired: DesiredState, cell: Cell, service: str,
              version: str) -> Mapping[str, JsonValue]:
        """Apply and return the (non-sensitive) outputs."""
        ...

    def outputs(self, desired: DesiredState, cell: Cell,
                service: str) -> Mapping[str, JsonValue]:
        """The outputs of the last apply (empty when never applied)."""
        ...


class KubernetesBackend(Protocol):
    """Renders and applies a service's manifests in a cell."""

    def apply(self, desired: DesiredState, cell: Cell, service: str, version: str,
              terraform_outputs: Mapping[str, JsonValue]) -> str:
        """Apply; return a one-line summary of the change set."""
        ...


class TrafficBackend(Protocol):
    """Moves a blue-green service's traffic between its colours in a cell."""

    def switch(self, desired: DesiredState, cell: Cell, service: str, version: str) -> str:
        """Point the Services at the colour running ``version``; a one-line summary."""
        ...

    def scale_down(self, desired: DesiredState, cell: Cell, service: str) -> str:
        """Scale the colour that does not serve to zero; a one-line summary."""
        ...

    def shift(self, desired: DesiredState, cell: Cell, service: str, version: str,
              weight: int, mirror: bool, now: datetime) -> str:
        """The colour running ``version`` (not serving yet) takes ``weight`` percent of the
        cell's requests, or a mirror of them, from ``now``; a one-line summary."""
        ...


class MigrationBackend(Protocol):
    """Runs one phase of a migration in one cell's database."""

    def run(self, desired: DesiredState, cell: str, migration: str,
            action: MigrationAction) -> str:
        """Run ``action`` (expand, contract, rollback); return the outcome word."""
        ...


class GitBackend(Protocol):
    """Commits a revert of the bump that failed."""

    def revert(self, desired: DesiredState, service: str, groups: Sequence[str],
               version: str, reason: str) -> str:
        """Commit (and push) the revert; return the new commit id."""
        ...


class ProgressStore(Protocol):
    """Rollout progress that must survive restarts (persisted, e.g. in Git status)."""

    def start_bake(self, service: str, wave: str, version: str, at: datetime) -> None:
        ...

    def record_failure(self, service: str, wave: str, version: str, reason: str) -> None:
        ...

    def clear_failure(self, service: str, wave: str) -> bool:
        """Forget the wave's failure (its revert is the desired state now); False when
        it is kept for now (the revert has not reached the remote yet)."""
        ...


@dataclass(frozen=True)
class Backends:
    """Every backend the executor may need; absent ones make their steps fail clearly."""

    kubernetes: KubernetesBackend | None
    terraform: TerraformBackend | None
    migrations: MigrationBackend | None
    git: GitBackend | None
    progress: ProgressStore
    traffic: TrafficBackend | None = None
