"""Table test: which Terraform stacks the drift job checks (fixtures/driftcheck)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.driftcheck import DriftTarget, terraform_drift_targets
from reconciler.core.hashing import terraform_input_hash
from reconciler.core.live import TerraformLive
from reconciler.core.loader import load_repository
from reconciler.core.model import DesiredState, frozen_map
from tests.core.support import overlay

CASES = YAML(typ="safe").load(
    (Path(__file__).parent / "fixtures" / "driftcheck" / "cases.yaml").read_text())
SERVICE = """\
apiVersion: reconciler.dev/v1
kind: Service
metadata:
  name: app
spec:
  kubernetes:
    manifests: [kubernetes/deployment.yaml]
  terraform:
    stack: terraform
  databases: [main]
"""


def _desired() -> DesiredState:
    result = load_repository(overlay({
        "services/app/service.yaml": SERVICE,
        "services/app/terraform/main.tf": 'resource "terraform_data" "q" { input = "x" }\n'}))
    assert result.desired is not None, result.errors
    return result.desired


def _applied(desired: DesiredState, case: dict[str, Any]) -> dict[str, dict[str, TerraformLive]]:
    out = {}
    for cell, record in case["applied"].items():
        version, _, flag = record.partition(" ")
        h = terraform_input_hash(desired, desired.cells[cell], "app", version)
        out[cell] = {"app": TerraformLive(h, flag == "drifted", {})}
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_drift_targets(case: dict[str, Any]) -> None:
    desired = _desired()
    applied = _applied(desired, case)
    cells = dict(desired.cells)
    for name, tf_vars in (case.get("cell_vars") or {}).items():
        cells[name] = replace(cells[name], terraform_vars=frozen_map(tf_vars))
    desired = replace(desired, cells=MappingProxyType(cells))
    assert terraform_drift_targets(desired, applied) == tuple(
        DriftTarget(c, "app", "1.1.0") for c in case["expect"])
