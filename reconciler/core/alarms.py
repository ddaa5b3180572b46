"""Alarm rules: templating a rule's query per cell and judging the samples it returned.

Owns: the meaning of an alarm — a query templated with ``{{ cell.* }}`` / ``{{ wave }}``,
compared with a threshold, firing only with at least ``minSamples`` samples. Pure: the
Prometheus adapter fetches the samples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reconciler.core.live import AlarmState
from reconciler.core.model import AlarmRule, Cell

_FIELD = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")
#: The placeholders of a ``compare: baseline`` query (see docs/analysis.md): the version
#: of one side, its cells as a regular expression (``cell=~"{{ cells }}"``), the service
#: and the scope's value (the region's name under ``scope: region``).
BASELINE_FIELDS = frozenset({"version", "cells", "service", "scope"})


def placeholders(query: str) -> list[str]:
    """The placeholder names a query uses, in order."""
    return [m[1] for m in _FIELD.finditer(query)]
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


def render_query(rule: AlarmRule, cell: Cell, wave: str = "") -> str:
    """The rule's query for one cell; an unknown placeholder raises ValueError."""
    values = {"cell.name": cell.name, "cell.group": cell.group, "cell.region": cell.region,
              "cell.zone": cell.zone, "cell.namespace": cell.kubernetes.namespace,
              "wave": wave}

    def sub(m: re.Match[str]) -> str:
        if m[1] not in values:
            raise ValueError(f"alarm {rule.name!r}: unknown placeholder {{{{ {m[1]} }}}}")
        return values[m[1]]

    return _FIELD.sub(sub, rule.query)


def judge(rule: AlarmRule, cell: str, samples: Sequence[float]) -> AlarmState:
    """Fire when there are enough samples and the latest breaches the threshold."""
    if len(samples) < rule.min_samples:
        return AlarmState(rule.name, cell, False, samples[-1] if samples else None,
                          rule.threshold, len(samples))
    latest = float(samples[-1])
    firing = _OPS[rule.comparison](latest, float(rule.threshold))
    return AlarmState(rule.name, cell, firing, latest, rule.threshold, len(samples))
