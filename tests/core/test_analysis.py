"""Baseline analysis, table-driven (fixtures/analysis): the judgement of two series, the
comparisons a rule makes over the fleet, the query's placeholders, and the rule's checks
when the repository is loaded."""

from __future__ import annotations

from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core import analysis
from reconciler.core.live import ServiceLive
from reconciler.core.loader import load_repository
from reconciler.core.model import AlarmRule
from reconciler.core.versions import Version
from tests.core.support import FIXTURES, overlay

_DIR = FIXTURES / "analysis"
JUDGE = YAML(typ="safe").load((_DIR / "judge.yaml").read_text())
COMPARE = YAML(typ="safe").load((_DIR / "comparisons.yaml").read_text())
QUERY = 'sum(rate(e{cell=~"{{ cells }}",version="{{ version }}"}[1m]))'


def _rule(raw: dict[str, Any], scope: str = "region") -> AlarmRule:
    return AlarmRule("error-ratio", QUERY, 0.0, min_samples=int(raw.get("minSamples", 1)),
                     compare="baseline", max_ratio=raw.get("maxRatio"),
                     max_delta=raw.get("maxDelta"),
                     min_baseline=float(raw.get("minBaseline", 0.0)), scope=scope)


def _cmp(rule: AlarmRule) -> analysis.Comparison:
    return analysis.Comparison(rule, "app", "region r1",
                               analysis.Side(Version.parse("1.1.0"), ("c1",)),
                               analysis.Side(Version.parse("1.0.0"), ("z1", "z2")))


@pytest.mark.parametrize("case", JUDGE, ids=[c["name"] for c in JUDGE])
def test_judge(case: dict[str, Any]) -> None:
    [state] = analysis.judge(_cmp(_rule(case["rule"])), case["canary"], case["baseline"])
    exp = case["expect"]
    assert (state.rule, state.cell) == ("error-ratio", "c1")
    assert state.firing == exp["firing"]
    assert state.pending == exp.get("pending", False)
    if "value" in exp:
        assert state.value == (pytest.approx(exp["value"]) if exp["value"] is not None
                               else None)
    if "threshold" in exp:
        assert state.threshold == exp["threshold"]
    assert exp["detail"] in state.detail, state.detail
    assert "1.1.0 vs 1.0.0 in region r1 (1 vs 2 cells)" in state.detail


def _live(spec: dict[str, list[str | None]], cells: list[str]) -> dict[str, dict[str,
                                                                                ServiceLive]]:
    out = {}
    for cell in cells:
        version, prev = spec.get(cell, spec["default"])
        out[cell] = {"app": ServiceLive(Version.parse(str(version)), "Healthy",
                                        Version.parse(prev) if prev else None)}
    return out


@pytest.mark.parametrize("case", COMPARE, ids=[c["name"] for c in COMPARE])
def test_comparisons(case: dict[str, Any]) -> None:
    desired = load_repository(overlay({})).desired
    assert desired is not None
    rule = _rule({"maxRatio": 1.5}, case["scope"])
    found = analysis.comparisons(rule, "app", desired, _live(case["live"],
                                                             sorted(desired.cells)))
    assert [f"{c.scope}: {','.join(c.canary.cells)}@{c.canary.version} vs "
            f"{','.join(c.baseline.cells)}@{c.baseline.version}" for c in found] == \
        case["expect"]


def test_render_fills_each_side_and_escapes_cells() -> None:
    cmp = _cmp(_rule({"maxRatio": 1.5}))
    assert analysis.render(cmp, cmp.canary) == 'sum(rate(e{cell=~"c1",version="1.1.0"}[1m]))'
    assert analysis.render(cmp, cmp.baseline) == \
        'sum(rate(e{cell=~"z1|z2",version="1.0.0"}[1m]))'
    assert analysis.cells_pattern(['a"b', "c.d"]) == 'a\\"b|c\\\\.d'


def test_merge_keeps_the_most_severe_state() -> None:
    cmp = _cmp(_rule({"maxRatio": 1.5, "minSamples": 2}))
    passing = analysis.judge(cmp, [1.0, 1.0], [1.0, 1.0])
    pending = analysis.judge(cmp, [1.0], [1.0, 1.0])
    firing = analysis.judge(cmp, [9.0, 9.0], [1.0, 1.0])
    assert analysis.merge([*passing, *pending])[0].pending
    assert analysis.merge([*firing, *pending, *passing])[0].firing


_FLEET = (FIXTURES / "base" / "reconciler.yaml").read_text()
_BAD = [
    ("{name: r, query: 'x{version=\"{{ version }}\"}', compare: baseline}",
     "compare: baseline needs maxRatio or maxDelta"),
    ("{name: r, query: 'x{version=\"{{ version }}\"}', compare: baseline, maxRatio: 2,"
     " threshold: 1}", "a baseline comparison has no threshold"),
    ("{name: r, query: 'x{cell=\"{{ cell.name }}\"}', compare: baseline, maxRatio: 2}",
     "must tell the sides apart"),
    ("{name: r, query: 'x{v=\"{{ version }}\",c=\"{{ cell.name }}\"}', compare: baseline,"
     " maxRatio: 2}", "unknown placeholder {{ cell.name }}"),
    ("{name: r, query: 'x', maxRatio: 2, threshold: 1}", "maxRatio needs compare: baseline"),
    ("{name: r, query: 'x'}", "threshold is required (or compare: baseline)"),
    ("{name: r, query: 'x{version=\"{{ version }}\"}', compare: baseline, maxRatio: 0}",
     "maxRatio"),
]


@pytest.mark.parametrize(("rule", "message"), _BAD, ids=[m for _, m in _BAD])
def test_bad_rules_are_rejected_with_positions(rule: str, message: str) -> None:
    text = _FLEET + f"  alarms:\n    - {rule}\n"
    result = load_repository(overlay({"reconciler.yaml": text}))
    assert result.desired is None
    errors = [str(e) for e in result.errors]
    assert any(message in e and e.startswith("reconciler.yaml:") for e in errors), errors


def test_a_baseline_rule_loads() -> None:
    text = _FLEET + ("  alarms:\n    - {name: r, query: 'x{version=\"{{ version }}\"}', "
                     "compare: baseline, maxRatio: 1.5, maxDelta: 0.01, minBaseline: 0.001, "
                     "minSamples: 3, scope: zone, window: 30s}\n")
    result = load_repository(overlay({"reconciler.yaml": text}))
    assert result.desired is not None, [str(e) for e in result.errors]
    [rule] = result.desired.fleet.alarms
    assert (rule.baseline, rule.max_ratio, rule.max_delta, rule.min_baseline, rule.scope,
            rule.min_samples, rule.window_seconds) == (True, 1.5, 0.01, 0.001, "zone", 3, 30)
