"""Baseline analysis: the cells on a new version against those on the previous one.

Owns: which comparisons a ``compare: baseline`` alarm rule makes (per service and scope:
the cells that were upgraded to a version against the cells of the same scope still on
the version they left), templating its query for each side, and judging the two series:
firing over ``maxRatio`` / ``maxDelta``, *pending* (never passing) while either side has
fewer than ``minSamples`` samples, the ratio not judged under ``minBaseline``. The
numbers and the decision are in the state's ``detail``. Pure: the Prometheus adapter
fetches the samples. See docs/analysis.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.core.live import AlarmState, ServiceLive
from reconciler.core.model import AlarmRule, Cell, DesiredState
from reconciler.core.versions import Version

_FIELD = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a version and the cells running it."""

    version: Version
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """One baseline comparison of ``rule`` for ``service`` in one scope."""

    rule: AlarmRule
    service: str
    scope: str  # e.g. "region r1"; "fleet" under scope: fleet
    canary: Side
    baseline: Side


def scope_of(rule: AlarmRule, cell: Cell) -> str:
    """The scope value of ``cell`` under the rule's ``scope``."""
    if rule.scope == "fleet":
        return "fleet"
    value = {"region": cell.region, "zone": cell.zone, "group": cell.group}[rule.scope]
    return f"{rule.scope} {value}"


def comparisons(rule: AlarmRule, service: str, desired: DesiredState,
                services: Mapping[str, Mapping[str, ServiceLive]]) -> list[Comparison]:
    """Every comparison ``rule`` makes for ``service``: for each scope and each version
    some cell was upgraded to there, its cells on it against the scope's cells still on
    the version they left (none there: no comparison)."""
    by_scope: dict[str, dict[Version, list[str]]] = {}
    moves: set[tuple[str, Version, Version]] = set()
    for name in sorted(desired.cells):
        live = services.get(name, {}).get(service)
        if live is None or live.version is None:
            continue
        scope = scope_of(rule, desired.cells[name])
        by_scope.setdefault(scope, {}).setdefault(live.version, []).append(name)
        prev = live.previous_version
        if prev is not None and prev < live.version:
            moves.add((scope, live.version, prev))
    out = []
    for scope, new, old in sorted(moves, key=lambda m: (m[0], str(m[1]), str(m[2]))):
        base = by_scope[scope].get(old, [])
        if base:
            out.append(Comparison(rule, service, scope, Side(new, tuple(by_scope[scope][new])),
                                  Side(old, tuple(base))))
    return out + in_cell(rule, service, desired, services)


def in_cell(rule: AlarmRule, service: str, desired: DesiredState,
            services: Mapping[str, Mapping[str, ServiceLive]]) -> list[Comparison]:
    """Inside each cell whose new colour takes traffic (a canary weight or a shadow
    mirror), the new version's pods against the serving version's pods of the same cell
    (scope ``cell <name>``; ``{{ cells }}`` is the cell on both sides)."""
    out = []
    for name in sorted(desired.cells):
        live = services.get(name, {}).get(service)
        sb = live.standby if live else None
        if live is None or live.version is None or sb is None or not sb.has_traffic or \
                sb.version <= live.version:
            continue
        out.append(Comparison(rule, service, f"cell {name}", Side(sb.version, (name,)),
                              Side(live.version, (name,))))
    return out


def cells_pattern(cells: Sequence[str]) -> str:
    """The cells as an anchored PromQL regular expression, escaped for a double-quoted
    PromQL string (cell names are DNS labels, but nothing is assumed)."""
    alternatives = "|".join(re.escape(c) for c in cells)
    return alternatives.replace("\\", "\\\\").replace('"', '\\"')


def render(cmp: Comparison, side: Side) -> str:
    """The rule's query for one side of ``cmp``."""
    scope_value = cmp.scope.split(" ", 1)[-1]
    values = {"version": str(side.version), "cells": cells_pattern(side.cells),
              "service": cmp.service, "scope": scope_value}

    def sub(m: re.Match[str]) -> str:
        if m[1] not in values:
            raise ValueError(f"alarm {cmp.rule.name!r}: unknown placeholder {{{{ {m[1]} }}}}")
        return values[m[1]]

    return _FIELD.sub(sub, cmp.rule.query)


