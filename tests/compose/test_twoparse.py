"""Parsing in two processes gives exactly what parsing in one gives — values, refusals and
whole loads — and a child that fails or sends anything but plain values is not believed:
its share is parsed again here."""

from __future__ import annotations

import io
import os
import pickle
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.compose import twoparse
from reconciler.core.loader import MAX_FILE_BYTES, ParseCache, load_repository, parse_texts
from tests.core.support import FIXTURES, overlay

CASES: list[dict[str, Any]] = YAML(typ="safe").load((FIXTURES / "invalid.yaml").read_text())

TEXTS = [
    "a: 1\nb: [x, 'y', \"z\"]\nc: {d: null, e: ~, f: yes, g: 1.5, h: .nan}\n",
    "when: 2026-01-01T10:00:00+02:00\nday: 2026-01-01\nraw: !!binary aGVsbG8=\n",
    "s: !!set {a, b}\npairs: !!pairs [a: 1, b: 2]\nomap: !!omap [a: 1]\n",
    "base: &b {cpu: 1, mem: 1Gi}\nlarge: {<<: *b, cpu: 4}\nagain: *b\n",
    "a: 1\na: 2\n",                           # a duplicate key
    "a: [1, 2\n",                             # a syntax error
    "---\na: 1\n---\nb: 2\n",                 # two documents
    "[" * 100 + "]" * 100 + "\n",             # nested too deep
    'a: &a ["x","x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n'
    'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n',  # a bomb
]
CELL = (FIXTURES / "base" / "cells" / "c1.yaml").read_text()
BATCH = [(f"f{i:03d}.yaml", TEXTS[i % len(TEXTS)].encode()) for i in range(60)] + [
    ("latin1.yaml", "a: \xe9\n".encode("latin-1")), ("empty.yaml", b""),
    ("cells/c1.yaml", CELL.encode()),                                      # valid
    ("cells/c2.yaml", CELL.replace("weight: ", "weight: x").encode())]   # schema-invalid


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every batch goes to a child (counted by how many of its outcomes were read back)."""
    if threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: no fork")
    monkeypatch.setattr(twoparse, "MIN_TEXTS", 1)
    monkeypatch.setattr(twoparse, "_cpus", lambda: 2)
    read_back: list[int] = []
    original = twoparse._read_back

    def counting(data: bytes, n: int) -> Any:
        out = original(data, n)
        read_back.append(n if out is not None else -1)
        return out

    monkeypatch.setattr(twoparse, "_read_back", counting)
    yield read_back


def _canon(value: Any) -> Any:
    """The value with each set as its sorted members: a set's order is not part of its
    value, and a set rebuilt in another process may iterate in another order."""
    if isinstance(value, (set, frozenset)):
        return ("set", sorted(value, key=repr))
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_canon(v) for v in value)
    return value


def _reprs(parsed: Iterable[tuple[Any, Any, bool]]) -> list[str]:
    return [repr(_canon(x)) for x in parsed]  # nan != nan: compare the texts


def test_values_and_refusals_are_one_process_s(forking: list[int]) -> None:
    got = list(twoparse.parse_in_two(BATCH))
    assert forking == [int(len(BATCH) * twoparse.CHILD_SHARE)]
    assert _reprs(got) == _reprs(parse_texts(BATCH))
    assert any(p is not None for _, p, _ in got) and any(p is None for _, p, _ in got)
    assert [valid for _, _, valid in got[-2:]] == [True, False]  # the child's verdicts
    shared = got[3][0]
    assert shared["again"] is shared["base"]  # an alias is still one shared value


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_invalid_repository_loads_the_same(case: dict[str, Any],
                                                 forking: list[int]) -> None:
    src = overlay(case["files"])
    if "huge" in case:
        src.files[case["huge"]] = b"#" * (MAX_FILE_BYTES + 1)
    two = load_repository(src, ParseCache(), twoparse.parse_in_two)
    one = load_repository(src)
    assert (two.errors, two.warnings, two.desired) == (one.errors, one.warnings, one.desired)


def test_a_valid_repository_loads_the_same(forking: list[int]) -> None:
    two = load_repository(overlay({}), ParseCache(), twoparse.parse_in_two)
    assert two.ok and forking and forking[0] > 0
    assert two.desired == load_repository(overlay({})).desired


def _child_that(behaviour: str) -> Any:
    def child(texts: Sequence[tuple[str, bytes]], out: int) -> None:
        try:
            with os.fdopen(out, "wb") as f:
                if behaviour == "garbage":
                    f.write(b"not a pickle")
                elif behaviour == "code":  # a pickle that would call a function
                    f.write(pickle.dumps([(os.getcwd, None, True)] * len(texts)))
                elif behaviour == "short":
                    f.write(pickle.dumps([(1, None, True)]))
                elif behaviour == "verdict":
                    f.write(pickle.dumps([(1, None, "yes")] * len(texts)))
        finally:
            os._exit(3 if behaviour == "fails" else 0)
    return child


@pytest.mark.parametrize("behaviour", ["garbage", "code", "short", "verdict", "fails"])
def test_a_child_not_believed_is_parsed_again(behaviour: str, forking: list[int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twoparse, "_child", _child_that(behaviour))
    assert _reprs(twoparse.parse_in_two(BATCH)) == _reprs(parse_texts(BATCH))
    assert forking == ([] if behaviour == "fails" else [-1])


def test_only_plain_values_are_read_back() -> None:
    with pytest.raises(pickle.UnpicklingError):
        twoparse._ValuesOnly(io.BytesIO(pickle.dumps(os.system))).load()
    assert twoparse._read_back(pickle.dumps([(os.system, None, True)]), 1) is None


def test_small_batches_and_threads_stay_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise AssertionError("forked")

    monkeypatch.setattr(os, "fork", no_fork)
    assert _reprs(twoparse.parse_in_two(BATCH)) == _reprs(parse_texts(BATCH))  # < MIN_TEXTS
    monkeypatch.setattr(twoparse, "MIN_TEXTS", 1)
    monkeypatch.setattr(twoparse, "_cpus", lambda: 1)
    assert _reprs(twoparse.parse_in_two(BATCH)) == _reprs(parse_texts(BATCH))  # one CPU
    monkeypatch.setattr(twoparse, "_cpus", lambda: 2)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert _reprs(twoparse.parse_in_two(BATCH)) == _reprs(parse_texts(BATCH))  # a thread
    finally:
        stop.set()
        t.join()


def test_an_abandoned_parse_takes_its_child_along(forking: list[int]) -> None:
    parsing = twoparse.parse_in_two(BATCH)
    first = next(parsing)  # forked; this process parsed one text of its share
    assert first == parse_texts(BATCH[:1])[0]
    parsing.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left behind, not even a zombie
