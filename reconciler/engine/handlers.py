"""Step handlers: one function per step kind, each returning a one-line detail.

A handler carries out what the planner decided and decides nothing itself: a step that
lacks what its kind needs (a cell, a version, the groups of a revert) fails permanently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.core.kinds.migration import MigrationAction
from reconciler.core.model import DesiredState
from reconciler.core.plan import Step, StepKind
from reconciler.engine.backends import Backends, JsonValue

Handler = Callable[[Step, DesiredState, Backends, datetime], str]
_B = TypeVar("_B")


def _need(backend: _B | None, what: str) -> _B:
    """The backend, or a permanent error naming the one that is not configured."""
    if backend is None:
        raise PermanentError(f"no {what} backend is configured")
    return backend


def _field(step: Step, value: str | None, name: str) -> str:
    """A field the step's kind requires, or a permanent error naming it."""
    if not value:
        raise PermanentError(f"step {step.id} has no {name}")
    return value


def terraform_apply(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    terraform = _need(b.terraform, "terraform")
    cell, version = _field(step, step.cell, "cell"), _field(step, step.to_version, "version")
    outputs = terraform.apply(desired, desired.cells[cell], step.service, version)
    return f"terraform applied ({len(outputs)} outputs)"


def kubernetes_apply(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    kubernetes = _need(b.kubernetes, "kubernetes")
    cell = desired.cells[_field(step, step.cell, "cell")]
    version = _field(step, step.to_version, "version")
    outputs: Mapping[str, JsonValue] = {}
    if b.terraform is not None and desired.services[step.service].terraform is not None:
        outputs = dict(b.terraform.outputs(desired, cell, step.service))
    return kubernetes.apply(desired, cell, step.service, version, outputs)


def migration(action: MigrationAction) -> Handler:
    def run(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
        migrations = _need(b.migrations, "migrations")
        cell = _field(step, step.cell, "cell")
        name = _field(step, step.migration, "migration")
        return f"{action} {name}: " + migrations.run(desired, cell, name, action)
    return run


def bake(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    wave, version = _field(step, step.wave, "wave"), _field(step, step.to_version, "version")
    b.progress.start_bake(step.service, wave, version, now)
    return f"bake of {version} started in wave {wave}"


def revert_commit(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    """Record the failure (it holds promotion), then commit the revert of the cell groups
    the planner chose."""
    wave, version = _field(step, step.wave, "wave"), _field(step, step.from_version, "version")
    b.progress.record_failure(step.service, wave, version, step.detail)
    if b.git is None:
        return "failure recorded; no git backend, revert the bump by hand"
    if not step.groups:
        raise PermanentError(f"step {step.id} names no cell groups to revert")
    sha = b.git.revert(desired, step.service, step.groups, version, step.detail)
    return f"revert committed as {sha[:12]}"


def forget_failure(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    wave = _field(step, step.wave, "wave")
    if not b.progress.clear_failure(step.service, wave):
        raise TemporaryError(f"failure of {step.from_version} in wave {wave} kept until "
                             "its revert reaches the remote", retry_after=10.0)
    return f"failure of {step.from_version} in wave {wave} forgotten (its revert is desired)"


def traffic_switch(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    traffic = _need(b.traffic, "traffic")
    cell = desired.cells[_field(step, step.cell, "cell")]
    return traffic.switch(desired, cell, step.service, _field(step, step.to_version, "version"))


def traffic_weight(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    traffic = _need(b.traffic, "traffic")
    cell = desired.cells[_field(step, step.cell, "cell")]
    if step.weight is None:
        raise PermanentError(f"step {step.id} has no weight")
    return traffic.shift(desired, cell, step.service, _field(step, step.to_version, "version"),
                         step.weight, False, now)


def traffic_mirror(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    traffic = _need(b.traffic, "traffic")
    cell = desired.cells[_field(step, step.cell, "cell")]
    return traffic.shift(desired, cell, step.service, _field(step, step.to_version, "version"),
                         0, True, now)


def scale_down(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    traffic = _need(b.traffic, "traffic")
    cell = desired.cells[_field(step, step.cell, "cell")]
    return traffic.scale_down(desired, cell, step.service)


def wait(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    return "waiting for health"


HANDLERS: Mapping[StepKind, Handler] = {
    StepKind.TERRAFORM_APPLY: terraform_apply,
    StepKind.KUBERNETES_APPLY: kubernetes_apply,
    StepKind.ROLLBACK: kubernetes_apply,
    StepKind.MIGRATION_EXPAND: migration(MigrationAction.EXPAND),
    StepKind.MIGRATION_CONTRACT: migration(MigrationAction.CONTRACT),
    StepKind.MIGRATION_ROLLBACK: migration(MigrationAction.ROLLBACK),
    StepKind.BAKE: bake,
    StepKind.REVERT_COMMIT: revert_commit,
    StepKind.FORGET_FAILURE: forget_failure,
    StepKind.WAIT_HEALTHY: wait,
    StepKind.TRAFFIC_SWITCH: traffic_switch,
    StepKind.TRAFFIC_WEIGHT: traffic_weight,
    StepKind.TRAFFIC_MIRROR: traffic_mirror,
    StepKind.SCALE_DOWN: scale_down,
}
