"""The fleet-wide wave planner: ``plan(desired, live, now) -> Plan``. Pure and deterministic.

Owns: turning the desired state and the live snapshot into ordered steps per service
and wave, with gates, holds, refusals and warnings. The same inputs give the same plan
(byte-identical JSON). It never performs anything; the executor runs the due steps.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.core.live import LiveSnapshot
from reconciler.core.model import DesiredState
from reconciler.core.plan import (
    CellPlan,
    Gate,
    GateKind,
    Hold,
    Plan,
    Refusal,
    Step,
    StepKind,
    WavePlan,
)
from reconciler.core.planner import bluegreen, flags, gates, rollback
from reconciler.core.planner.cells import forward_steps, steady_steps, with_gate
from reconciler.core.planner.migrations import contract_steps
from reconciler.core.planner.warnings import fleet_warnings, service_warnings
from reconciler.core.planner.waves import CellView, WaveView, build_views, remaining
from reconciler.core.versions import Version

__all__ = ["plan"]

#: Step kinds that move a cell forward: a due one means its wave is in progress.
_MOVING = frozenset({StepKind.KUBERNETES_APPLY, StepKind.TERRAFORM_APPLY,
                     StepKind.MIGRATION_EXPAND, StepKind.TRAFFIC_SWITCH,
                     StepKind.TRAFFIC_MIRROR, StepKind.TRAFFIC_WEIGHT})


@dataclass
class _Acc:
    steps: list[Step] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    waves: list[WavePlan] = field(default_factory=list)
    held_cells: set[str] = field(default_factory=set)


def _action(c: CellView, held: bool, refused: set[str]) -> str:
    if c.desired is None or c.at_target:
        return "none"
    if c.cell.name in refused:
        return "refused"
    if held:
        return "held"
    if c.live_version is None:
        return "install"
    return "rollback" if c.desired < c.live_version else "upgrade"


def _forward_cells(view: WaveView) -> list[tuple[CellView, Version]]:
    """Cells moving up (or installing), with the version they move to."""
    return [(c, c.desired) for c in view.managed if c.desired is not None and not c.at_target
            and (c.live_version is None or c.desired > c.live_version)]


def _slots(view: WaveView) -> int:
    in_flight = sum(1 for c in view.managed if (c.at_target and c.health != "Healthy")
                    or bluegreen.in_flight(c))
    return view.wave.max_unavailable.for_cells(len(view.cells)) - in_flight


def _wave_gate(desired: DesiredState, live: LiveSnapshot, views: tuple[WaveView, ...],
               view: WaveView, version: Version, now: datetime) -> Gate:
    started = any(c.at_target and c.live is not None and c.live.previous_version is not None
                  for c in view.managed)
    earlier = gates.earlier_waves_gate(views, view.index, version, now)
    if started:
        return earlier
    return gates.first_closed(earlier, gates.alarm_gate(live, view),
                              gates.time_window_gate(desired.fleet, now))


def _plan_forward(desired: DesiredState, live: LiveSnapshot, views: tuple[WaveView, ...],
                  view: WaveView, service: str, now: datetime, acc: _Acc) -> bool:
    """Forward steps of one wave; returns True when the wave is held."""
    held_versions: dict[str, str] = {}
    slots = _slots(view)
    holds: dict[Version, str | None] = {}
    wave_gates: dict[Version, Gate] = {}
    for c, version in _forward_cells(view):
        if version not in holds:
            holds[version] = gates.hold_reason(views, view.index, version)
            wave_gates[version] = _wave_gate(desired, live, views, view, version, now)
        reason = holds[version]
        if reason:
            held_versions.setdefault(str(version), reason)
            acc.held_cells.add(c.cell.name)
            continue
        if bluegreen.in_flight(c):  # deployed beside the serving colour: carry on
            acc.steps += bluegreen.continue_steps(desired, live, c, view, service, now)
            continue
        gate = wave_gates[version]
        if gate.open and slots <= 0:
            gate = Gate(GateKind.MAX_UNAVAILABLE, f"maxUnavailable "
                        f"{view.wave.max_unavailable} of wave {view.wave.name!r} reached")
        if gate.open:
            slots -= 1
        start = bluegreen.start_steps if bluegreen.uses(desired, service) else forward_steps
        acc.steps += start(desired, live, c, view, service, gate)
    for held, reason in sorted(held_versions.items()):
        groups = tuple(sorted({c.cell.group for c in view.managed if str(c.desired) == held}))
        acc.holds.append(Hold(service, view.wave.name, groups, held, reason))
    return bool(held_versions)


def _bake_step(view: WaveView, service: str, now: datetime) -> Step | None:
    version = view.uniform_version()
    if version is None:
        return None
    p = view.progress
    if p is None or p.version != version or p.bake_started_at is None:
        return Step(StepKind.BAKE, service, view.wave.name, view.index, None, None,
                    str(version), detail=f"record bake start; bake {view.wave.bake_seconds}s")
    left = remaining(now, view.bake_ends())
    if left:
        return Step(StepKind.BAKE, service, view.wave.name, view.index, None, None,
                    str(version), gate=Gate(GateKind.BAKE_TIME, f"{left}s of bake left"))
    if view.waiting:
        a = view.waiting[0]
        return Step(StepKind.BAKE, service, view.wave.name, view.index, None, None,
                    str(version), gate=Gate(GateKind.ANALYSIS,
                                            f"alarm {a.rule!r} on {a.cell}: {a.detail}"))
    return None


def _wave_state(view: WaveView, steps: list[Step], held: bool, now: datetime) -> str:
    if not view.managed:
        return "idle"
    if any(s.kind in _MOVING and s.due for s in steps) or any(
            bluegreen.in_flight(c) for c in view.managed) or any(
            c.at_target and not c.settled for c in view.managed):
        return "in-progress"
    if held:
        return "held"
    if view.baked(now) and not steps:
        return "done"
    if view.uniform_version() is not None:
        return "baking" if not view.baked(now) else "done"
    return "pending"


def _wave_plan(view: WaveView, service: str, state: str, refused: set[str], held: bool,
               now: datetime, reason: str = "") -> WavePlan:
    cells = tuple(CellPlan(c.cell.name, str(c.live_version) if c.live_version else None,
                           str(c.desired) if c.desired else None, c.health,
                           _action(c, held, refused)) for c in view.cells)
    left = remaining(now, view.bake_ends()) if state == "baking" else None
    return WavePlan(service, view.wave.name, view.index, state, view.weight, cells, left, reason)


def _plan_failure(desired: DesiredState, live: LiveSnapshot, views: tuple[WaveView, ...],
                  failure: rollback.Failure, service: str, now: datetime, acc: _Acc) -> None:
    steps, refusals = rollback.failure_steps(desired, live, views, failure, service)
    acc.steps += steps
    acc.refusals += refusals
    refused = {r.cell for r in refusals}
    for view in views:
        failed = view.index == failure.wave.index
        state = "rolling-back" if failed else ("done" if view.baked(now) else "pending")
        if view.index > failure.wave.index and view.managed:
            state = "held"
            acc.holds.append(Hold(service, view.wave.name,
                                  tuple(sorted({c.cell.group for c in view.managed})),
                                  failure.version, f"promotion stopped: {failure.reason}"))
        acc.waves.append(_wave_plan(view, service, state, refused, state == "held", now,
                                    failure.reason if failed else ""))


def _remembered_failure(views: tuple[WaveView, ...]) -> rollback.Failure | None:
    """A failure recorded in status whose revert has not reached the desired state yet."""
    for view in views:
        p = view.progress
        if p and p.failed_version and any(c.desired == p.failed_version for c in view.managed):
            return rollback.Failure(view, str(p.failed_version), p.failure_reason or "failed")
    return None


def _forget_steps(views: tuple[WaveView, ...], service: str) -> list[Step]:
    """A failure remembered in status whose version no cell of its wave desires any more:
    the revert reached the desired state, so the failure is forgotten — a person may
    release the version again (it used to be reverted at once, with no cell failing)."""
    out = []
    for view in views:
        p = view.progress
        if p and p.failed_version and not p.revert_pending and not any(
                c.desired == p.failed_version for c in view.managed):
            out.append(Step(StepKind.FORGET_FAILURE, service, view.wave.name, view.index,
                            None, str(p.failed_version), None,
                            detail=f"the revert of {p.failed_version} is desired now"))
    return out


def _plan_service(desired: DesiredState, live: LiveSnapshot, service: str, now: datetime,
                  acc: _Acc) -> None:
    views = build_views(desired, live, service)
    failure = rollback.detect_failure(live, views, now) or _remembered_failure(views)
    if failure:
        _plan_failure(desired, live, views, failure, service, now, acc)
        return
    acc.steps += _forget_steps(views, service)
    rsteps, rrefusals, rolling = rollback.revert_steps(desired, live, views, service)
    acc.steps += rsteps
    acc.refusals += rrefusals
    refused = {r.cell for r in rrefusals}
    for view in views:
        before = len(acc.steps)
        held = _plan_forward(desired, live, views, view, service, now, acc)
        for c in view.managed:
            if c.at_target and c.cell.name not in rolling:
                acc.steps += steady_steps(desired, c, view, service, desired.fleet.self_heal)
                acc.steps += bluegreen.stale_steps(c, view, service)
        bake = _bake_step(view, service, now)
        acc.steps += [bake] if bake else []
        state = _wave_state(view, acc.steps[before:], held, now)
        if any(c.cell.name in rolling for c in view.managed):
            state = "rolling-back"
        acc.waves.append(_wave_plan(view, service, state, refused, held, now))
    if bluegreen.uses(desired, service):
        acc.steps += bluegreen.scale_down_steps(views, service,
                                                {v.index for v in views if v.baked(now)})
    acc.steps += contract_steps(desired, live, views, service, now, acc.held_cells)
    acc.held_cells.clear()


def plan(desired: DesiredState, live: LiveSnapshot, now: datetime) -> Plan:
    """The fleet-wide plan moving ``live`` toward ``desired`` as of ``now``.

    The cyclic garbage collector is paused while planning: the plan allocates many
    small acyclic values, and collection passes over them cost ~40% of the time on
    large fleets. Its previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _plan(desired, live, now)
    finally:
        if was_enabled:
            gc.enable()


