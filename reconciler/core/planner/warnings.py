"""Warnings: legal but risky shapes of the desired state, and drift left unhealed.

Owns: the canary-weight rule (first wave over ``canaryMaxWeightPercent`` of fleet
weight), early waves spanning several regions at once, groups a release leaves out,
and drift reported while self-heal is off.
"""

from __future__ import annotations

from reconciler.core.live import LiveSnapshot
from reconciler.core.model import DesiredState
from reconciler.core.plan import PlanWarning


def _weight_share(desired: DesiredState, groups: tuple[str, ...]) -> float:
    total = sum(c.weight for c in desired.cells.values()) or 1.0
    return 100.0 * sum(c.weight for c in desired.cells.values() if c.group in groups) / total


def fleet_warnings(desired: DesiredState) -> list[PlanWarning]:
    """Warnings about the wave layout itself."""
    out: list[PlanWarning] = []
    waves = desired.fleet.waves
    canary = _weight_share(desired, waves[0].groups)
    limit = desired.fleet.canary_max_weight_percent
    if len(waves) > 1 and canary > limit:
        out.append(PlanWarning("canary-weight", f"canary wave {waves[0].name!r} holds "
                                                f"{canary:.1f}% of fleet weight (over {limit:g}%)"))
    for wave in waves[:-1]:
        regions = sorted({c.region for c in desired.cells_of_wave(wave)})
        if len(regions) > 1:
            out.append(PlanWarning("multi-region-wave",
                                   f"wave {wave.name!r} spans {len(regions)} regions at once "
                                   f"({', '.join(regions)}); only the last wave should"))
    return out


def service_warnings(desired: DesiredState, live: LiveSnapshot,
                     service: str) -> list[PlanWarning]:
    """Warnings for one service: unreleased groups, drift while self-heal is off."""
    out: list[PlanWarning] = []
    release = desired.releases.get(service)
    groups = sorted({c.group for c in desired.cells.values()})
    missing = [g for g in groups if release is None or release.version_for(g) is None]
    if missing:
        word = "group" if len(missing) == 1 else "groups"
        out.append(PlanWarning("unreleased-groups", f"service {service!r}: no version for "
                                                    f"{word} {', '.join(missing)}"))
    if not desired.fleet.self_heal:
        drifted = sorted(c for c in desired.cells if (s := live.service(c, service)) and s.drift)
        if drifted:
            out.append(PlanWarning("drift", f"service {service!r} drifted in "
                                            f"{', '.join(drifted)} (selfHeal is off)"))
    return out
