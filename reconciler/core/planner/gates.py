"""Gates in front of a wave: holds, earlier waves baked, alarms, time windows.

Owns: deciding whether the cells of a wave may start moving to a version, and the
reason shown when they may not. A *hold* means an earlier wave does not even desire
the version; a *gate* means it does but has not baked it yet.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.core.live import LiveSnapshot
from reconciler.core.model import Fleet
from reconciler.core.plan import OPEN, Gate, GateKind
from reconciler.core.planner.waves import WaveView, human, remaining
from reconciler.core.versions import Version
from reconciler.core.words import plural


def hold_reason(views: tuple[WaveView, ...], index: int, version: Version) -> str | None:
    """Why a bump of wave ``index`` to ``version`` is held, or None."""
    for earlier in views[:index]:
        behind = sorted({str(c.desired) for c in earlier.managed
                         if c.desired is not None and c.desired < version})
        if behind:
            return (f"earlier wave {earlier.wave.name!r} desires {', '.join(behind)}; "
                    f"{version} must be released to and baked in it first")
        failed = earlier.progress.failed_version if earlier.progress else None
        if failed is not None and failed == version:
            return (f"{version} failed in earlier wave {earlier.wave.name!r}: "
                    f"{earlier.progress.failure_reason if earlier.progress else ''}")
    return None


def earlier_waves_gate(views: tuple[WaveView, ...], index: int, version: Version,
                       now: datetime) -> Gate:
    """Open when every earlier wave runs ``version`` (or newer), healthy and baked."""
    for earlier in views[:index]:
        if not earlier.managed or earlier.baked_at_least(version, now):
            continue
        if earlier.uniform_version() is None or earlier.uniform_version() != version:
            moving = sum(1 for c in earlier.managed if not c.settled)
            changing = plural(moving, "cell")
            return Gate(GateKind.WAVE_BAKED, f"wave {earlier.wave.name!r} is not yet healthy "
                                             f"on {version} ({changing} still changing)")
        left = remaining(now, earlier.bake_ends())
        text = f"{human(left)} left" if left is not None else "bake not started"
        if earlier.waiting and not left:
            text = f"analysis waits: {earlier.waiting[0].detail}"
        return Gate(GateKind.WAVE_BAKED,
                    f"wave {earlier.wave.name!r} is baking {version} ({text})")
    return OPEN


def alarm_gate(live: LiveSnapshot, view: WaveView) -> Gate:
    """Closed while an alarm fires for one of the wave's cells (or fleet-wide)."""
    firing = live.firing({c.cell.name for c in view.cells})
    if not firing:
        return OPEN
    a = firing[0]
    value = f" (value {a.value:g} over {a.threshold:g})" if a.value is not None and \
        a.threshold is not None else ""
    if a.detail:
        value += f" ({a.detail})"
    return Gate(GateKind.ALARM, f"alarm {a.rule!r} is firing for {a.cell}{value}; "
                                f"wave {view.wave.name!r} cannot start")


def time_window_gate(fleet: Fleet, now: datetime) -> Gate:
    """Closed outside every allowed time window (open when none is configured)."""
    if not fleet.time_windows:
        return OPEN
    minute = now.hour * 60 + now.minute
    for w in fleet.time_windows:
        if now.weekday() in w.days and w.start_minute <= minute < w.end_minute:
            return OPEN
    return Gate(GateKind.TIME_WINDOW, "outside the allowed time windows of reconciler.yaml")


def first_closed(*gates: Gate) -> Gate:
    """The first gate that is not open, or OPEN."""
    return next((g for g in gates if not g.open), OPEN)
