"""The fast YAML constructor builds exactly what PyYAML's safe loader builds
(fixtures/yaml_values.yaml, the example repository, the fixtures), and still refuses
duplicate keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from reconciler.core.yamldoc import YamlProblem, parse_documents, parse_fast
from tests.core.support import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
TEXTS: list[str] = YAML(typ="safe").load((FIXTURES / "yaml_values.yaml").read_text())
FILES = sorted([*(ROOT / "example-repo").rglob("*.yaml"), *FIXTURES.rglob("*.yaml")])


def _safe(text: str) -> object:
    return yaml.load(text, Loader=yaml.SafeLoader)  # the pure-Python reference


@pytest.mark.parametrize("text", TEXTS, ids=[f"text-{i}" for i in range(len(TEXTS))])
def test_values_are_the_safe_loader_s(text: str) -> None:
    assert parse_fast("t.yaml", text.encode()) == _safe(text)


def test_every_yaml_file_of_the_repository_and_fixtures() -> None:
    for path in FILES:
        text = path.read_text()
        try:
            expected = list(yaml.load_all(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError:
            continue
        got = [doc for doc, _ in parse_documents(str(path), text)]
        assert got == [d for d in expected if d is not None], path


def test_aliases_share_and_merge_keys_merge() -> None:
    doc = parse_fast("t.yaml", TEXTS[1].encode())
    assert doc["large"] == {"cpu": 4, "mem": "2Gi"}
    assert doc["again"] == ["a", "b"]


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "x:\n  - {k: 1, k: 2}\n",
                                  "m: {? [1]: x}\n"])
def test_duplicate_and_unhashable_keys_are_refused(text: str) -> None:
    with pytest.raises(YamlProblem):
        parse_fast("t.yaml", text.encode())
