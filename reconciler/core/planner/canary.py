"""Canary and shadow phases of a cell: traffic steps between the serving colour and the
new one, each held for its pause and gated by the analysis of the cell.

Owns: the phases a ``blueGreen`` or ``canary`` cell goes through once its new colour is
healthy — ``traffic-mirror`` (shadow: the cell's requests mirrored to the new colour for
``shadow.duration``), one ``traffic-weight`` step per canary weight before 100 (each held
for ``canary.pause``), and the ``traffic-switch`` at 100 that makes the cell run the new
version; which phase comes next from the weight and mirror recorded in the cell; and the
gate in front of it: the current phase's time left (``pause``: "canary 50% in c1, 3m
left") or an analysis of the cell still waiting for samples (``analysis``). See
docs/strategies.md.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from reconciler.core.live import LiveSnapshot, Standby
from reconciler.core.model import DesiredState
from reconciler.core.plan import OPEN, Gate, GateKind, Step, StepKind
from reconciler.core.planner.cells import with_gate
from reconciler.core.planner.waves import CellView, WaveView, human


def phases(desired: DesiredState, c: CellView, view: WaveView, service: str) -> list[Step]:
    """Every traffic phase of the service before its switch, in order (ungated)."""
    t = desired.services[service].traffic
    frm, to = str(c.live_version) if c.live_version else None, str(c.desired)
    w, i, name = view.wave.name, view.index, c.cell.name
    out = []
    if t.shadow_seconds:
        out.append(Step(StepKind.TRAFFIC_MIRROR, service, w, i, name, frm, to,
                        detail=f"mirror {name}'s requests to {to} for "
                               f"{human(t.shadow_seconds)}"))
    for weight in t.steps[:-1]:
        out.append(Step(StepKind.TRAFFIC_WEIGHT, service, w, i, name, frm, to, weight=weight,
                        detail=f"{to} takes {weight}% of {name}'s requests for "
                               f"{human(t.pause_seconds)}"))
    return out


def remaining_phases(steps: list[Step], sb: Standby) -> list[Step]:
    """The phases after the one the cell is in (its recorded weight or mirror)."""
    if sb.weight > 0:
        return [s for s in steps if s.kind == StepKind.TRAFFIC_WEIGHT and
                (s.weight or 0) > sb.weight]
    if sb.mirror:
        return [s for s in steps if s.kind != StepKind.TRAFFIC_MIRROR]
    return steps


def phase_text(sb: Standby, cell: str) -> str:
    """``canary 50% in c1`` / ``shadow in c1`` / ``standby in c1``."""
    if sb.weight > 0:
        return f"canary {sb.weight}% in {cell}"
    return f"shadow in {cell}" if sb.mirror else f"standby in {cell}"


def phase_gate(desired: DesiredState, live: LiveSnapshot, c: CellView, service: str,
               now: datetime) -> Gate:
    """What holds the cell's next phase: the current phase's time left, then an analysis
    of the cell waiting for samples (never passing); open otherwise."""
    sb = c.live.standby if c.live else None
    if sb is None or not sb.has_traffic:
        return OPEN
    t = desired.services[service].traffic
    hold = t.pause_seconds if sb.weight > 0 else t.shadow_seconds
    where = phase_text(sb, c.cell.name)
    if sb.since is not None:
        ends = sb.since + timedelta(seconds=hold)
        if now < ends:
            left = math.ceil((ends - now).total_seconds())
            return Gate(GateKind.PAUSE, f"{where}, {human(left)} left")
    waiting = live.waiting({c.cell.name})
    if waiting:
        return Gate(GateKind.ANALYSIS, f"{where}: alarm {waiting[0].rule!r}: "
                                       f"{waiting[0].detail or 'waiting for samples'}")
    return OPEN


def _after(prev: Step) -> Gate:
    what = f"{prev.kind} {prev.weight}%" if prev.weight is not None else str(prev.kind)
    return Gate(GateKind.PREVIOUS_STEP, f"after {what}")


def chained(steps: list[Step], gate: Gate) -> list[Step]:
    """The first step behind ``gate``, every later one behind the step before it."""
    return [with_gate(s, gate if n == 0 else _after(steps[n - 1]))
            for n, s in enumerate(steps)]
