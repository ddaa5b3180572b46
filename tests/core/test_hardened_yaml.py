"""One hardened YAML parser and templates rendered for every cell at load time.

Each case of fixtures/hardened_yaml.yaml is the base repository with a hostile or
broken file; the load must reject it with exactly the listed ``file:line:col`` errors,
quickly and in little memory (the alias bomb once drove the daemon to 3 GB).
"""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.loader import ParseCache, load_repository
from reconciler.core.render import RenderError, parse_objects
from reconciler.core.validate_render import RenderCache, check_templates
from reconciler.core.yamldoc import MAX_DOC_BYTES, YamlProblem, parse, parse_documents, parse_fast
from tests.core.support import FIXTURES, DictSource, base_files, overlay

CASES: list[dict[str, Any]] = YAML(typ="safe").load(
    (FIXTURES / "hardened_yaml.yaml").read_text())
_POS = re.compile(r"^(?P<pos>[^:]+:\d+:\d+): (?P<frag>.*)$")
EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"
HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"


def _deep_flow(head: str) -> str:
    return head + "data: {k: " + "[" * 100 + "1" + "]" * 100 + "}\n"


def _deep_block(head: str) -> str:
    return head + "data:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(70)) + \
        " " * 72 + "v: 1\n"


def _source(case: dict[str, Any]) -> DictSource:
    src = overlay(case["files"])
    for key, make in (("deep_flow", _deep_flow), ("deep_block", _deep_block)):
        if key in case:
            head = HEAD if "kubernetes" in case[key] else src.files[case[key]].decode()
            src.files[case[key]] = make(head).encode()
    return src


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hostile_or_broken_yaml_is_rejected_at_load(case: dict[str, Any]) -> None:
    src = _source(case)
    tracemalloc.start()
    t = time.perf_counter()
    try:
        result = load_repository(src)
    finally:
        elapsed = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    actual = [str(p) for p in result.errors]
    assert result.desired is None
    for expected in case["errors"]:
        m = _POS.match(expected)
        assert m, expected
        assert any(a.startswith(m["pos"] + ": ") and m["frag"] in a for a in actual), \
            f"{expected!r} not in {actual}"
    assert len(actual) == len(case["errors"]), actual
    assert elapsed < 2.0
    assert peak < 50 * 1024 * 1024


BOMB = (FIXTURES / "hardened_yaml.yaml").read_text().split("|\n", 1)[1].split("  errors:")[0]


@pytest.mark.parametrize("parser", [parse, parse_fast, parse_documents])
@pytest.mark.parametrize(("text", "message"), [
    ("\n".join(line[6:] for line in BOMB.splitlines()), "alias bomb"),
    ("[" * 200_000 + "]" * 200_000, "nested deeper than 64"),  # crashed libyaml's composer
    ("- " * 1000 + "x\n", "nested deeper than 64"),
    ("a: " + "x" * (MAX_DOC_BYTES + 1), "over the limit"),
])
def test_every_entry_point_refuses_bombs_depth_and_size(parser: Any, text: str,
                                                        message: str) -> None:
    t = time.perf_counter()
    with pytest.raises(YamlProblem, match=message):
        parser("f.yaml", text.encode())
    assert time.perf_counter() - t < 2.0


def test_rendered_manifests_go_through_the_hardened_parser() -> None:
    with pytest.raises(RenderError, match="nested deeper than 64"):
        parse_objects("t.yaml", _deep_flow(HEAD))


def test_aliases_within_budget_still_work() -> None:
    docs = parse_documents("t.yaml", HEAD + "data: &d {a: '1'}\n---\n" + HEAD.replace(
        "name: x", "name: y") + "data: {b: '2'}\n")
    assert [d["metadata"]["name"] for d, _ in docs] == ["x", "y"]
    assert [at for _, at in docs] == [(1, 1), (6, 1)]


def test_the_example_repository_renders_and_loads() -> None:
    files = {p.relative_to(EXAMPLE).as_posix(): p.read_bytes()
             for p in sorted(EXAMPLE.rglob("*")) if p.is_file()}
    result = load_repository(DictSource(files))
    assert result.errors == ()
    assert result.desired is not None


def test_similar_cells_render_each_template_once_and_a_version_bump_renders_nothing() -> None:
    files = base_files()
    cache = ParseCache()
    first = load_repository(DictSource(files), cache)
    assert first.desired is not None
    assert cache.renders.renders == 1  # 7 cells, one shape of values
    files["releases/app.yaml"] = files["releases/app.yaml"].replace(b"1.1.0", b"1.2.0")
    assert load_repository(DictSource(files), cache).ok
    assert cache.renders.renders == 1
    fresh = RenderCache()
    assert check_templates(first.desired, fresh) == [] and fresh.renders == 1


def test_a_value_that_changes_the_yaml_is_rendered_for_its_own_cell() -> None:
    files = base_files()
    files["cells/c1.yaml"] = files["cells/c1.yaml"].replace(b"size: small", b"size: 'a: b'")
    files["services/app/kubernetes/deployment.yaml"] = (
        HEAD.replace("name: x", "name: x, namespace: '{{ cell.namespace }}'") +
        "data:\n  SIZE: {{ vars.size }}\n").encode()
    result = load_repository(DictSource(files))
    assert [str(p) for p in result.errors] == [
        "services/app/kubernetes/deployment.yaml:5:10: YAML error: mapping values are not "
        "allowed in this context (rendering for cell c1)"]
