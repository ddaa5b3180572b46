"""Blue-green cells: the new colour beside the serving one, the switch as its own step,
the switch back as the rollback, the old colour scaled to zero after the wave baked.

Owns: the steps of a ``strategy: blueGreen`` cell — ``kubernetes-apply`` deploys the
standby colour, ``wait-healthy`` waits for it, ``traffic-switch`` points the Services at
it (the cell reaches its version only then: the wave rules hold until every step is
done); a cell whose standby already runs its target continues where it stopped (no new
``maxUnavailable`` slot, it counts as in flight); ``scale-down`` of the old colour once
the wave has baked. The rollback of such a cell is a ``rollback`` step the Kubernetes
adapter carries out as the switch back (or, before any switch, as removing the standby).
"""

from __future__ import annotations

from datetime import datetime

from reconciler.core.live import LiveSnapshot
from reconciler.core.model import DesiredState
from reconciler.core.plan import OPEN, Gate, GateKind, Step, StepKind
from reconciler.core.planner import canary
from reconciler.core.planner.cells import forward_steps, with_gate
from reconciler.core.planner.waves import CellView, WaveView

BLUE_GREEN = "blueGreen"
CANARY = "canary"
#: Strategies deploying the new version as a second colour beside the serving one.
COLOURED = frozenset({BLUE_GREEN, CANARY})


def uses(desired: DesiredState, service: str) -> bool:
    """Whether ``service`` rolls out in two colours (blueGreen or canary)."""
    return desired.services[service].strategy in COLOURED


def in_flight(c: CellView) -> bool:
    """The cell's standby colour already runs its target (deployed, not switched yet)."""
    sb = c.live.standby if c.live else None
    return sb is not None and c.desired is not None and not c.at_target and \
        sb.version == c.desired and not sb.scaled_down


def standby_failure(c: CellView) -> str | None:
    """Why the standby of a cell in flight fails (Degraded), or None."""
    sb = c.live.standby if c.live else None
    if sb is None or not in_flight(c) or sb.health != "Degraded":
        return None
    return f"{c.cell.name} is Degraded on {c.desired}: standby {sb.colour}: " + \
        (sb.message or "Degraded")


def _switch(c: CellView, view: WaveView, service: str, gate: Gate) -> Step:
    return Step(StepKind.TRAFFIC_SWITCH, service, view.wave.name, view.index, c.cell.name,
                str(c.live_version) if c.live_version else None, str(c.desired), gate=gate,
                detail="switch the Services to the new colour")


def start_steps(desired: DesiredState, live: LiveSnapshot, c: CellView, view: WaveView,
                service: str, gate: Gate) -> list[Step]:
    """A cell starting its move: the forward steps (their apply deploys the standby
    colour), then its traffic phases (shadow, canary weights) and the switch, each after
    the one before."""
    steps = forward_steps(desired, live, c, view, service, gate)
    phases = canary.phases(desired, c, view, service) if c.live_version else []
    return [*steps, *canary.chained([*phases, _switch(c, view, service, OPEN)],
                                    Gate(GateKind.PREVIOUS_STEP, "after wait-healthy"))]


def continue_steps(desired: DesiredState, live: LiveSnapshot, c: CellView, view: WaveView,
                   service: str, now: datetime) -> list[Step]:
    """A cell whose standby runs its target: wait for it to be healthy, then its next
    traffic phase once the current one's pause (and analysis) allows, then the switch."""
    sb = c.live.standby if c.live else None
    assert sb is not None
    frm, to = (str(c.live_version) if c.live_version else None), str(c.desired)
    phases = canary.phases(desired, c, view, service) if c.live_version else []
    rest = [*canary.remaining_phases(phases, sb), _switch(c, view, service, OPEN)]
    if sb.health == "Healthy":
        return canary.chained(rest, canary.phase_gate(desired, live, c, service, now))
    wait = Step(StepKind.WAIT_HEALTHY, service, view.wave.name, view.index, c.cell.name, frm,
                to, gate=Gate(GateKind.HEALTHY, f"standby {sb.colour} of {c.cell.name} is "
                                                f"{sb.message or sb.health}"))
    return [wait, *canary.chained(rest, Gate(GateKind.PREVIOUS_STEP, "after wait-healthy"))]


def scale_down_steps(views: tuple[WaveView, ...], service: str, now_baked: set[int]
                     ) -> list[Step]:
    """The old colour of each cell of a baked wave scaled to zero (once)."""
    out = []
    for view in views:
        if view.index not in now_baked:
            continue
        for c in view.managed:
            sb = c.live.standby if c.live else None
            if c.at_target and sb is not None and not sb.scaled_down and \
                    c.live_version is not None and sb.version < c.live_version:
                out.append(Step(StepKind.SCALE_DOWN, service, view.wave.name, view.index,
                                c.cell.name, str(sb.version), None,
                                detail=f"wave {view.wave.name!r} baked {c.live_version}: "
                                       f"scale the old colour {sb.colour} ({sb.version}) "
                                       "to zero"))
    return out


def stale_steps(c: CellView, view: WaveView, service: str) -> list[Step]:
    """A cell at its desired version whose other colour runs a newer version (a person
    reverted before the switch, e.g. during a canary or shadow): abort it — the weight
    back to 0, the new colour removed."""
    sb = c.live.standby if c.live else None
    if sb is None or sb.scaled_down or c.live_version is None or \
            sb.version <= c.live_version:
        return []
    return abort_steps(c, view, service, f"desired version is {c.desired}: abort the "
                                         f"canary of {sb.version}")


def traffic_failure(live: LiveSnapshot, c: CellView) -> str | None:
    """Why a cell whose new colour takes traffic (canary weight or shadow) fails: an
    alarm firing for the cell — its own or the analysis of the canary pods against the
    stable pods — or None."""
    sb = c.live.standby if c.live else None
    if sb is None or not in_flight(c) or not sb.has_traffic:
        return None
    for a in live.firing({c.cell.name}):
        value = f" = {a.value:g} > {a.threshold:g}" if a.value is not None and \
            a.threshold is not None else ""
        detail = f" ({a.detail})" if a.detail else ""
        return (f"alarm {a.rule!r} fired on {c.cell.name}{value} during "
                f"{canary.phase_text(sb, c.cell.name)} of {c.desired}{detail}")
    return None


def abort_steps(c: CellView, view: WaveView, service: str, reason: str) -> list[Step]:
    """A cell whose standby runs the failed version while the old one still serves:
    remove the standby (its ``rollback`` step re-converges on the serving version)."""
    if c.live_version is None:
        return []
    return [with_gate(Step(StepKind.ROLLBACK, service, view.wave.name, -1, c.cell.name,
                           str(c.desired), str(c.live_version), detail=reason), OPEN)]
