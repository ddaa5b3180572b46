"""Alarm rules of reconciler.yaml and service.yaml: thresholds and baseline comparisons.

Owns: building an ``AlarmRule`` from its schema-valid mapping and the semantic checks the
schema cannot say (a baseline rule needs ``maxRatio`` or ``maxDelta``; a threshold rule
needs ``threshold``; a baseline query uses only its documented placeholders).
"""

from __future__ import annotations

from typing import Any

from reconciler.core.alarms import BASELINE_FIELDS, placeholders
from reconciler.core.durations import seconds
from reconciler.core.kinds import Collector
from reconciler.core.model import AlarmRule


def alarm(raw: dict[str, Any]) -> AlarmRule:
    """An alarm rule from its schema-valid mapping (unchecked: see ``alarms``)."""
    ratio, delta = raw.get("maxRatio"), raw.get("maxDelta")
    return AlarmRule(
        name=str(raw["name"]), query=str(raw["query"]),
        threshold=float(raw.get("threshold", 0.0)),
        comparison=str(raw.get("comparison", ">")), min_samples=int(raw.get("minSamples", 1)),
        window_seconds=seconds(raw.get("window"), 300),
        compare=str(raw.get("compare", "threshold")),
        max_ratio=float(ratio) if ratio is not None else None,
        max_delta=float(delta) if delta is not None else None,
        min_baseline=float(raw.get("minBaseline", 0.0)),
        scope=str(raw.get("scope", "region")))


def alarms(c: Collector, keys: list[str | int], raws: list[dict[str, Any]]
           ) -> tuple[AlarmRule, ...]:
    """The rules at ``keys``, each checked; problems go to ``c``."""
    out = []
    for i, raw in enumerate(raws):
        rule = alarm(raw)
        _check(c, [*keys, i], raw, rule)
        out.append(rule)
    return tuple(out)


def _check(c: Collector, keys: list[str | int], raw: dict[str, Any], rule: AlarmRule) -> None:
    if not rule.baseline:
        if "threshold" not in raw:
            c.add(keys, f"alarm {rule.name!r}: threshold is required (or compare: baseline)")
        for key in ("maxRatio", "maxDelta", "minBaseline", "scope"):
            if key in raw:
                c.add([*keys, key], f"alarm {rule.name!r}: {key} needs compare: baseline")
        return
    if rule.max_ratio is None and rule.max_delta is None:
        c.add([*keys, "compare"], f"alarm {rule.name!r}: compare: baseline needs maxRatio "
                                  "or maxDelta")
    if "threshold" in raw:
        c.add([*keys, "threshold"], f"alarm {rule.name!r}: a baseline comparison has no "
                                    "threshold (use maxRatio / maxDelta)")
    used = set(placeholders(rule.query))
    if not used & {"version", "cells"}:
        c.add([*keys, "query"], f"alarm {rule.name!r}: a baseline query must tell the sides "
                                "apart with {{ version }} or {{ cells }}")
    unknown = sorted(used - BASELINE_FIELDS)
    if unknown:
        c.add([*keys, "query"], f"alarm {rule.name!r}: unknown placeholder "
                                f"{{{{ {unknown[0]} }}}} (a baseline query may use "
                                f"{', '.join(sorted(BASELINE_FIELDS))})")