def hold_faulty_cells(steps: list[Step], faults: Mapping[str, str]) -> list[Step]:
    """Every step of a cell whose live state could not be read waits behind a
    ``cell-fault`` gate naming the reason; the other cells are untouched."""
    if not faults:
        return steps
    return [with_gate(s, Gate(GateKind.CELL_FAULT, f"{s.cell}: {faults[s.cell]}"))
            if s.cell is not None and s.cell in faults else s for s in steps]


def _order(s: Step) -> tuple[str, int, int, str, str, str]:
    return (s.service, *s.sort_key())


def _plan(desired: DesiredState, live: LiveSnapshot, now: datetime) -> Plan:
    acc = _Acc()
    warnings = fleet_warnings(desired)
    for service in sorted(desired.services):
        _plan_service(desired, live, service, now, acc)
        warnings += service_warnings(desired, live, service)
    steps = sorted(hold_faulty_cells(flags.order(desired, live, acc.steps), live.faults),
                   key=_order)
    return Plan(
        revision=desired.revision, generated_at=now, waves=tuple(acc.waves),
        steps=tuple(steps),
        holds=tuple(sorted(acc.holds, key=lambda h: (h.service, h.wave, h.version))),
        refusals=tuple(sorted(acc.refusals, key=lambda r: (r.service, r.cell))),
        warnings=tuple(warnings))
