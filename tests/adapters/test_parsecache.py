"""The parse cache on disk gives exactly what parsing gives — values of the same types,
refusals and verdicts, whole loads — keeps only what JSON holds exactly, and a cache file
that is damaged, from another parser or too large is not believed."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.fs import parsecache
from reconciler.adapters.fs.parsecache import DiskParseCache, json_safe
from reconciler.adapters.fs.source import DirectorySource
from reconciler.compose.oneshot import load_directory
from reconciler.core.loader import ParseCache, TextOutcome, load_repository, parse_texts
from tests.compose.test_twoparse import BATCH
from tests.core.support import FIXTURES

#: (text, kept on disk?) — what JSON gives back exactly is kept, nothing else.
VALUES = [
    ("a: 1\nb: [x, 'y', \"z\"]\nc: {d: null, f: yes, g: 1.5, h: -0.0}\n", True),
    ("big: 123456789012345678901234567890\nneg: -7\nexp: 1.0e+300\n", True),
    ("s: 'caf\u00e9 \u2028 \\\\ \"q\"'\nu: \"\\U0001F600 \\t\"\n", True),
    ("h: .nan\n", False),
    ("i: .inf\n", False),
    ("when: 2026-01-01\n", False),
    ("raw: !!binary aGVsbG8=\n", False),
    ("s: !!set {a, b}\n", False),
    ("1: integer key\n", False),
    ("[1, 2\n", False),  # a syntax error: the refusal is never kept
]


def typed(value: Any) -> Any:
    """``value`` with every type spelled out (``1 == 1.0 == True`` must not hide a change)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def same(a: Sequence[TextOutcome], b: Sequence[TextOutcome]) -> None:
    assert [(typed(d), p, v) for d, p, v in a] == [(typed(d), p, v) for d, p, v in b]


def run(cache: DiskParseCache, texts: list[tuple[str, bytes]]) -> list[TextOutcome]:
    return list(cache.wrap(parse_texts)(texts))


@pytest.mark.parametrize(("text", "kept"), VALUES)
def test_each_value_is_kept_only_when_json_gives_it_back_exactly(
        tmp_path: Path, text: str, kept: bool) -> None:
    texts = [("x.yaml", text.encode())]
    first = DiskParseCache(tmp_path, "repo")
    same(run(first, texts), parse_texts(texts))
    again = DiskParseCache(tmp_path, "repo")
    same(run(again, texts), parse_texts(texts))
    assert (again.hits, again.misses) == ((1, 0) if kept else (0, 1))


def test_a_batch_of_every_kind_of_text_is_the_same_from_the_cache(tmp_path: Path) -> None:
    expected = parse_texts(BATCH)
    first = DiskParseCache(tmp_path, "repo")
    same(run(first, BATCH), expected)
    assert (first.hits, first.misses) == (0, len(BATCH))
    second = DiskParseCache(tmp_path, "repo")
    same(run(second, BATCH), expected)
    safe = sum(1 for d, p, _ in expected if p is None and json_safe(d))
    assert 0 < safe < len(BATCH) and (second.hits, second.misses) == (safe, len(BATCH) - safe)


def test_the_verdict_is_kept_with_the_value(tmp_path: Path) -> None:
    cell = (FIXTURES / "base" / "cells" / "c1.yaml").read_bytes()
    texts = [("cells/c1.yaml", cell), ("cells/c2.yaml", cell.replace(b"weight: ", b"weight: x")),
             ("notes/c1.yaml", cell)]  # the same bytes at a path of no kind: no verdict
    expected = parse_texts(texts)
    assert [v for _, _, v in expected] == [True, False, False]
    run(DiskParseCache(tmp_path, "repo"), texts)
    again = DiskParseCache(tmp_path, "repo")
    same(run(again, texts), expected)
    assert again.hits == 3


def test_a_change_parses_that_file_alone_and_the_file_keeps_only_this_load(
        tmp_path: Path) -> None:
    texts = [(f"f{i}.yaml", f"n: {i}\n".encode()) for i in range(5)]
    run(DiskParseCache(tmp_path, "repo"), texts)
    changed = [*texts[:2], ("f2.yaml", b"n: changed\n"), *texts[3:4]]  # f4 removed
    cache = DiskParseCache(tmp_path, "repo")
    same(run(cache, changed), parse_texts(changed))
    assert (cache.hits, cache.misses) == (3, 1)
    lines = cache.file.read_text().split("\n")
    assert len(lines) == 1 + 4
    assert cache.file.stat().st_mode & 0o777 == 0o600


