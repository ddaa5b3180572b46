"""Status text read back from the branch (anyone who can push controls it) goes through
the YAML limits before the round-trip loader: an alias bomb or deep nesting there is
replaced by a fresh document, quickly and without memory blow-up; comments survive in
ordinary files."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from reconciler.core.statusyaml import render

BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize("existing", [BOMB.encode(), b"x: " + b"[" * 100_000 + b"\n",
                                      b"\xff\xfe not text"], ids=["alias-bomb", "deep", "binary"])
def test_hostile_status_text_is_replaced(existing: bytes) -> None:
    tracemalloc.start()
    start = time.monotonic()
    out = render(existing, {"cell": "c1", "phase": "done"})
    took = time.monotonic() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out == b"cell: c1\nphase: done\n"
    assert took < 2 and peak < 50 * 1024 * 1024, (took, peak)


def test_comments_survive_in_an_ordinary_file() -> None:
    old = b"# kept by hand\ncell: c1\nphase: baking  # why\n"
    out = render(old, {"cell": "c1", "phase": "done"}).decode()
    assert out.startswith("# kept by hand\ncell: c1\nphase: done ") and out.endswith("# why\n")
