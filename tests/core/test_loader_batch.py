"""The loader hands the YAML of every file it has not parsed yet to one ``parse_many``
call (so a caller may spread it over processes) and the outcome does not depend on how
that call parses; the resolver's memo answers as the safe resolver does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

from reconciler.core import yamldoc
from reconciler.core.loader import (
    MAX_FILE_BYTES,
    LoadResult,
    ParseCache,
    TextOutcome,
    classify,
    load_repository,
    parse_text,
    parse_texts,
)
from reconciler.core.yamldoc import parse_fast
from tests.core.support import FIXTURES, DictSource, overlay

CASES: list[dict[str, Any]] = YAML(typ="safe").load((FIXTURES / "invalid.yaml").read_text())


class Recording:
    """A ``ParseTexts`` that parses one text at a time, last first, and remembers what
    it was given."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[tuple[str, bytes]]) -> list[TextOutcome]:
        self.calls.append([path for path, _ in texts])
        return [parse_texts([t])[0] for t in reversed(texts)][::-1]


def _same(a: LoadResult, b: LoadResult) -> None:
    assert a.errors == b.errors
    assert a.warnings == b.warnings
    assert a.parsed == b.parsed
    assert a.desired == b.desired


def _source(case: dict[str, Any]) -> DictSource:
    src = overlay(case["files"])
    if "huge" in case:
        src.files[case["huge"]] = b"#" * (MAX_FILE_BYTES + 1)
    return src


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_any_parse_many_loads_the_same(case: dict[str, Any]) -> None:
    parse_many = Recording()
    _same(load_repository(_source(case), ParseCache(), parse_many),
          load_repository(_source(case)))
    files = _source(case).files
    readable = sorted(p for p, data in files.items() if classify(p) is not None
                      and p != case.get("huge") and not data.startswith(b"symlink:"))
    assert len(parse_many.calls) <= 1
    assert (parse_many.calls[0] if parse_many.calls else []) == readable  # in path order


def test_only_what_the_cache_lacks_is_parsed_again() -> None:
    cache, parse_many = ParseCache(), Recording()
    first = load_repository(overlay({}), cache, parse_many)
    assert first.ok and first.parsed == len(parse_many.calls[0]) > 1
    release = next(p for p in overlay({}).files if p.startswith("releases/"))
    changed = overlay({release: overlay({}).files[release].decode() + "# a comment\n"})
    second = load_repository(changed, cache, parse_many)
    assert second.ok and second.parsed == 1
    assert parse_many.calls[1] == [release]
    third = load_repository(changed, cache, parse_many)
    assert third.parsed == 0 and len(parse_many.calls) == 2  # nothing to parse: no call


def test_a_yaml_error_is_the_file_s_problem() -> None:
    src = overlay({"cells/broken.yaml": "a: [1, 2\n"})
    result = load_repository(src, ParseCache(), Recording())
    assert not result.ok
    assert [p.path for p in result.errors] == ["cells/broken.yaml"]
    assert result.errors == load_repository(src).errors


SCALARS = ["yes", "no", "on", "~", "null", "", "1", "0x1f", "0o17", "1_000", "1.5e3", ".inf",
           "-.NaN", "2026-01-01", "2026-01-01T10:00:00Z", "12:30:45", "<<", "=", "x" * 64,
           "1" * 65, "2026-01-01 " + "y" * 60, "true", "True", "TRUE", "tRue", "0b101"]


@pytest.mark.parametrize("style", ["{}", "'{}'", '"{}"'])
def test_the_resolver_memo_answers_as_the_safe_resolver(style: str) -> None:
    for _ in range(2):  # the second time from the memo
        for s in SCALARS:
            text = f"k: {style.format(s)}\nl: [{style.format(s)}]\n"
            if style != "{}" or s not in ("", "<<", "="):
                got, want = parse_fast("t.yaml", text.encode()), yaml.safe_load(text)
                assert repr(got) == repr(want), (s, got, want)  # nan: compare the text


def test_the_resolver_memo_stays_bounded() -> None:
    text = "\n".join(f"k{i}: v{i}" for i in range(yamldoc._MEMO_ENTRIES + 10)).encode()
    doc = parse_fast("t.yaml", text)
    assert len(doc) == yamldoc._MEMO_ENTRIES + 10
    assert len(yamldoc._RESOLVED) <= yamldoc._MEMO_ENTRIES


def test_sources_are_read_in_path_order() -> None:
    seen: list[str] = []

    class Reading(DictSource):
        def read(self, path: str) -> bytes:
            seen.append(path)
            return super().read(path)

    src = overlay({})
    load_repository(Reading(src.files), ParseCache(), Recording())
    assert seen[:len([p for p in src.files if classify(p)])] == sorted(
        p for p in src.files if classify(p))


def test_the_quick_verdict_is_the_schema_s() -> None:
    files = overlay({}).files
    cell = next(p for p in sorted(files) if p.startswith("cells/"))
    assert parse_text(cell, files[cell])[2] is True
    bad = files[cell].replace(b"weight: 1", b"weight: lots")
    assert parse_text(cell, bad)[2] is False
    assert parse_text("notes/readme.yaml", b"a: 1\n") == ({"a": 1}, None, False)  # no kind
    doc, problem, valid = parse_text(cell, b"a: [\n")
    assert doc is None and problem is not None and valid is False


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_no_verdict_means_the_schema_decides(case: dict[str, Any]) -> None:
    """A ``parse_many`` that checks no schema (every verdict False) loads the same."""
    def unjudged(texts: Sequence[tuple[str, bytes]]) -> list[TextOutcome]:
        return [(doc, problem, False) for doc, problem, _ in parse_texts(texts)]

    _same(load_repository(_source(case), ParseCache(), unjudged),
          load_repository(_source(case)))
