"""The typed vocabularies (StrEnums) match the schemas and serialise as plain strings."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import pytest

from reconciler.core.kinds.migration import MigrationAction
from reconciler.core.model import RollbackPolicy
from reconciler.core.plan import Gate, GateKind, Step, StepKind
from reconciler.core.schema import schema


def _step_schema() -> dict[str, Any]:
    items: dict[str, Any] = schema("plan")["properties"]["steps"]["items"]
    return items


@pytest.mark.parametrize(("enum", "values"), [
    (StepKind, lambda: _step_schema()["properties"]["kind"]["enum"]),
    (StepKind, lambda: schema("plan")["properties"]["summary"]["properties"]["byKind"]
     ["propertyNames"]["enum"]),
    (GateKind, lambda: _step_schema()["properties"]["gate"]["properties"]["kind"]["enum"]),
    (RollbackPolicy, lambda: schema("fleet")["properties"]["spec"]["properties"]["rollout"]
     ["properties"]["rollback"]["enum"]),
], ids=["step-kind", "by-kind", "gate-kind", "rollback-policy"])
def test_enum_matches_schema(enum: type[StrEnum], values: Any) -> None:
    assert [str(m) for m in enum] == values()


def test_migration_actions_are_the_migration_document_steps() -> None:
    spec = schema("migration")["properties"]["spec"]["properties"]
    assert {str(a) for a in MigrationAction} <= set(spec)


def test_members_serialise_as_their_plain_values() -> None:
    step = Step(StepKind.REVERT_COMMIT, "app", "canary", -1, None, "1.1.0",
                gate=Gate(GateKind.PREVIOUS_STEP, "x"), groups=("canary", "zone"))
    doc = step.to_json()
    assert type(doc["kind"]) is str and type(doc["gate"]["kind"]) is str
    assert json.dumps(doc["kind"]) == '"revert-commit"'
    assert doc["groups"] == ["canary", "zone"]
    assert step.id == "revert-commit/app/canary/-/-/-"
    assert f"{StepKind.BAKE:<6}|" == "bake  |"


def test_groups_appear_in_json_only_when_set() -> None:
    assert "groups" not in Step(StepKind.BAKE, "app", "canary", 0).to_json()
