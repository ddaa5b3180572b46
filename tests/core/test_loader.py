"""Loader and validation: every invalid case reports exactly its errors, with positions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.loader import MAX_FILE_BYTES, ParseCache, load_repository
from tests.core.support import FIXTURES, DictSource, base_files, overlay

CASES: list[dict[str, Any]] = YAML(typ="safe").load((FIXTURES / "invalid.yaml").read_text())
_POS = re.compile(r"^(?P<pos>[^:]+:\d+:\d+): (?P<frag>.*)$")


def _source(case: dict[str, Any]) -> DictSource:
    src = overlay(case["files"])
    if "huge" in case:
        src.files[case["huge"]] = b"#" * (MAX_FILE_BYTES + 1)
    return src


def _matches(expected: str, actual: str) -> bool:
    m = _POS.match(expected)
    assert m, f"bad expectation {expected!r}"
    pos, frag = m["pos"], m["frag"]
    return actual.startswith(pos + ": ") and frag in actual


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_invalid_repository_reports_every_error(case: dict[str, Any]) -> None:
    result = load_repository(_source(case))
    actual = [str(p) for p in result.errors]
    assert result.desired is None
    for expected in case["errors"]:
        assert any(_matches(expected, a) for a in actual), f"{expected!r} not in {actual}"
    assert len(actual) == len(case["errors"]), actual


def test_base_repository_is_valid() -> None:
    result = load_repository(DictSource(base_files()))
    assert result.errors == ()
    assert result.desired is not None
    assert sorted(result.desired.cells) == ["c1", "x1", "x2", "z1", "z2", "z3", "z4"]
    assert [w.name for w in result.desired.fleet.waves] == ["canary", "zone", "rest"]
    assert result.desired.fleet.waves[1].bake_seconds == 1800
    assert result.desired.migrations[0].required_by.contains(
        result.desired.releases["app"].entries[0].version)
    assert "migrations/app/m1-expand.sql" in result.desired.files


def test_parse_cache_reparses_only_changed_files() -> None:
    cache = ParseCache()
    files = base_files()
    first = load_repository(DictSource(files), cache)
    assert first.parsed == 11
    again = load_repository(DictSource(files), cache)
    assert again.parsed == 0
    files["cells/z1.yaml"] = files["cells/z1.yaml"].replace(b"weight: 5", b"weight: 6")
    changed = load_repository(DictSource(files), cache)
    assert changed.parsed == 1
    assert changed.desired is not None and changed.desired.cells["z1"].weight == 6.0


def test_errors_are_sorted_and_formatted() -> None:
    result = load_repository(overlay({"cells/c1.yaml": "kind: [", "cells/z1.yaml": "- 1"}))
    texts = [str(p) for p in result.errors]
    assert texts == sorted(texts)
    assert all(re.match(r"^[\w/.-]+:\d+:\d+: .+", t) for t in texts)
