"""Per-cell stacks through real Terraform: apply, outputs, drift and heal on a real file,
a held lock, an invalid stack, secrets kept out, and both engines agreeing."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import shutil
from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.terraform import TerraformRunner, TerraformSettings
from reconciler.adapters.terraform.engines import find_binary
from reconciler.core.model import (
    Cell,
    DesiredState,
    Fleet,
    HealthSettings,
    KubernetesTarget,
    RollbackPolicy,
    Service,
    SourceRef,
    StatusConfig,
    frozen_map,
)
from tests.integration.terraform.conftest import unavailable

pytestmark = pytest.mark.terraform

STACK = """\
terraform {
  required_providers {
    local = { source = "hashicorp/local", version = "1.4.0" }
  }
}
variable "cell" { type = string }
variable "region" { type = string }
variable "zone" { type = string }
variable "service_version" { type = string }
variable "out_dir" { type = string }
variable "api_key" {
  type      = string
  sensitive = true
}
resource "local_file" "config" {
  filename = "${var.out_dir}/${var.cell}.conf"
  content  = "cell=${var.cell} version=${var.service_version}\\n"
}
resource "terraform_data" "queue" {
  input = "orders-${var.cell}"
}
output "queue" { value = terraform_data.queue.output }
output "key" {
  value     = var.api_key
  sensitive = true
}
"""
SECRET = "s3cr3t-api-key-value"


def desired(out_dir: Path, stack: str = STACK) -> DesiredState:
    cells = {n: Cell(n, "canary", "r1", "r1a", 1.0, KubernetesTarget(n),
                     frozen_map({"out_dir": str(out_dir), "api_key": SECRET}), (),
                     SourceRef(f"cells/{n}.yaml")) for n in ("c1", "c2")}
    fleet = Fleet("t", (), RollbackPolicy.WAVE, True, True, 10.0, (), (), StatusConfig(),
                  SourceRef("r"))
    svc = Service("app", (), "services/app/terraform", HealthSettings(), (), (), SourceRef("s"))
    return DesiredState("rev", fleet, cells, {"app": svc}, {}, (),
                        files={"services/app/terraform/main.tf": stack})


def test_apply_per_cell_with_own_state_and_outputs(settings: TerraformSettings,
                                                   tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state = desired(tmp_path / "out")
    tf = TerraformRunner(settings)
    for name in ("c1", "c2"):
        outputs = tf.apply(state, state.cells[name], "app", "1.0.0")
        assert outputs == {"queue": f"orders-{name}"}
    assert (tmp_path / "out" / "c1.conf").read_text() == "cell=c1 version=1.0.0\n"
    assert (settings.state_dir / "app" / "c1" / "terraform.tfstate").exists()
    assert (settings.state_dir / "app" / "c2" / "terraform.tfstate").exists()
    live = tf.read(state)
    assert live["c1"]["app"].outputs == {"queue": "orders-c1"}
    assert live["c1"]["app"].applied_hash is not None and not live["c1"]["app"].drifted
    assert tf.plan(state, state.cells["c1"], "app", "1.0.0").empty
    bump = tf.plan(state, state.cells["c1"], "app", "1.1.0")
    assert [(c.address, c.action) for c in bump.changes] == [("local_file.config", "replace")]
    snapshot_text = json.dumps({c: {s: t.to_json() for s, t in v.items()}
                                for c, v in live.items()})
    assert SECRET not in snapshot_text and SECRET not in caplog.text


def test_out_of_band_change_is_drift_and_is_healed(settings: TerraformSettings,
                                                   tmp_path: Path) -> None:
    state = desired(tmp_path / "out")
    tf = TerraformRunner(settings)
    c1 = state.cells["c1"]
    tf.apply(state, c1, "app", "1.0.0")
    (tmp_path / "out" / "c1.conf").unlink()
    drift = tf.check_drift(state, c1, "app", "1.0.0")
    assert [c.address for c in drift.changes] == ["local_file.config"]
    assert tf.read(state)["c1"]["app"].drifted
    tf.apply(state, c1, "app", "1.0.0")
    assert (tmp_path / "out" / "c1.conf").read_text() == "cell=c1 version=1.0.0\n"
    assert not tf.read(state)["c1"]["app"].drifted
    assert tf.check_drift(state, c1, "app", "1.0.0").empty


def test_held_lock_is_temporary_and_names_the_holder(settings: TerraformSettings,
                                                     tmp_path: Path) -> None:
    state = desired(tmp_path / "out")
    tf = TerraformRunner(settings)
    c1 = state.cells["c1"]
    tf.apply(state, c1, "app", "1.0.0")
    root = settings.state_dir / "app" / "c1"
    info = {"ID": "1234-lock", "Operation": "OperationTypeApply", "Info": "",
            "Who": "alice@ops-host", "Version": "1.15.5", "Created": "2026-11-22T10:00:00Z",
            "Path": "terraform.tfstate"}
    (root / ".terraform.tfstate.lock.info").write_text(json.dumps(info))
    with (root / "terraform.tfstate").open("r+") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TemporaryError, match="locked by alice@ops-host"):
            tf.plan(state, c1, "app", "1.0.1")


def test_invalid_stack_names_file_and_line(settings: TerraformSettings, tmp_path: Path) -> None:
    broken = desired(tmp_path / "out", STACK + '\nresource "terraform_data" "x" {\n  input = \n')
    with pytest.raises(PermanentError, match=r"main\.tf:\d+: "):
        TerraformRunner(settings).apply(broken, broken.cells["c1"], "app", "1.0.0")


def test_both_engines_give_the_same_plan(settings: TerraformSettings, tmp_path: Path) -> None:
    extra = Path.home() / ".cache" / "reconciler" / "bin" / "terraform"
    if find_binary(settings) is None and extra.exists():
        settings = dataclasses.replace(settings, binary=str(extra))
    if find_binary(settings) is None:
        unavailable("no terraform or tofu binary for the external engine "
                    "(hack/terraform.sh builds one)")
    state = desired(tmp_path / "out")
    embedded = TerraformRunner(settings)
    external = TerraformRunner(dataclasses.replace(settings, engine="external",
                                                   state_dir=tmp_path / "state-ext"))
    a = embedded.plan(state, state.cells["c2"], "app", "2.0.0")
    b = external.plan(state, state.cells["c2"], "app", "2.0.0")
    assert a.changes == b.changes and a.input_hash == b.input_hash
    assert a.counts() == {"add": 2, "change": 0, "destroy": 0}
    shutil.rmtree(tmp_path / "state-ext", ignore_errors=True)
