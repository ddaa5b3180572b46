"""The traffic phase a cell is in, as people read it: "canary 50% in euw1-a-01, 3m left",
"shadow in euw1-a-01, 40s left". Pure.

Owns: the phase of each (service, cell) whose new colour takes traffic (a canary weight
or a shadow mirror) while the plan still moves it — from the live record of the weight
and when it was set, the service's pause or shadow duration, and the gate in front of
its next traffic step (an analysis waiting for samples, or the step due). ``plan``,
``status`` (text and ``-o json``) and the dashboard show it. See docs/strategies.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reconciler.core.live import LiveSnapshot, format_time
from reconciler.core.model import DesiredState
from reconciler.core.plan import GateKind, Plan, Step, StepKind
from reconciler.core.planner.waves import human

TRAFFIC_STEPS = frozenset({StepKind.TRAFFIC_MIRROR, StepKind.TRAFFIC_WEIGHT,
                           StepKind.TRAFFIC_SWITCH})


@dataclass(frozen=True)
class Phase:
    """One cell's current traffic phase."""

    service: str
    cell: str
    what: str  # "canary 50%" or "shadow"
    weight: int
    mirror: bool
    ends_at: datetime | None
    next_step: str  # "traffic-weight 50%", "traffic-switch"
    waits: str = ""  # why the next step waits once the time is up (analysis)

    @property
    def steady(self) -> str:
        """Without the time left: ``canary 50% in c1``."""
        return f"{self.what} in {self.cell}"

    def text(self, now: datetime) -> str:
        """``canary 50% in c1, 3m left`` / ``..., next: traffic-switch due``."""
        left = math.ceil((self.ends_at - now).total_seconds()) if self.ends_at else 0
        if left > 0:
            return f"{self.steady}, {human(left)} left"
        if self.waits:
            return f"{self.steady}, {self.waits}"
        return f"{self.steady}, {self.next_step} due"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"text": self.text(now), "phase": self.what, "weight": self.weight,
                "mirror": self.mirror, "endsAt": format_time(self.ends_at) if self.ends_at
                else None, "next": self.next_step}


def _name(s: Step) -> str:
    return f"{s.kind} {s.weight}%" if s.weight is not None else str(s.kind)


def cell_phases(desired: DesiredState | None, plan: Plan, live: LiveSnapshot
                ) -> dict[tuple[str, str], Phase]:
    """(service, cell) -> its phase, for every cell in a traffic phase."""
    nxt: dict[tuple[str, str], Step] = {}
    for s in plan.steps:
        if s.kind in TRAFFIC_STEPS and s.cell is not None:
            nxt.setdefault((s.service, s.cell), s)
    out = {}
    for (service, cell), step in sorted(nxt.items()):
        svc = live.service(cell, service)
        sb = svc.standby if svc else None
        if sb is None or not sb.has_traffic:
            continue
        spec = desired.services.get(service) if desired else None
        hold = None if spec is None else (
            spec.traffic.pause_seconds if sb.weight > 0 else spec.traffic.shadow_seconds)
        ends = sb.since + timedelta(seconds=hold) if sb.since and hold is not None else None
        waits = step.gate.reason.split(": ", 1)[-1] if step.gate.kind == GateKind.ANALYSIS \
            else ""
        what = f"canary {sb.weight}%" if sb.weight > 0 else "shadow"
        out[(service, cell)] = Phase(service, cell, what, sb.weight, sb.mirror, ends,
                                     _name(step), f"analysis waits: {waits}" if waits else "")
    return out
