"""Human-readable plan preview, in the spirit of ``terraform plan``.

Owns: the text form of a Plan — a legend of the symbols, waves in order, one line per
changing cell with every step it takes (its rollback included) and what it waits for, or
why it is held or refused; then holds, refusals, warnings and a summary line.
"""

from __future__ import annotations

from collections import defaultdict

from reconciler.core import flags
from reconciler.core.live import format_time
from reconciler.core.model import DesiredState
from reconciler.core.plan import Hold, Plan, Refusal, Step, StepKind, WavePlan
from reconciler.core.planner.waves import human
from reconciler.core.words import plural

SYMBOL = {"install": "+", "upgrade": "~", "rollback": "-", "held": "‖", "refused": "!",
          "none": "="}
#: What the symbols at the start of a line mean (printed under the plan's title).
LEGEND = ("Symbols: + install  ~ upgrade  - roll back  = at its version (heal or wait)  "
          "‖ held  ! refused  ◷ a wave's or the fleet's step")


def _step_name(s: Step) -> str:
    if s.weight is not None:
        return f"{s.kind} {s.weight}%"
    return f"{s.kind} {s.migration}" if s.migration else str(s.kind)


def _cell_line(cell: str, frm: str | None, to: str | None, action: str,
               steps: list[Step], wave_gate: str, refusal: Refusal | None) -> list[str]:
    back = next((s for s in steps if s.kind == StepKind.ROLLBACK), None)
    if back is not None:  # rolling back (a failed wave: Git still names the bad version)
        action, frm, to = "rollback", back.from_version, back.to_version
        frm, to = flags.shown(back.service, frm), flags.shown(back.service, to)
    arrow = f"{frm or '-'} → {to or '-'}"
    if steps:
        names = ", ".join(_step_name(s) for s in steps)
    elif action == "refused" and refusal is not None:
        names = f"refused: {refusal.reason}"
    elif action in ("held", "refused"):
        names = action
    else:
        names = "no step"
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
                total: int, holds: list[Hold], refusals: dict[str, Refusal]) -> list[str]:
    lines = [_wave_header(w, desired, total)]
    if w.reason:
        lines.append(f"    reason: {w.reason}")
    lines += [f"    held: {flags.shown(h.service, h.version)} for {', '.join(h.groups)}: "
              f"{h.reason}" for h in holds]
    common = _common_gate(steps)
    if common:
        lines.append(f"    waits: {common}")
    by_cell: dict[str, list[Step]] = defaultdict(list)
    for s in steps:
        by_cell[s.cell or ""].append(s)
    for c in w.cells:
        if c.action == "none" and c.cell not in by_cell:
            continue
        lines += _cell_line(c.cell, flags.shown(w.service, c.live_version),
                            flags.shown(w.service, c.target_version), c.action,
                            by_cell.get(c.cell, []), common, refusals.get(c.cell))
    for s in by_cell.get("", []):
        lines.append(f"    ◷ {_step_name(s):<41} {'due now' if s.due else s.gate.reason}")
    return lines


def render(plan: Plan, desired: DesiredState | None = None) -> str:
    """The whole plan as text."""
    out = [f"Plan for revision {plan.revision} at {format_time(plan.generated_at)}", LEGEND,
           ""]
    services = sorted({w.service for w in plan.waves})
    for svc in services:
        waves = [w for w in plan.waves if w.service == svc]
        out.append(f"service {svc}" if flags.flag_name(svc) is None else
                   flags.summary(svc, waves))
        steps = [s for s in plan.steps if s.service == svc]
        # a rollback runs before any wave moves (index -1); its cell's line shows it
        back = [s for s in steps if s.wave_index < 0 and s.cell is not None]
        for s in steps:
            if s.wave_index < 0 and s.cell is None:  # the revert commit
                groups = f" ({', '.join(s.groups)})" if s.groups else ""
                out.append(f"  {SYMBOL['rollback']} {_step_name(s)}{groups}: "
                           f"{flags.shown(svc, s.from_version) or '-'} is set back in Git   "
                           f"[{'due now' if s.due else s.gate.reason}] {s.detail}")
        refused = {r.cell: r for r in plan.refusals if r.service == svc}
        for w in waves:
            mine = [s for s in back if s.wave == w.wave]
            mine += [s for s in steps if s.wave_index == w.index]
            holds = [h for h in plan.holds if h.service == svc and h.wave == w.wave]
            out += _wave_lines(w, mine, desired, len(waves), holds, refused)
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
        out.append(f"    ◷ {name} on {plural(len(cells), 'database')} ({shown})   [{when}]")
    return out


def _tail(plan: Plan) -> list[str]:
    out: list[str] = []
    if plan.holds:
        out.append("Held:")
        out += [f"  ‖ {h.service} {flags.shown(h.service, h.version)} in wave {h.wave} "
                f"({', '.join(h.groups)}): "
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
    out.append(f"Plan: {plural(len(plan.steps), 'step')} ({len(plan.due_steps())} due now)"
               + (f": {detail}" if detail else "") +
               f"; {len(plan.holds)} held, {len(plan.refusals)} refused.")
    if not plan.steps and not plan.holds and not plan.refusals:
        out.append("No changes. The fleet matches the desired state.")
    return out
