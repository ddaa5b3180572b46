"""The Terraform part of the live snapshot, read from the workspaces' records."""

from __future__ import annotations

from reconciler.adapters.terraform.engine import Engine, TerraformSettings
from reconciler.adapters.terraform.workspace import workspace_for
from reconciler.core.live import TerraformLive
from reconciler.core.model import DesiredState


def terraform_live(desired: DesiredState, settings: TerraformSettings,
                   engine: Engine) -> dict[str, dict[str, TerraformLive]]:
    """cell -> service -> applied input hash, drift flag, non-sensitive outputs.

    Cheap: reads each workspace's record; drift itself is found by ``check_drift``.
    """
    out: dict[str, dict[str, TerraformLive]] = {}
    for svc in sorted(n for n, s in desired.services.items() if s.terraform):
        for cell in sorted(desired.cells):
            record = workspace_for(settings, engine, svc, cell).record()
            if record:
                out.setdefault(cell, {})[svc] = TerraformLive(
                    record.get("inputHash"), bool(record.get("drifted")),
                    dict(record.get("outputs", {})))
    return out
