"""End to end against the real parts: a version bump promoted wave by wave with its
migration expanded before the first cell needs it and contracted after the last wave;
then a bad version whose canary breaches its alarm and is rolled back alone."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.core.plan import Step
from reconciler.engine.executor import Outcome
from reconciler.engine.tick import TickReport
from tests.e2e.conftest import CELLS, Fleet
from tests.e2e.support import (
    SteppedDaemon,
    config_value,
    live_versions,
    migration_phase,
    stepped_daemon,
)

pytestmark = pytest.mark.e2e


def converged(report: TickReport) -> bool:
    return report.plan is not None and not report.plan.steps and not report.outcomes


def done_steps(log: list[Outcome], kind: str) -> list[Step]:
    return [o.step for o in log if o.step.kind == kind and o.status == "done"]


def index_of(log: list[Outcome], pred: Callable[[Step], bool]) -> list[int]:
    return [i for i, o in enumerate(log) if o.status == "done" and pred(o.step)]


def of(kind: str, cell: str | None) -> Callable[[Step], bool]:
    """A ``kind`` step of ``cell``."""
    return lambda s: s.kind == kind and s.cell == cell


def test_bump_promotes_wave_by_wave_with_expand_and_contract(fleet: Fleet) -> None:
    with stepped_daemon(fleet) as d:
        log: list[Outcome] = []
        d.run_until(converged, log)
        assert live_versions(fleet) == dict.fromkeys(CELLS, ("1.0.0", "Healthy"))

        fleet.set_version("2.0.0")
        log.clear()
        d.run_until(converged, log)

    applies = {c: index_of(log, of("kubernetes-apply", c)) for c in CELLS}
    assert all(len(v) == 1 for v in applies.values()), applies
    c1, z1, r1, r2 = (applies[c][0] for c in CELLS)
    bakes = {s.wave: i for i, s in enumerate(o.step for o in log)
             if s.kind == "bake" and s.to_version == "2.0.0"}
    assert c1 < bakes["canary"] < z1 < bakes["zone"] < min(r1, r2), (applies, bakes)
    for cell in CELLS:
        expand = index_of(log, of("migration-expand", cell))
        assert expand and expand[0] < applies[cell][0]
    contracts = index_of(log, lambda s: s.kind == "migration-contract")
    assert len(contracts) == len(CELLS)
    assert min(contracts) > max(r1, r2)
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.0.0", "Healthy"))
    assert {migration_phase(fleet, c) for c in CELLS} == {"contracted"}
    tf = done_steps(log, "terraform-apply")
    assert {s.cell for s in tf} == set(CELLS)
    for step in tf:
        assert step.cell is not None
        assert index_of(log, of("terraform-apply", step.cell))[0] < applies[step.cell][0]
    queue = config_value(fleet, "e2e-c1", "QUEUE")
    assert queue == "orders-e2e-c1"  # a Terraform output rendered into the manifest


def test_alarm_breach_rolls_the_canary_back_and_later_waves_are_untouched(
        fleet: Fleet) -> None:
    with stepped_daemon(fleet) as d:
        _breach_and_rollback(fleet, d)


def _breach_and_rollback(fleet: Fleet, d: SteppedDaemon) -> None:
    log: list[Outcome] = []
    fleet.set_version("2.0.0")
    d.run_until(converged, log)

    fleet.set_version("2.1.0", canary_bake="60s")
    log.clear()
    d.run_until(lambda r: bool(done_steps(log, "kubernetes-apply")), log)
    fleet.exporter.set_error_rate("e2e-c1", 0.5)
    d.run_until(lambda r: bool(done_steps(log, "revert-commit")), log)
    rollbacks = done_steps(log, "rollback")
    assert [(s.cell, s.from_version, s.to_version) for s in rollbacks] == [
        ("e2e-c1", "2.1.0", "2.0.0")]
    reverts = done_steps(log, "revert-commit")
    assert "error-rate" in reverts[0].detail and "0.05" in reverts[0].detail
    fleet.exporter.set_error_rate("e2e-c1", 0.0)

    # the revert is a commit pushed to the remote: the desired state is 2.0.0 again,
    # with the reason; the bad version is never applied again after the rollback
    d.run_until(converged, log)
    fleet.pull()
    commits = fleet.git("log", "--format=%H", "--grep", "Reconciler-Rollback-Of").split()
    assert len(commits) == 1, commits
    message = fleet.git("log", "-1", "--format=%B", commits[0])
    bump = fleet.git("log", "-1", "--format=%H", "--grep", "bump shop to 2.1.0")
    assert f"Reconciler-Rollback-Of: {bump}" in message and "error-rate" in message
    assert "version: 2.0.0" in (fleet.repo / "releases" / "shop.yaml").read_text()
    touched = {s.cell for s in done_steps(log, "kubernetes-apply")}
    assert touched == {"e2e-c1"}
    after = log[log.index(next(o for o in log if o.step.kind == "rollback")):]
    assert not [o for o in after if o.step.to_version == "2.1.0" and o.step.kind in (
        "kubernetes-apply", "rollback", "terraform-apply")], after
    assert len(done_steps(log, "revert-commit")) == 1
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.0.0", "Healthy"))
