"""Rollbacks: automatic ones for a failing wave, and human reverts in Git.

Owns: detecting that a wave failed during its rollout or bake (a Degraded cell on the
new version, or an alarm firing on an upgraded cell), the rollback steps and the
revert commit that follow (including which cell groups it sets back, so the executor
only carries it out), and planning a desired downgrade (a human revert) as a
parallel rollback — each refused when a contracted migration forbids it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.core.live import LiveSnapshot
from reconciler.core.model import DesiredState, RollbackPolicy
from reconciler.core.plan import OPEN, Gate, GateKind, Refusal, Step, StepKind
from reconciler.core.planner import bluegreen
from reconciler.core.planner.cells import with_gate
from reconciler.core.planner.migrations import expand_steps, floor_refusal, rollback_steps
from reconciler.core.planner.waves import CellView, WaveView
from reconciler.core.versions import Version


@dataclass(frozen=True)
class Failure:
    """A wave that failed on ``version``, and why."""

    wave: WaveView
    version: str
    reason: str


def _upgraded(c: CellView) -> bool:
    prev = c.live.previous_version if c.live else None
    return c.at_target and prev is not None and c.live_version is not None and \
        prev < c.live_version


def _moved_down(c: CellView) -> bool:
    """The cell's last change was a rollback (a person's revert or ours): its previous
    version is newer than the one it runs."""
    prev = c.live.previous_version if c.live else None
    return prev is not None and c.live_version is not None and prev > c.live_version


def _cell_failure(live: LiveSnapshot, c: CellView) -> str | None:
    """Why the cell fails its rollout, or None. A cell that was rolled back is not
    rolling out a new version: failing there, it is not "rolled back" up to the version it
    left, nor is the rollback reverted in Git (the daemon would fight the person)."""
    if _moved_down(c):
        return None
    standby = bluegreen.standby_failure(c) or bluegreen.traffic_failure(live, c)
    if standby:
        return standby
    if c.at_target and c.health == "Degraded":
        msg = c.live.message if c.live and c.live.message else "Degraded"
        return f"{c.cell.name} is Degraded on {c.desired}: {msg}"
    if _upgraded(c):
        for a in live.firing({c.cell.name}):
            value = f" = {a.value:g} > {a.threshold:g}" if a.value is not None and \
                a.threshold is not None else ""
            detail = f" ({a.detail})" if a.detail else ""
            return f"alarm {a.rule!r} fired on {c.cell.name}{value} after {c.desired}{detail}"
    return None


def bake_completed(view: WaveView, version: Version | None, now: datetime) -> bool:
    """The wave's recorded bake of ``version`` has run its full time: a cell failing on
    that version now is an incident of a running version, not a rollout failure."""
    p = view.progress
    if p is None or version is None or p.version != version or p.bake_started_at is None:
        return False
    if view.waiting:  # the bake does not end while an analysis waits for samples
        return False
    return now >= p.bake_started_at + timedelta(seconds=view.wave.bake_seconds)


def detect_failure(live: LiveSnapshot, views: tuple[WaveView, ...],
                   now: datetime) -> Failure | None:
    """The first wave that fails during its rollout or bake, if any. A cell failing on a
    version its wave finished baking is not a rollout failure (``baked`` alone would not
    say so: a wave with a Degraded cell is not settled, so not baked, however long ago
    its bake ended) — it is not rolled back, and no bump is reverted for it."""
    for view in views:
        if not view.managed or view.baked(now):
            continue
        for c in view.managed:
            at_stake = c.desired if bluegreen.in_flight(c) else c.live_version
            if bake_completed(view, at_stake, now):
                continue
            reason = _cell_failure(live, c)
            if reason:
                return Failure(view, str(c.desired), reason)
    return None


def failure_steps(desired: DesiredState, live: LiveSnapshot, views: tuple[WaveView, ...],
                  failure: Failure, service: str) -> tuple[list[Step], list[Refusal]]:
    """Roll the failed wave (and with ``rollback-all`` earlier ones) back; revert in Git."""
    steps: list[Step] = []
    refusals: list[Refusal] = []
    every = _every_wave(desired)
    scope = [v for v in views if v.index == failure.wave.index or (
        every and v.index < failure.wave.index)]
    for view in scope:
        for c in view.managed:
            if bluegreen.in_flight(c) and str(c.desired) == failure.version:
                steps += bluegreen.abort_steps(c, view, service, failure.reason)
                continue
            if str(c.live_version) != failure.version:
                continue
            target = c.live.previous_version if c.live else None
            s, r = _rollback_cell(desired, live, c, view, service, target, failure.reason)
            steps += s
            refusals += r
    steps.append(Step(StepKind.REVERT_COMMIT, service, failure.wave.wave.name, -1, None,
                      failure.version, None, gate=OPEN, detail=failure.reason,
                      groups=revert_groups(desired, views, failure)))
    return steps, refusals


def revert_groups(desired: DesiredState, views: tuple[WaveView, ...],
                  failure: Failure) -> tuple[str, ...]:
    """The cell groups the revert commit sets back, in wave order: the failing wave's and
    every later wave's; every wave's under ``rollback-all``."""
    every = _every_wave(desired)
    return tuple(g for v in views if every or v.index >= failure.wave.index
                 for g in v.wave.groups)


def _every_wave(desired: DesiredState) -> bool:
    return desired.fleet.rollback_policy == RollbackPolicy.ALL


def _rollback_cell(desired: DesiredState, live: LiveSnapshot, c: CellView, view: WaveView,
                   service: str, target: Version | None, reason: str,
                   gate: Gate = OPEN) -> tuple[list[Step], list[Refusal]]:
    frm = str(c.live_version) if c.live_version else None
    to = str(target) if target is not None else None
    if target is None:
        return [], [Refusal(service, c.cell.name, frm, None,
                            "no previous version is known to roll back to")]
    refused = floor_refusal(desired, live, c, service, target)
    if refused:
        return [], [Refusal(service, c.cell.name, frm, to, refused)]
    back = CellView(c.cell, target, c.live)
    # the target may need a migration its database never got (one added after the cell
    # moved past it): expand first, as a forward move would
    expands = [s if s.gate != OPEN or gate.open else with_gate(s, gate)
               for s in expand_steps(desired, live, back, view, service)]
    if expands:
        gate = Gate(GateKind.PREVIOUS_STEP, f"after migration-expand {expands[-1].migration}")
    steps = [*expands, Step(StepKind.ROLLBACK, service, view.wave.name, -1, c.cell.name, frm,
                            to, gate=gate, detail=reason)]
    return steps + rollback_steps(desired, live, back, view, service), []


def revert_steps(desired: DesiredState, live: LiveSnapshot, views: tuple[WaveView, ...],
                 service: str) -> tuple[list[Step], list[Refusal], set[str]]:
    """A desired downgrade (human revert): parallel rollback, or wave by wave backwards."""
    steps: list[Step] = []
    refusals: list[Refusal] = []
    cells: set[str] = set()
    later_pending = False
    for view in reversed(views):
        downs = [c for c in view.managed if c.live_version is not None and c.desired is not None
                 and c.desired < c.live_version]
        gate = OPEN if desired.fleet.parallel_rollback or not later_pending else Gate(
            GateKind.PREVIOUS_STEP, "later waves roll back first (parallelRollback: false)")
        for c in downs:
            s, r = _rollback_cell(desired, live, c, view, service, c.desired,
                                  f"desired version is {c.desired}", gate)
            steps += s
            refusals += r
            cells.add(c.cell.name)
        later_pending = later_pending or bool(downs)
    return steps, refusals, cells
