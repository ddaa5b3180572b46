"""The flag definitions the reconciler renders for each cell, judged by flagd itself:
valid against flagd's flag-definition schema (its published schema as compiled into
@openfeature/flagd-core 4.0.1, run with Node.js: schemas/vendor/flagd/) and evaluated by
flagd's Python evaluator (openfeature-flagd-core, pinned) — the variant a request context
gets in each cell, not only the ConfigMap's text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from reconciler.core import flags
from reconciler.core.loader import load_repository
from reconciler.core.model import DesiredState
from reconciler.core.render import default_context, render_service
from tests.core.support import overlay

VENDOR = Path(__file__).resolve().parents[3] / "reconciler" / "schemas" / "vendor" / "flagd"

FLAG = """apiVersion: reconciler.dev/v1
kind: Flag
metadata: {name: checkout}
spec:
  variants:
    - {name: "off", value: classic}
    - {name: "on", value: v2}
    - {name: beta, value: v2-beta}
  defaultVariant: "off"
  targeting:
    if:
      - ends_with: [{var: email}, "@staff.example"]
      - beta
      - null
  groups:
    - {groups: [canary], variant: beta}
    - {groups: [zone], variant: "on"}
    - {groups: [rest], variant: "off"}
"""


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Node.js is needed to run flagd's schema validator")
        pytest.skip("no Node.js")
    return found


def flagd_errors(docs: list[Any]) -> list[list[str]]:
    """Each document's violations of flagd's flag-definition schema."""
    out = subprocess.run([node(), str(VENDOR / "validate.cjs")], input=json.dumps(docs),
                         capture_output=True, text=True, check=True, timeout=60)
    errors: list[list[str]] = json.loads(out.stdout)
    return errors


def desired() -> DesiredState:
    result = load_repository(overlay({"flags/checkout.yaml": FLAG}))
    assert result.desired is not None, [str(e) for e in result.errors]
    return result.desired


def rendered(d: DesiredState) -> dict[str, dict[str, Any]]:
    """cell -> the ConfigMap the apply of flag.checkout gives it (the executor's path)."""
    out = {}
    for name, cell in sorted(d.cells.items()):
        version = d.desired_version("flag.checkout", cell)
        assert version is not None
        objs = render_service(d, default_context(cell, "flag.checkout", str(version)))
        assert len(objs) == 1
        out[name] = objs[0]
    return out


def test_every_cell_gets_a_configmap_valid_for_flagd() -> None:
    maps = rendered(desired())
    for name, cm in maps.items():
        assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "flagd-checkout"
        assert cm["metadata"]["namespace"] == name
    docs = [json.loads(cm["data"][flags.CONFIGMAP_KEY]) for cm in maps.values()]
    assert flagd_errors(docs) == [[] for _ in docs]


def test_flagd_schema_rejects_what_it_should() -> None:
    """The validator can fail: a definition flagd would refuse is refused."""
    bad = {"flags": {"checkout": {"state": "ON", "variants": {"on": True}}}}
    assert flagd_errors([bad])[0] != []


@pytest.mark.parametrize(("email", "expected"), [
    ("ann@staff.example", {"c1": "beta", "z1": "beta", "x1": "off"}),
    ("bob@customer.example", {"c1": "beta", "z1": "on", "x1": "off"}),
])
def test_the_variant_a_request_gets_in_each_cell(email: str,
                                                 expected: dict[str, str]) -> None:
    maps = rendered(desired())
    for cell, variant in expected.items():
        core = FlagdCore()
        core.set_flags(maps[cell]["data"][flags.CONFIGMAP_KEY])
        got = core.resolve_string_value("checkout", "fallback",
                                        EvaluationContext(email, {"email": email}))
        assert got.variant == variant, (cell, email, got)
        assert got.value == {"off": "classic", "on": "v2", "beta": "v2-beta"}[variant]


def test_targeting_applies_only_where_the_flag_is_not_off() -> None:
    """Off (the default variant) means off for everyone: no targeting in such a cell."""
    staff = EvaluationContext("ann", {"email": "ann@staff.example"})
    maps = rendered(desired())
    results = {}
    for cell in ("z1", "x1"):
        core = FlagdCore()
        core.set_flags(maps[cell]["data"][flags.CONFIGMAP_KEY])
        results[cell] = core.resolve_string_value("checkout", "fallback", staff).variant
    assert results == {"z1": "beta", "x1": "off"}
