"""Expand / contract migration rules (parallel change).

Owns the four rules of DESIGN.md §3: expand before any cell gets a version in
``requiredBy``; contract only when no cell's running, desired or rollback-target
version is in ``oldShapeUsedBy``, the last wave has baked and the soak has passed;
one migration in flight per database; no rollback below a contracted floor.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.core.live import LiveSnapshot
from reconciler.core.model import Cell, DesiredState, Migration
from reconciler.core.plan import OPEN, Gate, GateKind, Step, StepKind
from reconciler.core.planner.waves import CellView, WaveView, human, remaining
from reconciler.core.versions import Version

DONE_EXPAND = ("expanded", "contracted")


def _phase(live: LiveSnapshot, cell: str, m: Migration) -> str | None:
    return live.migration_phase(cell, m.database, m.id)


def in_flight_gate(desired: DesiredState, live: LiveSnapshot, cell: str,
                   m: Migration) -> Gate:
    """Closed while an earlier migration of the same database awaits its contract."""
    for other in desired.migrations_of(m.service):
        if other.id >= m.id or other.database != m.database or other.contract is None:
            continue
        if _phase(live, cell, other) == "expanded":
            return Gate(GateKind.MIGRATION_IN_FLIGHT,
                        f"{other.id} is expanded but not contracted on database "
                        f"{m.database!r}; {m.id} waits for its contract")
    return OPEN


def expand_steps(desired: DesiredState, live: LiveSnapshot, cv: CellView,
                 wave: WaveView, service: str) -> list[Step]:
    """The expand steps the cell's database(s) need before the cell gets its version."""
    steps = []
    for m in desired.migrations_of(service):
        if not m.required_by.contains(cv.desired):
            continue
        if _phase(live, cv.cell.name, m) in DONE_EXPAND:
            continue
        steps.append(Step(StepKind.MIGRATION_EXPAND, service, wave.wave.name, wave.index,
                          cv.cell.name, str(cv.live_version or "") or None, str(cv.desired),
                          m.id, m.database, in_flight_gate(desired, live, cv.cell.name, m),
                          f"{m.id} required by {m.required_by}"))
    return steps


def ledger_databases(desired: DesiredState, cell: Cell) -> tuple[str, ...]:
    """The cell's databases whose migration ledgers the planner must see: those a desired
    migration targets, and those a service uses — a contracted migration whose file was
    removed (a ``git revert`` of the commit that added it) must still refuse rollbacks."""
    names = {m.database for m in desired.migrations} | {
        d for s in desired.services.values() for d in s.databases}
    return tuple(d.name for d in cell.databases if d.name in names)


def _unknown_contracted(desired: DesiredState, live: LiveSnapshot, cv: CellView,
                        service: str) -> str | None:
    """A migration contracted on one of the service's databases in this cell that the
    desired state no longer defines: its requiredBy — the floor of every rollback — is
    unknown, so no rollback can be judged safe."""
    svc = desired.services.get(service)
    known = {m.id for m in desired.migrations}
    for db in sorted(svc.databases if svc else ()):
        for mid, m in sorted(live.databases.get(cv.cell.name, {}).get(db, {}).items()):
            if m.phase == "contracted" and mid not in known:
                return (f"migration {mid} was contracted on database {db!r} but is no longer "
                        f"in the desired state, so the versions its schema still serves are "
                        f"unknown — restore migrations/{service}/{mid}.yaml or roll forward")
    return None


def floor_refusal(desired: DesiredState, live: LiveSnapshot, cv: CellView, service: str,
                  target: Version | None) -> str | None:
    """Why rolling the cell back to ``target`` is refused (a contracted floor, or a
    contracted migration the desired state no longer defines), or None."""
    unknown = _unknown_contracted(desired, live, cv, service)
    if unknown:
        return unknown
    for m in desired.migrations_of(service):
        if _phase(live, cv.cell.name, m) != "contracted":
            continue
        if m.required_by.contains(cv.live_version) and not m.required_by.contains(target):
            return (f"migration {m.id} was contracted on database {m.database!r}; versions "
                    f"outside {m.required_by} no longer work with its schema — roll forward "
                    f"or restore the database")
    return None


