"""A tool's version is asked once per binary file: remembered in the render cache while
the file is the same file, asked again when it changes, and never believed from a
damaged cache file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconciler.adapters import render


def asking(answers: list[str]) -> tuple[list[int], object]:
    calls: list[int] = []

    def ask() -> str:
        calls.append(1)
        return answers[len(calls) - 1]
    return calls, ask


def test_a_version_is_asked_once_per_file(tmp_path: Path) -> None:
    binary = tmp_path / "kubectl"
    binary.write_text("#!/bin/sh\n")
    cache = tmp_path / "cache"
    calls, ask = asking(["v1", "v2", "v3"])
    assert render._remembered(cache, binary, "kubectl", ask) == "v1"  # type: ignore[arg-type]
    assert render._remembered(cache, binary, "kubectl", ask) == "v1"  # type: ignore[arg-type]
    assert len(calls) == 1
    binary.write_text("#!/bin/sh\n# another build\n")  # the file changed: asked again
    os.utime(binary, (1, 1))
    assert render._remembered(cache, binary, "kubectl", ask) == "v2"  # type: ignore[arg-type]
    other = tmp_path / "helm"
    other.write_text("#!/bin/sh\n")
    assert render._remembered(cache, other, "helm", ask) == "v3"  # type: ignore[arg-type]
    assert len(calls) == 3


def test_no_cache_no_file_or_a_damaged_cache_asks(tmp_path: Path) -> None:
    binary = tmp_path / "kubectl"
    binary.write_text("x")
    calls, ask = asking(["v1", "v2", "v3", "", "v5"])
    assert render._remembered(None, binary, "kubectl", ask) == "v1"  # type: ignore[arg-type]
    assert render._remembered(tmp_path, tmp_path / "gone", "k", ask) == "v2"  # type: ignore[arg-type]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "tool-versions.json").write_text("[not, json")
    assert render._remembered(tmp_path / "c", binary, "k", ask) == "v3"  # type: ignore[arg-type]
    # a tool that cannot say its version is not remembered as ''
    assert render._remembered(tmp_path / "d", binary, "k", ask) == ""  # type: ignore[arg-type]
    assert render._remembered(tmp_path / "d", binary, "k", ask) == "v5"  # type: ignore[arg-type]
    assert len(calls) == 5


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for i in range(render._MAX_VERSIONS + 5):
        binary = tmp_path / f"tool-{i}"
        binary.write_text(str(i))
        render._remembered(cache, binary, "t", lambda i=i: f"v{i}")  # type: ignore[misc]
    kept = json.loads((cache / "tool-versions.json").read_text())
    assert len(kept) == render._MAX_VERSIONS
    assert f"v{render._MAX_VERSIONS + 4}" in kept.values() and "v0" not in kept.values()
