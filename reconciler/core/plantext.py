"""Human-readable plan preview, in the spirit of ``terraform plan``.

Owns: the text form of a Plan — waves in order, one line per changing cell with its
steps and what it waits for, then holds, refusals, warnings and a summary line.
"""

from __future__ import annotations

from collections import defaultdict

from reconciler.core.live import format_time
from reconciler.core.model import DesiredState
from reconciler.core.plan import Plan, Step, WavePlan
from reconciler.core.planner.waves import human

SYMBOL = {"install": "+", "upgrade": "~", "rollback": "-", "held": "‖", "refused": "!",
          "none": "="}


def _step_name(s: Step) -> str:
    return f"{s.kind} {s.migration}" if s.migration else str(s.kind)


def _cell_line(cell: str, frm: str | None, to: str | None, action: str,
               steps: list[Step], wave_gate: str) -> list[str]:
    arrow = f"{frm or '-'} → {to or '-'}"
    names = ", ".join(_step_name(s) for s in steps) if steps else "no change"
    first = steps[0] if steps else None
    when = ""
    if first is not None:
        when = "due now" if first.due else (
            "" if first.gate.reason == wave_gate else f"waits: {first.gate.reason}")
    line = f"    {SYMBOL.get(action, '~')} {cell:<22} {arrow:<18} {names}"
    return [line + (f"   [{when}]" if when else "")]


def _wave_header(w: WavePlan, desired: DesiredState | None, total: int) -> str:
    extra = ""
    if desired is not None:
        wave = next((x for x in desired.fleet.waves if x.name == w.wave), None)
        if wave is not None:
            extra = f" · bake {human(wave.bake_seconds)} · maxUnavailable {wave.max_unavailable}"
    bake = f" · {human(w.bake_remaining_seconds)} of bake left" if w.bake_remaining_seconds \
        else ""
    return (f"  wave {w.index + 1}/{total} {w.wave}  [{w.state}]  "
            f"{w.weight_percent:.1f}% of weight{extra}{bake}")


def _common_gate(steps: list[Step]) -> str:
    firsts: dict[str, Step] = {}
    for s in steps:
        if s.cell:
            firsts.setdefault(s.cell, s)
    reasons = {s.gate.reason for s in firsts.values() if not s.due}
    if len(reasons) == 1 and all(not s.due for s in firsts.values()):
        return reasons.pop()
    return ""


def _wave_lines(w: WavePlan, steps: list[Step], desired: DesiredState | None,
                total: int) -> list[str]:
    lines = [_wave_header(w, desired, total)]
    if w.reason:
        lines.append(f"    reason: {w.reason}")
    common = _common_gate(steps)
    if common:
        lines.append(f"    waits: {common}")
    by_cell: dict[str, list[Step]] = defaultdict(list)
    for s in steps:
        by_cell[s.cell or ""].append(s)
    for c in w.cells:
        if c.action == "none" and c.cell not in by_cell:
            continue
        lines += _cell_line(c.cell, c.live_version, c.target_version, c.action,
                            by_cell.get(c.cell, []), common)
    for s in by_cell.get("", []):
        lines.append(f"    ◷ {_step_name(s):<41} {'due now' if s.due else s.gate.reason}")
    return lines


def render(plan: Plan, desired: DesiredState | None = None) -> str:
    """The whole plan as text."""
    out = [f"Plan for revision {plan.revision} at {format_time(plan.generated_at)}", ""]
    services = sorted({w.service for w in plan.waves})
    for svc in services:
        waves = [w for w in plan.waves if w.service == svc]
        out.append(f"service {svc}")
        steps = [s for s in plan.steps if s.service == svc]
        pre = [s for s in steps if s.wave_index < 0]
        for s in pre:
            out.append(f"  {SYMBOL['rollback']} {_step_name(s)} {s.cell or s.wave or ''}: "
                       f"{s.from_version or '-'} → {s.to_version or '-'}   "
                       f"[{'due now' if s.due else s.gate.reason}] {s.detail}")
        for w in waves:
            out += _wave_lines(w, [s for s in steps if s.wave_index == w.index], desired,
                               len(waves))
        out += _post_lines([s for s in steps if s.wave_index >= len(waves)])
        out.append("")
    out += _tail(plan)
    return "\n".join(out) + "\n"


def _post_lines(post: list[Step]) -> list[str]:
    """Steps after the last wave (contracts), grouped by step and gate."""
    if not post:
        return []
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s in post:
        groups[(_step_name(s), "due now" if s.due else s.gate.reason)].append(s.cell or "")
    out = ["  after the last wave"]
    for (name, when), cells in sorted(groups.items()):
        shown = ", ".join(cells[:3]) + (f" and {len(cells) - 3} more" if len(cells) > 3 else "")
        out.append(f"    ◷ {name} on {len(cells)} database(s) ({shown})   [{when}]")
    return out


def _tail(plan: Plan) -> list[str]:
    out: list[str] = []
    if plan.holds:
        out.append("Held:")
        out += [f"  ‖ {h.service} {h.version} in wave {h.wave} ({', '.join(h.groups)}): "
                f"{h.reason}" for h in plan.holds]
    if plan.refusals:
        out.append("Refused (unsafe):")
        out += [f"  ! {r.service} {r.cell} {r.from_version or '-'} → {r.to_version or '-'}: "
                f"{r.reason}" for r in plan.refusals]
    if plan.warnings:
        out.append("Warnings:")
        out += [f"  ⚠ {w.code}: {w.message}" for w in plan.warnings]
    kinds: dict[str, int] = defaultdict(int)
    for s in plan.steps:
        kinds[str(s.kind)] += 1
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    out.append(f"Plan: {len(plan.steps)} steps ({len(plan.due_steps())} due now)"
               + (f": {detail}" if detail else "") +
               f"; {len(plan.holds)} held, {len(plan.refusals)} refused.")
    if not plan.steps and not plan.holds and not plan.refusals:
        out.append("No changes. The fleet matches the desired state.")
    return out