def judge(cmp: Comparison, canary: Sequence[float],
          baseline: Sequence[float]) -> list[AlarmState]:
    """One state per canary cell: firing, pending or passing, with the numbers."""
    rule, n_c, n_b = cmp.rule, len(canary), len(baseline)
    sides = "canary vs stable pods" if cmp.scope.startswith("cell ") else \
        f"{len(cmp.canary.cells)} vs {len(cmp.baseline.cells)} cells"
    where = f"{cmp.canary.version} vs {cmp.baseline.version} in {cmp.scope} ({sides})"
    if n_c < rule.min_samples or n_b < rule.min_samples:
        detail = (f"baseline analysis of {where}: waiting for samples (canary "
                  f"{n_c}/{rule.min_samples}, baseline {n_b}/{rule.min_samples})")
        return _states(cmp, False, True, None, _limit(rule), min(n_c, n_b), detail)
    c, b = float(canary[-1]), float(baseline[-1])
    firing, value, limit, verdict = _verdict(rule, c, b)
    detail = (f"baseline analysis of {where}: canary {c:.4g}, baseline {b:.4g}, "
              f"{verdict}")
    return _states(cmp, firing, False, value, limit, min(n_c, n_b), detail)


def _limit(rule: AlarmRule) -> float | None:
    return rule.max_ratio if rule.max_ratio is not None else rule.max_delta


def _verdict(rule: AlarmRule, c: float, b: float) -> tuple[bool, float | None, float | None,
                                                             str]:
    """(firing, value, limit, words): the ratio when judged, else the delta."""
    parts, firing = [], False
    value: float | None = None
    limit: float | None = None
    if rule.max_delta is not None:
        delta = c - b
        over = delta > rule.max_delta
        firing = firing or over
        value, limit = delta, rule.max_delta
        parts.append(f"delta {delta:.4g} {'>' if over else '<='} maxDelta {rule.max_delta:g}")
    if rule.max_ratio is not None:
        if b < rule.min_baseline or b <= 0:
            parts.append(f"ratio not judged (baseline under minBaseline {rule.min_baseline:g})")
        else:
            ratio = c / b
            over = ratio > rule.max_ratio
            if over or not firing:
                value, limit = ratio, rule.max_ratio
            firing = firing or over
            parts.append(f"ratio {ratio:.3g} {'>' if over else '<='} maxRatio "
                         f"{rule.max_ratio:g}")
    return firing, value, limit, "; ".join(parts) + (": FAIL" if firing else ": pass")


def _states(cmp: Comparison, firing: bool, pending: bool, value: float | None,
            limit: float | None, samples: int, detail: str) -> list[AlarmState]:
    return [AlarmState(cmp.rule.name, cell, firing, value, limit, samples, pending, detail)
            for cell in cmp.canary.cells]


def merge(states: Sequence[AlarmState]) -> tuple[AlarmState, ...]:
    """One state per (rule, cell): the most severe (firing, then pending, then passing)
    — a fleet rule compares every service, a cell may be a canary of several."""
    rank: dict[tuple[str, str], AlarmState] = {}
    for s in states:
        key = (s.rule, s.cell)
        old = rank.get(key)
        if old is None or _severity(s) > _severity(old):
            rank[key] = s
    return tuple(rank[k] for k in sorted(rank))


def _severity(s: AlarmState) -> int:
    return 2 if s.firing else 1 if s.pending else 0


def baseline_rules(desired: DesiredState) -> list[tuple[AlarmRule, str]]:
    """(rule, service) for every baseline rule: a service's own, and each fleet rule for
    every service."""
    out = [(r, s) for r in desired.fleet.alarms if r.baseline for s in sorted(desired.services)]
    for name in sorted(desired.services):
        out += [(r, name) for r in desired.services[name].alarms if r.baseline]
    return out
