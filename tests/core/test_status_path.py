"""Fleet ``spec.status.path``: every good path loads, every bad one is one positioned error
(the Fleet builder's, and the schema's pattern agrees), and status documents go there."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.kinds import Built, fleet
from reconciler.core.loader import load_repository
from reconciler.core.model import StatusConfig
from reconciler.core.statusdocs import (
    DEFAULT_STATUS_DIR,
    status_documents,
    status_path_problem,
    status_target,
)
from reconciler.core.yamldoc import parse
from tests.core.support import FIXTURES, overlay

TABLE: dict[str, Any] = YAML(typ="safe").load((FIXTURES / "status_paths.yaml").read_text())
GOOD: list[str] = TABLE["good"]
BAD: list[dict[str, str]] = TABLE["bad"]
OPERATOR = ("ops", "ops@example.com")


def _fleet(path: str) -> str:
    text: str = TABLE["fleet"]
    return text.replace("{path}", json.dumps(path))


def _build(path: str) -> Built:
    return fleet.build("reconciler.yaml", parse("reconciler.yaml", _fleet(path).encode()))


@pytest.mark.parametrize("path", GOOD)
def test_good_path_loads(path: str) -> None:
    assert status_path_problem(path) == ""
    built = _build(path)
    assert built.problems == ()
    result = load_repository(overlay({"reconciler.yaml": _fleet(path)}))
    assert result.errors == ()
    assert result.desired is not None
    assert result.desired.fleet.status == StatusConfig(path, "Release Bot",
                                                       "release-bot@example.com")


@pytest.mark.parametrize("case", BAD, ids=[repr(c["path"]) for c in BAD])
def test_bad_path_is_one_positioned_error(case: dict[str, str]) -> None:
    where, _, fragment = case["error"].partition(": ")
    problems = [str(p) for p in _build(case["path"]).problems]
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{where}: ") and fragment in problems[0], problems
    assert fragment in status_path_problem(case["path"])


@pytest.mark.parametrize("case", BAD, ids=[repr(c["path"]) for c in BAD])
def test_loader_rejects_bad_path_at_its_position(case: dict[str, str]) -> None:
    where = case["error"].partition(": ")[0]
    result = load_repository(overlay({"reconciler.yaml": _fleet(case["path"])}))
    assert result.desired is None
    errors = [str(p) for p in result.errors]
    assert errors, "a bad status path must reject the revision"
    assert all(e.startswith(f"{where}: spec.status.path: ") for e in errors), errors


def test_default_path_and_author_left_to_the_operator() -> None:
    text = _fleet("x").replace('    path: "x"\n', "").replace(
        "    author: {name: Release Bot, email: release-bot@example.com}\n", "")
    text = text.replace("  status:\n", "")
    result = load_repository(overlay({"reconciler.yaml": text}))
    assert result.desired is not None
    status = result.desired.fleet.status
    assert status == StatusConfig(DEFAULT_STATUS_DIR, "", "")
    target = status_target(status, OPERATOR)
    assert (target.directory, target.author, target.emails) == (
        "status", OPERATOR, frozenset({OPERATOR[1]}))


def test_target_takes_the_fleet_author_and_keeps_the_operator_as_ours() -> None:
    target = status_target(StatusConfig("ops/status", "Bot", "bot@example.com"), OPERATOR)
    assert target.directory == "ops/status"
    assert target.author == ("Bot", "bot@example.com")
    assert target.emails == {"bot@example.com", OPERATOR[1]}
    assert target.holds("ops/status/desired.yaml")
    assert not target.holds("ops/status.yaml") and not target.holds("status/desired.yaml")
    half = status_target(StatusConfig("ops/status", "Bot", ""), OPERATOR)
    assert half.author == ("Bot", OPERATOR[1])
    assert status_target(None, OPERATOR).directory == DEFAULT_STATUS_DIR


def test_status_documents_go_under_the_directory() -> None:
    docs = status_documents(None, None, {}, "r1", "r0", ["bad"], "ops/status")
    assert list(docs) == ["ops/status/desired.yaml"]
    assert list(status_documents(None, None, {}, "r1", "r0", [])) == ["status/desired.yaml"]
    with pytest.raises(ValueError, match="overlaps cells/"):
        status_documents(None, None, {}, "r1", "r0", [], "cells")
