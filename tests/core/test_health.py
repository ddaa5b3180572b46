"""Per-kind health rules, table-driven from tests/core/fixtures/health/*.json.

Each fixture holds a live object as the API returns it and the expected verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.health import Health, assess, combine

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "health").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_health_fixture(path: Path) -> None:
    case = _load(path)
    got = assess(case["object"])
    assert got.status == case["expected"]["status"], got
    assert case["expected"]["messageContains"].lower() in got.message.lower(), got


def test_fixtures_cover_every_kind() -> None:
    kinds = {_load(p)["object"]["kind"] for p in FIXTURES}
    assert {"Deployment", "StatefulSet", "DaemonSet", "Job"} <= kinds
    states = {_load(p)["expected"]["status"] for p in FIXTURES}
    assert {"Healthy", "Progressing", "Degraded"} <= states


def test_missing_object() -> None:
    assert assess(None).status == "Missing"


def test_combine_takes_the_worst() -> None:
    got = combine([("Deployment/a", Health("Healthy")),
                   ("Deployment/b", Health("Progressing", "1 of 2")),
                   ("Job/c", Health("Degraded", "failed"))])
    assert got == Health("Degraded", "Job/c: failed")
    assert combine([("ConfigMap/x", Health("Healthy", "exists"))]).status == "Healthy"
    assert combine([]).status == "Missing"
