"""Step handlers: one function per step kind, each returning a one-line detail."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from reconciler.adapters.errors import PermanentError
from reconciler.core.model import DesiredState
from reconciler.core.plan import Step
from reconciler.engine.backends import Backends

Handler = Callable[[Step, DesiredState, Backends, datetime], str]


def _need(backend: object | None, what: str) -> None:
    if backend is None:
        raise PermanentError(f"no {what} backend is configured")


def terraform_apply(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    _need(b.terraform, "terraform")
    assert b.terraform is not None and step.cell and step.to_version
    outputs = b.terraform.apply(desired, desired.cells[step.cell], step.service,
                                step.to_version)
    return f"terraform applied ({len(outputs)} outputs)"


def kubernetes_apply(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    _need(b.kubernetes, "kubernetes")
    assert b.kubernetes is not None and step.cell and step.to_version
    cell = desired.cells[step.cell]
    outputs = {}
    if b.terraform is not None and desired.services[step.service].terraform is not None:
        outputs = dict(b.terraform.outputs(desired, cell, step.service))
    return b.kubernetes.apply(desired, cell, step.service, step.to_version, outputs)


def migration(action: str) -> Handler:
    def run(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
        _need(b.migrations, "migrations")
        assert b.migrations is not None and step.cell and step.migration
        return f"{action} {step.migration}: " + b.migrations.run(
            desired, step.cell, step.migration, action)
    return run


def bake(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    assert step.wave and step.to_version
    b.progress.start_bake(step.service, step.wave, step.to_version, now)
    return f"bake of {step.to_version} started in wave {step.wave}"


def revert_commit(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    assert step.wave and step.from_version
    b.progress.record_failure(step.service, step.wave, step.from_version, step.detail)
    if b.git is None:
        return "failure recorded; no git backend, revert the bump by hand"
    wave_index = next(i for i, w in enumerate(desired.fleet.waves) if w.name == step.wave)
    groups = [g for w in desired.fleet.waves[wave_index:] for g in w.groups]
    if desired.fleet.rollback_policy == "rollback-all":
        groups = [g for w in desired.fleet.waves for g in w.groups]
    sha = b.git.revert(desired, step.service, groups, step.from_version, step.detail)
    return f"revert committed as {sha[:12]}"


def wait(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
    return "waiting for health"


HANDLERS: dict[str, Handler] = {
    "terraform-apply": terraform_apply,
    "kubernetes-apply": kubernetes_apply,
    "rollback": kubernetes_apply,
    "migration-expand": migration("expand"),
    "migration-contract": migration("contract"),
    "migration-rollback": migration("rollback"),
    "bake": bake,
    "revert-commit": revert_commit,
    "wait-healthy": wait,
}