def test_repositories_are_kept_apart_and_bounded(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsecache, "MAX_FILES", 3)
    texts = [("a.yaml", b"a: 1\n")]
    for i in range(5):
        run(DiskParseCache(tmp_path, f"repo-{i}"), texts)
        os.utime(DiskParseCache(tmp_path, f"repo-{i}").file, (1000 + i, 1000 + i))
    left = sorted(p.name for p in tmp_path.glob("*.txt"))
    assert left == sorted(DiskParseCache(tmp_path, f"repo-{i}").file.name for i in (2, 3, 4))
    other = DiskParseCache(tmp_path, "repo-9")
    run(other, texts)
    assert other.misses == 1  # another repository's file is not read


@pytest.mark.parametrize("damage", ["garbage", "header", "lines", "values", "too large",
                                    "directory"])
def test_a_damaged_cache_is_not_believed(tmp_path: Path, damage: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [("a.yaml", b"a: 1\n"), ("b.yaml", b"b: [1, 2]\n")]
    cache = DiskParseCache(tmp_path, "repo")
    run(cache, texts)
    body = cache.file.read_text()
    if damage == "garbage":
        cache.file.write_bytes(b"\xff\xfe\x00 not a cache")
    elif damage == "header":
        cache.file.write_text(body.replace("reconciler-parse-cache 1", "reconciler-parse-cache 0"))
    elif damage == "lines":
        cache.file.write_text(body + "\nshort {}\n" + "x" * 64)
    elif damage == "values":  # a kept value replaced by what is not [verdict, value]
        head, *rest = body.split("\n")
        cache.file.write_text("\n".join([head, *(r.split(" ")[0] + ' {"a":2}' for r in rest)]))
    elif damage == "too large":
        monkeypatch.setattr(parsecache, "MAX_FILE", 10)
    else:
        cache.file.unlink()
        cache.file.mkdir()
    again = DiskParseCache(tmp_path, "repo")
    same(run(again, texts), parse_texts(texts))
    expected_hits = {"lines": 2}.get(damage, 0)
    assert again.hits == expected_hits


def test_another_parser_or_schema_starts_afresh(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [("a.yaml", b"a: 1\n")]
    run(DiskParseCache(tmp_path, "repo"), texts)
    monkeypatch.setattr(parsecache, "_parser_digest", lambda: "another parser")
    fresh = DiskParseCache(tmp_path, "repo")
    run(fresh, texts)
    assert (fresh.hits, fresh.misses) == (0, 1)


def test_an_unwritable_cache_only_costs_the_parse(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = DiskParseCache(blocker / "parse", "repo")
    texts = [("a.yaml", b"a: 1\n")]
    same(run(cache, texts), parse_texts(texts))


def test_whole_loads_from_the_cache_are_the_same(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`validate`'s load, cold and then from the cache: the same desired state, and an
    error made after the cache was filled is reported at its position."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "base", repo)
    monkeypatch.setenv("RECONCILER_PARSE_CACHE", str(tmp_path / "parse"))
    cold = load_directory(repo)
    warm = load_directory(repo)
    plain = load_repository(DirectorySource(repo), ParseCache())
    assert cold.ok and cold.desired == warm.desired == plain.desired
    assert list((tmp_path / "parse").glob("*.txt"))
    cell = repo / "cells" / "c1.yaml"
    cell.write_text(cell.read_text().replace("weight: ", "weight: x"))
    bad = load_directory(repo)
    expected = load_repository(DirectorySource(repo), ParseCache())
    assert not bad.ok and bad.errors == expected.errors
    assert any(p.path == "cells/c1.yaml" and p.line > 1 for p in bad.errors)


def test_json_safe_refuses_what_json_changes() -> None:
    assert json_safe({"a": [1, 1.5, "x", None, True, {"b": []}]})
    for value in ({1: "a"}, (1, 2), {"a": float("nan")}, b"x", {"a": {1, 2}},
                  json.loads("[" * 300 + "]" * 300)):
        assert not json_safe(value)
