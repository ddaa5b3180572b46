"""Flags and versions in one plan: a variant's ``requires`` orders the two.

Owns: the rules that tie a flag's steps to the version steps of the service a variant
requires — in a cell, a flag moves to a variant that requires ``api >=1.6.0`` only while
api runs such a version there, desires one and is not being rolled back below it (gate
``flag-requirement``); and a cell's api leaving that range (a rollback, a human revert,
any step to a version outside it) waits until the flag is turned off there first: a
``rollback`` step of the flag to its default variant is added, due at once; so is one
where the cell already runs a version outside the range (rolled back by other means, or
not running the service at all). The flag's
own waves (order, bake, alarms, maxUnavailable, holds, failures) are the release
planner's: a flag is planned as the service ``flag.<name>`` (``core/flags.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.core import flags
from reconciler.core.live import LiveSnapshot
from reconciler.core.model import DesiredState, Flag, FlagRequirement
from reconciler.core.plan import Gate, GateKind, Step, StepKind
from reconciler.core.planner.cells import with_gate
from reconciler.core.versions import Version

_MOVES = frozenset({StepKind.TERRAFORM_APPLY, StepKind.KUBERNETES_APPLY,
                    StepKind.MIGRATION_EXPAND, StepKind.ROLLBACK,
                    StepKind.MIGRATION_ROLLBACK})


def _parse(text: str | None) -> Version | None:
    try:
        return Version.parse(text) if text else None
    except ValueError:
        return None


def _requirement(flag: Flag, version: str | None) -> FlagRequirement | None:
    variant = flag.variant(flags.variant_of(version) or "")
    return variant.requires if variant is not None else None


def _leaving(steps: Iterable[Step]) -> dict[tuple[str, str], Version]:
    """(service, cell) -> the version a real service's step moves the cell to."""
    out: dict[tuple[str, str], Version] = {}
    for s in steps:
        if s.kind in _MOVES and s.cell and flags.flag_name(s.service) is None and \
                s.from_version != s.to_version:
            to = _parse(s.to_version)
            if to is not None:
                out[(s.service, s.cell)] = to
    return out


def _unmet(desired: DesiredState, live: LiveSnapshot, req: FlagRequirement, cell: str,
           leaving: dict[tuple[str, str], Version]) -> str | None:
    """Why ``req`` is not met in ``cell``, or None."""
    svc = live.service(cell, req.service)
    running = svc.version if svc else None
    want = desired.desired_version(req.service, desired.cells[cell])
    moving = leaving.get((req.service, cell))
    need = f"needs {req.service} {req.text}"
    if not req.versions.contains(running):
        return f"{need}; {cell} runs {running or 'none'}"
    if not req.versions.contains(want):
        return f"{need}; {cell} is to run {want or 'none'}"
    if moving is not None and not req.versions.contains(moving):
        return f"{need}; {cell} moves to {moving}"
    return None


def _flag_off(desired: DesiredState, flag: Flag, cell: str, running: str,
              reason: str) -> Step:
    wave = desired.wave_of_group(desired.cells[cell].group)
    names = [v.name for v in flag.variants]
    off = flags.as_version(names, flag.default_variant, flag.default_variant)
    return Step(StepKind.ROLLBACK, flags.service_name(flag.name),
                wave.name if wave else None, -1, cell, running,
                str(off), detail=f"turn off: {reason}")


def order(desired: DesiredState, live: LiveSnapshot, steps: list[Step]) -> list[Step]:
    """``steps`` with the flag/version ordering rules applied (see the module doc)."""
    if not desired.flags:
        return steps
    leaving = _leaving(steps)
    out: list[Step] = []
    held: dict[tuple[str, str], str] = {}  # (service, cell) -> why it waits for a flag
    off: dict[tuple[str, str], Step] = {}
    for s in steps:
        name = flags.flag_name(s.service)
        flag = desired.flags.get(name) if name else None
        if flag is None or s.cell is None:
            out.append(s)
            continue
        req = _requirement(flag, s.to_version)
        why = _unmet(desired, live, req, s.cell, leaving) if req else None
        if why is not None and s.kind != StepKind.ROLLBACK and s.gate.open:
            s = with_gate(s, Gate(GateKind.FLAG_REQUIREMENT, f"variant "
                                  f"{flags.variant_of(s.to_version)} {why}"))
        out.append(s)
    for flag in sorted(desired.flags.values(), key=lambda f: f.name):
        name = flags.service_name(flag.name)
        for cell in sorted(desired.cells):
            running = live.service(cell, name)
            version = str(running.version) if running and running.version else None
            req = _requirement(flag, version)
            why = _unmet(desired, live, req, cell, leaving) if req and version else None
            if req is None or version is None or why is None:
                continue
            off[(name, cell)] = _flag_off(desired, flag, cell, version, why)
            if (req.service, cell) in leaving:
                held[(req.service, cell)] = f"flag {flag.name} turns off in {cell} first ({why})"
    out = [s for s in out if not (s.cell and (s.service, s.cell) in off)]
    out += off.values()
    return [with_gate(s, Gate(GateKind.FLAG_REQUIREMENT, held[(s.service, s.cell)]))
            if s.cell and (s.service, s.cell) in held and s.gate.open else s for s in out]
