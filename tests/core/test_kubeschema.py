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


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "labels": {"app": "web"}},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "web",
                                                             "image": "web:1.0.0"}]}}}}


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(json.dumps(DEPLOYMENT))
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return obj


def test_a_shape_is_keys_types_and_kind_never_another_string() -> None:
    base = kubeschema.shape(DEPLOYMENT)
    assert kubeschema.shape(_with(["metadata", "name"], "other")) == base
    assert kubeschema.shape(_with(["spec", "template", "spec", "containers", 0, "image"],
                                  "web:2.0.0")) == base
    for changed in (_with(["spec", "replicas"], "2"), _with(["spec", "replicas"], 2.0),
                    _with(["spec", "replicas"], True), _with(["kind"], "StatefulSet"),
                    _with(["apiVersion"], "apps/v1beta1"),
                    _with(["spec", "template", "spec", "containers"],
                          [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]),
                    _with(["spec", "paused"], False)):
        assert kubeschema.shape(changed) != base
    placeholder = frozenset({"<output>"})
    assert kubeschema.shape(_with(["metadata", "name"], "<output>"), placeholder) != \
        kubeschema.shape(DEPLOYMENT, placeholder)


def test_a_shape_that_passed_is_not_checked_again_and_an_error_always_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeschema, "_CLEAN", {})
    checked: list[str] = []
    real = kubeschema.validator

    def counting(definition: str) -> Any:
        checked.append(definition)
        return real(definition)

    monkeypatch.setattr(kubeschema, "validator", counting)
    for i in range(3):
        assert kubeschema.check_objects("t.yaml", "", "", [_with(["metadata", "name"], f"c{i}")]) \
            == []
    assert len(checked) == 1
    typo = _with(["spec", "replicas"], "two")
    for _ in range(2):
        problems = kubeschema.check_objects("t.yaml", "", "", [typo])
        assert problems and "replicas" in problems[0].message
    assert len(checked) == 3


def test_every_case_gives_the_same_errors_with_the_shapes_remembered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo changes no outcome: each table case alone (nothing remembered) and all
    of them again after every case's shapes were remembered."""
    monkeypatch.setattr(kubeschema, "MAX_CLEAN", 100_000)
    alone = []
    for case in CASES:
        monkeypatch.setattr(kubeschema, "_CLEAN", {})
        alone.append([str(p) for p in load_repository(overlay(case["files"])).errors])
    assert any(alone) and not all(alone)
    for _ in range(2):  # the first pass remembers every case's clean shapes
        warm = [[str(p) for p in load_repository(overlay(case["files"])).errors]
                for case in CASES]
        assert warm == alone
    assert len(kubeschema._CLEAN) > 1
