"""Format checks of the packaged schemas: ``date-time`` is checked by our own checker
(fixtures/date_times.yaml), so a bad timestamp fails validation on every install."""

from __future__ import annotations

from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.live import parse_time
from reconciler.core.schema import FORMATS, validate_json
from tests.core.support import FIXTURES

TABLE: dict[str, list[str]] = YAML(typ="safe").load((FIXTURES / "date_times.yaml").read_text())


@pytest.mark.parametrize("text", TABLE["valid"])
def test_valid_date_time(text: str) -> None:
    assert FORMATS.conforms(text, "date-time")
    assert parse_time(text) is not None  # what the planner then reads


@pytest.mark.parametrize("text", TABLE["invalid"])
def test_invalid_date_time(text: str) -> None:
    assert not FORMATS.conforms(text, "date-time")


def test_the_live_schema_uses_it() -> None:
    doc: dict[str, Any] = {"apiVersion": "reconciler.dev/v1", "kind": "LiveSnapshot",
                           "cells": {}, "alarms": [],
                           "rollout": {"api": {"waves": {"canary": {
                               "version": "1.0.0", "bakeStartedAt": "soon"}}}}}
    problems = validate_json(doc, "live")
    assert problems == ["rollout.api.waves.canary.bakeStartedAt: 'soon' is not a 'date-time'"]
