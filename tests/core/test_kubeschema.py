"""validate against the Kubernetes API schema, offline, table-driven
(fixtures/kubeschema.yaml): template typos, missing variables and schema-invalid objects
each fail with the template's file:line:col; custom resources and values known only at
apply time pass."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core import kubeschema
from reconciler.core.loader import load_repository
from tests.core.support import FIXTURES, overlay
from tests.core.test_loader import _matches

CASES: list[dict[str, Any]] = YAML(typ="safe").load((FIXTURES / "kubeschema.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rendered_objects_against_the_api_schema(case: dict[str, Any]) -> None:
    result = load_repository(overlay(case["files"]))
    actual = [str(p) for p in result.errors]
    if not case["errors"]:
        assert result.ok, actual
        return
    assert result.desired is None
    for expected in case["errors"]:
        assert any(_matches(expected, a) for a in actual), f"{expected!r} not in {actual}"
    assert len(actual) == len(case["errors"]), actual


def test_the_stored_schema_names_its_version_and_the_command_that_makes_it() -> None:
    doc = kubeschema.stored()
    assert doc["kubernetesVersion"].startswith("v1.")
    assert doc["generatedBy"] == "python -m reconciler.localparts.openapi"
    for kind in ("v1/ConfigMap", "apps/v1/Deployment", "batch/v1/Job", "v1/Secret"):
        assert kind in doc["kinds"]
    assert json.dumps(doc).count("description") == 0  # trimmed


def test_the_policy_s_default_kinds_are_all_checked() -> None:
    from reconciler.core.policy import DEFAULT_KINDS

    checked = {k.rsplit("/", 1)[1] for k in kubeschema.stored()["kinds"]}
    assert set(DEFAULT_KINDS) <= checked