def rollback_steps(desired: DesiredState, live: LiveSnapshot, cv: CellView, wave: WaveView,
                   service: str) -> list[Step]:
    """Migration rollback steps for a cell moving below ``requiredBy`` before contract."""
    steps = []
    for m in desired.migrations_of(service):
        if m.rollback is None or _phase(live, cv.cell.name, m) != "expanded":
            continue
        if m.required_by.contains(cv.desired):
            continue
        gate = OPEN if not m.required_by.contains(cv.live_version) else Gate(
            GateKind.PREVIOUS_STEP, f"after {cv.cell.name} runs {cv.desired}")
        steps.append(Step(StepKind.MIGRATION_ROLLBACK, service, wave.wave.name, -1, cv.cell.name,
                          str(cv.live_version) if cv.live_version else None, str(cv.desired),
                          m.id, m.database, gate, f"undo {m.id} expand before contract"))
    return steps


def _old_shape_users(views: tuple[WaveView, ...], m: Migration, now: datetime) -> list[str]:
    """Cells whose running, desired or rollback-target version needs the old shape, or
    whose other colour (blue-green) still runs such a version with replicas.

    A rollback target counts only while the cell's wave has not baked: after its bake
    a wave is no longer rolled back automatically.
    """
    users = []
    for v in views:
        baked = v.baked(now)
        for c in v.cells:
            prev = c.live.previous_version if c.live and not baked else None
            sb = c.live.standby if c.live else None
            colour = sb.version if sb is not None and not sb.scaled_down else None
            if any(m.old_shape_used_by.contains(x) for x in (c.live_version, c.desired, prev,
                                                              colour)):
                users.append(c.cell.name)
    return users


def _fleet_contract_gate(views: tuple[WaveView, ...], m: Migration, now: datetime) -> Gate:
    users = _old_shape_users(views, m, now)
    if users:
        more = f" and {len(users) - 3} more" if len(users) > 3 else ""
        return Gate(GateKind.OLD_SHAPE_IN_USE, f"{', '.join(users[:3])}{more} may still run "
                                               f"a version in {m.old_shape_used_by}")
    last = [v for v in views if v.managed][-1]
    if not last.baked(now):
        return Gate(GateKind.WAVE_BAKED, f"last wave {last.wave.name!r} has not baked yet")
    started = last.progress.bake_started_at if last.progress else None
    if started is None:
        return Gate(GateKind.SOAK, "soak starts once the last wave's bake is recorded")
    ends = started + timedelta(seconds=last.wave.bake_seconds + m.soak_seconds)
    if now < ends:
        return Gate(GateKind.SOAK, f"soak of {human(m.soak_seconds)} after the last wave's "
                                   f"bake: {human(remaining(now, ends) or 0)} left")
    return OPEN


def contract_steps(desired: DesiredState, live: LiveSnapshot, views: tuple[WaveView, ...],
                   service: str, now: datetime, held: set[str]) -> list[Step]:
    """Contract steps for every database of a migration the fleet is moving to.

    Cells whose bump is held are left out: they are not moving yet.
    """
    steps: list[Step] = []
    final_index = len(views)
    for m in desired.migrations_of(service):
        wanted = [c for v in views for c in v.managed
                  if m.required_by.contains(c.desired) and c.cell.name not in held]
        if m.contract is None or not wanted:
            continue
        todo = [c for c in wanted if _phase(live, c.cell.name, m) != "contracted"]
        if not todo:
            continue
        fleet_gate = _fleet_contract_gate(views, m, now)
        for c in todo:
            gate = fleet_gate if _phase(live, c.cell.name, m) == "expanded" else Gate(
                GateKind.PREVIOUS_STEP, f"after {m.id} is expanded on this database")
            steps.append(Step(StepKind.MIGRATION_CONTRACT, service, None, final_index, c.cell.name,
                              None, str(c.desired), m.id, m.database,
                              gate,
                              f"contract {m.id}"))
    return steps
