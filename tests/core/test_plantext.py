"""The plan's text form, table-driven (fixtures/plantext/cases.yaml over the planner's
fixtures): a rollback shown once on its cell's line, refused and held cells saying why,
the symbols explained, counts in the singular when one."""

from __future__ import annotations

from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.plantext import LEGEND, render
from reconciler.core.words import plural
from tests.core.support import FIXTURES
from tests.core.test_planner import _case, run_case

CASES: list[dict[str, Any]] = YAML(typ="safe").load(
    (FIXTURES / "plantext" / "cases.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_plan_text(case: dict[str, Any]) -> None:
    p, _ = run_case(_case(FIXTURES / "plans" / f"{case['case']}.yaml"))
    text = render(p)
    lines = [line.rstrip() for line in text.splitlines()]
    for line in case.get("lines") or []:
        assert line in lines, f"{case['why']}: {line!r} not in\n{text}"
    for fragment in case.get("fragments") or []:
        assert fragment in text, f"{case['why']}: {fragment!r} not in\n{text}"
    for fragment in case.get("absent") or []:
        assert fragment not in text, f"{case['why']}: {fragment!r} in\n{text}"


def test_every_symbol_used_is_in_the_legend() -> None:
    from reconciler.core.plantext import SYMBOL

    for symbol in (*SYMBOL.values(), "◷"):
        assert f" {symbol} " in f" {LEGEND} ", symbol


@pytest.mark.parametrize(("n", "text"), [(0, "0 steps"), (1, "1 step"), (2, "2 steps")])
def test_plural(n: int, text: str) -> None:
    assert plural(n, "step") == text
