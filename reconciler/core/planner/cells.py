"""Per-cell steps of a forward change: Terraform, expand, Kubernetes apply, health.

Owns: the order of steps for one cell moving to its desired version, and heal steps
for a cell that is at its version but drifted. The wave-level gate is decided by the
caller; each later step of the cell waits for the one before it.
"""

from __future__ import annotations

from reconciler.core.hashing import terraform_input_hash
from reconciler.core.live import LiveSnapshot
from reconciler.core.model import DesiredState
from reconciler.core.plan import Gate, Step
from reconciler.core.planner.migrations import expand_steps
from reconciler.core.planner.waves import CellView, WaveView


def _s(v: object) -> str | None:
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
    steps: list[Step] = []
    if terraform_needed(desired, cv, service):
        steps.append(Step("terraform-apply", service, w, i, name, frm, to))
    steps += expand_steps(desired, live, cv, wave, service)
    steps.append(Step("kubernetes-apply", service, w, i, name, frm, to))
    steps.append(Step("wait-healthy", service, w, i, name, frm, to))
    return _chain(steps, gate)


def _chain(steps: list[Step], gate: Gate) -> list[Step]:
    """Give the first step ``gate`` (if closed) and every later step a previous-step gate."""
    out: list[Step] = []
    blocked: Gate | None = None if gate.open else gate
    for s in steps:
        if blocked is not None:
            out.append(_with_gate(s, blocked if not out else _after(out[-1])))
        elif not s.gate.open:
            out.append(s)
            blocked = s.gate
        elif out:
            out.append(_with_gate(s, _after(out[-1])))
        else:
            out.append(s)
    return out


def _after(prev: Step) -> Gate:
    what = f"{prev.kind} {prev.migration}" if prev.migration else prev.kind
    return Gate("previous-step", f"after {what}")


def _with_gate(s: Step, gate: Gate) -> Step:
    return Step(s.kind, s.service, s.wave, s.wave_index, s.cell, s.from_version, s.to_version,
                s.migration, s.database, gate, s.detail)


def steady_steps(desired: DesiredState, cv: CellView, wave: WaveView, service: str,
                 self_heal: bool) -> list[Step]:
    """Steps for a cell already at its version: wait for health, heal drift."""
    v = _s(cv.desired)
    w, i, name = wave.wave.name, wave.index, cv.cell.name
    steps: list[Step] = []
    if self_heal and terraform_needed(desired, cv, service):
        steps.append(Step("terraform-apply", service, w, i, name, v, v,
                          detail="heal Terraform drift or apply changed inputs"))
    drift = cv.live.drift if cv.live else ()
    if self_heal and drift:
        fields = ", ".join(sorted({f"{d.kind}/{d.name} {d.field}" for d in drift}))
        steps.append(Step("kubernetes-apply", service, w, i, name, v, v,
                          detail=f"heal drift: {fields}"))
    if cv.health in ("Progressing", "Unknown"):
        msg = cv.live.message if cv.live and cv.live.message else cv.health
        steps.append(Step("wait-healthy", service, w, i, name, v, v,
                          gate=Gate("healthy", f"{name} is {msg}")))
    return _chain(steps, Gate())
