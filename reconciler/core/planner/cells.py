"""Per-cell steps of a forward change: Terraform, expand, Kubernetes apply, health.

Owns: the order of steps for one cell moving to its desired version, and heal steps
for a cell that is at its version but drifted. The wave-level gate is decided by the
caller; each later step of the cell waits for the one before it.
"""

from __future__ import annotations

from reconciler.core.hashing import terraform_input_hash
from reconciler.core.live import LiveSnapshot
from reconciler.core.model import DesiredState
from reconciler.core.plan import Gate, GateKind, Step, StepKind
from reconciler.core.planner.migrations import expand_steps
from reconciler.core.planner.waves import CellView, WaveView
from reconciler.core.versions import Version


def _s(v: Version | None) -> str | None:
    return str(v) if v is not None else None


def terraform_needed(desired: DesiredState, cv: CellView, service: str) -> bool:
    """Whether the cell's stack inputs differ from what was last applied."""
    if cv.desired is None:
        return False
    want = terraform_input_hash(desired, cv.cell, service, str(cv.desired))
    if want is None:
        return False
    tf = cv.live.terraform if cv.live else None
    return tf is None or tf.applied_hash != want or tf.drifted


def forward_steps(desired: DesiredState, live: LiveSnapshot, cv: CellView, wave: WaveView,
                  service: str, gate: Gate) -> list[Step]:
    """Steps moving ``cv`` to its desired version; the first carries ``gate``."""
    frm, to = _s(cv.live_version), _s(cv.desired)
    w, i, name = wave.wave.name, wave.index, cv.cell.name
    first: list[Step] = []
    if terraform_needed(desired, cv, service):
        first.append(Step(StepKind.TERRAFORM_APPLY, service, w, i, name, frm, to))
    first += expand_steps(desired, live, cv, wave, service)
    steps = _chain(first, gate)
    apply_gate = _after(first[-1]) if first else gate
    apply = Step(StepKind.KUBERNETES_APPLY, service, w, i, name, frm, to, gate=apply_gate)
    return [*steps, apply, Step(StepKind.WAIT_HEALTHY, service, w, i, name, frm, to,
                                gate=_after(apply))]


def _chain(steps: list[Step], gate: Gate) -> list[Step]:
    """Give the first step ``gate`` (if closed) and every later step a previous-step gate.

    A step that carries a closed gate of its own keeps it when it is the first one.
    """
    out: list[Step] = []
    for n, s in enumerate(steps):
        if n == 0:
            out.append(s if gate.open else with_gate(s, gate))
        else:
            out.append(with_gate(s, _after(steps[n - 1])))
    return out


_AFTER: dict[str, Gate] = {}


def _after(prev: Step) -> Gate:
    what = f"{prev.kind} {prev.migration}" if prev.migration else str(prev.kind)
    gate = _AFTER.get(what)
    if gate is None:
        gate = _AFTER[what] = Gate(GateKind.PREVIOUS_STEP, f"after {what}")
    return gate


def with_gate(s: Step, gate: Gate) -> Step:
    """``s`` waiting behind ``gate`` (the same step when it already does)."""
    if s.gate == gate:
        return s
    return Step(s.kind, s.service, s.wave, s.wave_index, s.cell, s.from_version, s.to_version,
                s.migration, s.database, gate, s.detail, s.groups, s.weight)


def steady_steps(desired: DesiredState, cv: CellView, wave: WaveView, service: str,
                 self_heal: bool) -> list[Step]:
    """Steps for a cell already at its version: wait for health, heal drift."""
    v = _s(cv.desired)
    w, i, name = wave.wave.name, wave.index, cv.cell.name
    steps: list[Step] = []
    if self_heal and terraform_needed(desired, cv, service):
        steps.append(Step(StepKind.TERRAFORM_APPLY, service, w, i, name, v, v,
                          detail="heal Terraform drift or apply changed inputs"))
    drift = cv.live.drift if cv.live else ()
    if self_heal and drift:
        fields = ", ".join(sorted({f"{d.kind}/{d.name} {d.field}" for d in drift}))
        steps.append(Step(StepKind.KUBERNETES_APPLY, service, w, i, name, v, v,
                          detail=f"heal drift: {fields}"))
    if cv.health in ("Progressing", "Unknown"):
        msg = cv.live.message if cv.live and cv.live.message else cv.health
        steps.append(Step(StepKind.WAIT_HEALTHY, service, w, i, name, v, v,
                          gate=Gate(GateKind.HEALTHY, f"{name} is {msg}")))
    return _chain(steps, Gate())
