"""The planner, table-driven: each fixture in fixtures/plans is a desired state (the base
repository with overlays), a compact live snapshot, an instant, and what the plan must say."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.hashing import terraform_input_hash
from reconciler.core.live import parse_time, snapshot_from_json
from reconciler.core.loader import load_repository
from reconciler.core.model import DesiredState
from reconciler.core.plan import Plan, Step
from reconciler.core.planner import plan
from reconciler.core.schema import validate_json
from tests.core.support import FIXTURES, overlay

CASE_FILES = sorted((FIXTURES / "plans").glob("*.yaml"))


def _case(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(path.read_text())
    return loaded


def _service_json(raw: dict[str, Any]) -> dict[str, Any]:
    return {"version": raw.get("version"), "health": raw.get("health", "Healthy"),
            "previousVersion": raw.get("previous"), "appliedHash": None,
            "drift": raw.get("drift", []), "terraform": None, "message": raw.get("message", ""),
            **({"standby": raw["standby"]} if "standby" in raw else {})}


def _progress(text: str) -> dict[str, Any]:
    text, _, failed = text.partition("!")
    version, _, at = text.partition("@")
    out: dict[str, Any] = {"version": version, "bakeStartedAt": at or None}
    failed, pending, _ = failed.partition(" revert-pending")
    if failed:
        out.update(failedVersion=failed, failureReason="error-rate breached")
    if pending:
        out["revertPending"] = True
    return out


def live_json(case: dict[str, Any], cells: list[str]) -> dict[str, Any]:
    """Expand the compact live form of a fixture into a LiveSnapshot document."""
    doc: dict[str, Any] = {"apiVersion": "reconciler.dev/v1", "kind": "LiveSnapshot",
                           "cells": {}, "rollout": {}, "alarms": case.get("alarms", [])}
    for svc, by_cell in (case.get("live") or {}).items():
        for cell in cells:
            raw = by_cell.get(cell, by_cell.get("default"))
            if raw is not None:
                body = doc["cells"].setdefault(cell, {"services": {}, "databases": {}})
                body["services"][svc] = _service_json(raw)
    for key, migs in (case.get("migrations") or {}).items():
        for cell in cells if key == "*" else [key]:
            body = doc["cells"].setdefault(cell, {"services": {}, "databases": {}})
            body["databases"]["main"] = {"migrations": {m: {"phase": ph} for m, ph in migs.items()}}
    for svc, waves in (case.get("rollout") or {}).items():
        doc["rollout"][svc] = {"waves": {w: _progress(t) for w, t in waves.items()}}
    return doc


def _key(s: Step) -> str:
    weight = f" {s.weight}%" if s.weight is not None else ""
    return f"{s.kind} {s.service} {s.cell or s.wave}{weight}"


def desired_of(case: dict[str, Any]) -> DesiredState:
    """The case's desired state; ``stacks`` gives the variables each Terraform stack
    declares (what the composition reads with Terraform's parser)."""
    result = load_repository(overlay(case.get("files") or {}))
    assert result.desired is not None, [str(e) for e in result.errors]
    stacks = {d: frozenset(names) for d, names in (case.get("stacks") or {}).items()}
    return replace(result.desired, stack_variables=stacks)


def _terraform_live(case: dict[str, Any], desired: DesiredState, doc: dict[str, Any]) -> None:
    """``terraformAt: <version>`` in a compact live entry: the cell's stack was last
    applied with that version's inputs (the hash the planner computes for it) — with the
    files of ``appliedFiles`` instead of the case's, when given (inputs since changed)."""
    if "appliedFiles" in case:
        desired = desired_of({**case, "files": {**case.get("files", {}),
                                                **case["appliedFiles"]}})
    for svc, by_cell in (case.get("live") or {}).items():
        for cell, body in doc["cells"].items():
            raw = by_cell.get(cell, by_cell.get("default")) or {}
            if "terraformAt" in raw:
                applied = terraform_input_hash(desired, desired.cells[cell], svc,
                                               str(raw["terraformAt"]))
                body["services"][svc]["terraform"] = {"appliedHash": applied,
                                                      "drifted": False, "outputs": {}}


def run_case(case: dict[str, Any]) -> tuple[Plan, dict[str, Any]]:
    desired = desired_of(case)
    doc = live_json(case, sorted(desired.cells))
    _terraform_live(case, desired, doc)
    assert validate_json(doc, "live") == []
    now = parse_time(case["now"])
    assert isinstance(now, datetime)
    return plan(desired, snapshot_from_json(doc), now), doc


def _check_steps(p: Plan, exp: dict[str, Any]) -> None:
    steps = {_key(s): s for s in p.steps}
    if "due" in exp:
        assert sorted(_key(s) for s in p.due_steps()) == sorted(exp["due"])
    if "steps" in exp:
        assert len(p.steps) == exp["steps"]
    for key, kind in (exp.get("gates") or {}).items():
        assert key in steps, f"no step {key!r} in {sorted(steps)}"
        assert steps[key].gate.kind == kind, (key, steps[key].gate)
    for key, fragment in (exp.get("gate_reasons") or {}).items():
        assert fragment in steps[key].gate.reason, (key, steps[key].gate)
    for key, fragment in (exp.get("details") or {}).items():
        assert fragment in steps[key].detail, (key, steps[key].detail)
    for key in exp.get("absent") or []:  # no such step (other cells may have one)
        assert not [k for k in steps if k == key or k.startswith(key + " ")], key
    for kind in exp.get("absent_kinds") or []:
        assert not [s for s in p.steps if s.kind == kind], kind
    for key, groups in (exp.get("revert_groups") or {}).items():
        assert list(steps[key].groups) == groups, (key, steps[key].groups)


def _check_rest(p: Plan, exp: dict[str, Any]) -> None:
    if "waves" in exp:
        assert {w.wave: w.state for w in p.waves if w.service == "app"} == exp["waves"]
    if "holds" in exp:
        holds = [f"{h.service} {h.wave} {h.version}: {h.reason}" for h in p.holds]
        assert len(holds) == len(exp["holds"]), holds
        for fragment in exp["holds"]:
            assert any(h.startswith(fragment.split(":")[0]) and fragment in h for h in holds), \
                (fragment, holds)
    if "refusals" in exp:
        refusals = [f"{r.service} {r.cell}: {r.reason}" for r in p.refusals]
        assert len(refusals) == len(exp["refusals"]), refusals
        for fragment in exp["refusals"]:
            assert any(fragment in r for r in refusals), (fragment, refusals)
    if "warnings" in exp:
        assert sorted(w.code for w in p.warnings) == sorted(exp["warnings"])


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_plan_case(path: Path) -> None:
    case = _case(path)
    p, _ = run_case(case)
    _check_steps(p, case["expect"])
    _check_rest(p, case["expect"])
    assert validate_json(p.to_json(), "plan") == []


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_plan_is_deterministic(path: Path) -> None:
    case = _case(path)
    first, doc = run_case(case)
    reordered = dict(reversed(list(doc["cells"].items())))
    second = plan(desired_of(case), snapshot_from_json({**doc, "cells": reordered}),
                  first.generated_at)
    assert json.dumps(first.to_json(), sort_keys=True) == json.dumps(second.to_json(),
                                                                     sort_keys=True)
