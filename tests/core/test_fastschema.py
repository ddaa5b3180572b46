"""The compiled "valid?" of the packaged schemas agrees with jsonschema: on every model
document of the example and the fixtures, every live snapshot and plan, and thousands of
seeded mutations of them (a key dropped or added, a value swapped for another type)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core import schema
from reconciler.core.fastschema import compiled, equal
from reconciler.core.loader import classify, load_repository
from reconciler.core.planner import plan
from reconciler.core.settled import settled_snapshot
from reconciler.core.yamldoc import parse_fast
from tests.core.support import FIXTURES, DictSource, base_files

ROOT = Path(__file__).resolve().parents[2]
VALUES: tuple[Any, ...] = (None, True, False, 0, 1, -1, 1.5, 2.0, 70000, "", "x", "UPPER",
                           "a b", "1.2.3", ">=1.0.0", "2026-11-22T10:00:00Z", "soon", "10m",
                           [], ["x"], {}, {"k": "v"})


def _model_docs() -> Iterator[tuple[str, Any]]:
    trees = [ROOT / "example-repo", FIXTURES / "base"]
    for tree in trees:
        for p in sorted(tree.rglob("*.y*ml")):
            kind = classify(p.relative_to(tree).as_posix())
            if kind is not None:
                yield kind[1], parse_fast(str(p), p.read_bytes())
    for case in YAML(typ="safe").load((FIXTURES / "invalid.yaml").read_text()):
        for path, text in (case.get("files") or {}).items():
            kind = classify(path)
            if kind is None or not text:
                continue
            try:
                yield kind[1], parse_fast(path, text.encode())
            except Exception:
                continue


def _json_docs() -> Iterator[tuple[str, Any]]:
    for p in sorted((ROOT / "examples").glob("live-*.json")):
        yield "live", json.loads(p.read_text())
    desired = load_repository(DictSource(base_files())).desired
    assert desired is not None
    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    yield "plan", plan(desired, settled_snapshot(desired, now), now).to_json()
    from reconciler.core.live import LiveSnapshot

    yield "plan", plan(desired, LiveSnapshot(), now).to_json()


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*at, i))


def _mutants(doc: Any, rng: random.Random, n: int) -> Iterator[Any]:
    paths = list(_paths(doc))
    for _ in range(n):
        out = copy.deepcopy(doc)
        at = rng.choice(paths)
        if not at:
            yield rng.choice(VALUES)
            continue
        parent = out
        for k in at[:-1]:
            parent = parent[k]
        last = at[-1]
        move = rng.random()
        if move < 0.2 and isinstance(parent, dict):
            del parent[last]
        elif move < 0.3 and isinstance(parent, dict):
            parent[rng.choice(["extra", "Name", "spec", "x-y"])] = rng.choice(VALUES)
        else:
            parent[last] = copy.deepcopy(rng.choice(VALUES))
        yield out


DOCS = list(_model_docs()) + list(_json_docs())


def test_every_packaged_schema_compiles() -> None:
    for name in ("fleet", "cell", "service", "release", "migration", "live", "plan"):
        assert schema.fast(name) is not None, name


@pytest.mark.parametrize("seed", range(4))
def test_the_compiled_check_agrees_with_jsonschema(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for name, doc in DOCS:
        fast = schema.fast(name)
        assert fast is not None
        full = schema.validator(name)
        for variant in [doc, *_mutants(doc, rng, 40)]:
            assert fast(variant) == full.is_valid(variant), (name, json.dumps(variant)[:400])
            checked += 1
    assert checked > 1000


def test_unknown_keywords_are_not_compiled() -> None:
    assert compiled({"type": "object", "patternProperties": {"^x": {}}}, schema.FORMATS) is None
    assert compiled({"$ref": "#/$defs/a"}, schema.FORMATS) is None
    assert compiled({"type": "whatever"}, schema.FORMATS) is None


@pytest.mark.parametrize(("a", "b", "same"), [
    (1, 1.0, True), (True, 1, False), (False, 0, False), ("1", 1, False), ([1], [1.0], True),
    ({"a": True}, {"a": 1}, False), (None, None, True), ([], {}, False)])
def test_equality_is_jsonschema_s(a: Any, b: Any, same: bool) -> None:
    assert equal(a, b) is same
