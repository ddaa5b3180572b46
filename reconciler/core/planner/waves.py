"""Wave views: per service and wave, where each cell is, and whether the wave has baked.

Owns: the facts the other planner modules ask about a wave — its cells' desired and
live versions, whether it runs one version healthily, when its bake started and ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from reconciler.core.live import AlarmState, LiveSnapshot, ServiceLive, WaveProgress
from reconciler.core.model import Cell, DesiredState, Wave
from reconciler.core.versions import Version


@dataclass(frozen=True)
class CellView:
    """One cell of one service: desired and live state side by side."""

    cell: Cell
    desired: Version | None
    live: ServiceLive | None
    live_version: Version | None = field(init=False)
    health: str = field(init=False)
    at_target: bool = field(init=False)

    def __post_init__(self) -> None:
        lv = self.live.version if self.live else None
        object.__setattr__(self, "live_version", lv)
        object.__setattr__(self, "health", self.live.health if self.live else "Missing")
        object.__setattr__(self, "at_target", self.desired is not None and lv == self.desired)

    @property
    def settled(self) -> bool:
        """At its desired version and Healthy."""
        return self.at_target and self.health == "Healthy"


@dataclass(frozen=True)
class WaveView:
    """One wave of one service."""

    wave: Wave
    index: int
    cells: tuple[CellView, ...]
    progress: WaveProgress | None
    weight: float
    #: Baseline analyses of the wave's cells not decided yet (too few samples): the wave
    #: does not finish its bake while there is one — waiting, never passing.
    waiting: tuple[AlarmState, ...] = ()

    @cached_property
    def managed(self) -> tuple[CellView, ...]:
        """Cells the release names a version for."""
        return tuple(c for c in self.cells if c.desired is not None)

    def uniform_version(self) -> Version | None:
        """The lowest version the managed cells run once all are settled, else None."""
        return self._uniform

    @cached_property
    def _uniform(self) -> Version | None:
        managed = self.managed
        if not managed or not all(c.settled for c in managed):
            return None
        return min(c.live_version for c in managed if c.live_version is not None)

    def bake_ends(self) -> datetime | None:
        """When the bake of the uniform version ends, if it has started."""
        v = self.uniform_version()
        p = self.progress
        if v is None or p is None or p.version != v or p.bake_started_at is None:
            return None
        return p.bake_started_at + timedelta(seconds=self.wave.bake_seconds)

    def baked(self, now: datetime) -> bool:
        """Settled on one version and its bake time has passed (zero bake: settled)."""
        if self.uniform_version() is None or self.waiting:
            return False
        if self.wave.bake_seconds == 0:
            return True
        ends = self.bake_ends()
        return ends is not None and now >= ends

    def baked_at_least(self, version: Version, now: datetime) -> bool:
        """Baked, and every managed cell runs ``version`` or newer."""
        v = self.uniform_version()
        return v is not None and v >= version and all(
            c.live_version is not None and c.live_version >= version for c in self.managed
        ) and self.baked(now)


def build_views(desired: DesiredState, live: LiveSnapshot, service: str) -> tuple[WaveView, ...]:
    """The service's waves, in order, with their cells' views."""
    total = sum(c.weight for c in desired.cells.values()) or 1.0
    progress = live.rollout.get(service, {})
    views = []
    for i, wave in enumerate(desired.fleet.waves):
        cells = tuple(CellView(c, desired.desired_version(service, c),
                               live.service(c.name, service))
                      for c in desired.cells_of_wave(wave))
        weight = 100.0 * sum(c.cell.weight for c in cells) / total
        waiting = live.waiting({c.cell.name for c in cells if c.desired is not None})
        views.append(WaveView(wave, i, cells, progress.get(wave.name), weight, waiting))
    return tuple(views)


def remaining(now: datetime, ends: datetime | None) -> int | None:
    """Whole seconds from ``now`` until ``ends`` (never negative)."""
    if ends is None:
        return None
    return max(0, int((ends - now).total_seconds()))


def human(seconds: int) -> str:
    """``3725`` -> ``1h2m5s``."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not (h or m) else "")
    return out
