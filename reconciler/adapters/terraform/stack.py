"""Applying a service's stack for a cell: the operations the executor and drift job use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.adapters.terraform.engine import Engine, TerraformSettings
from reconciler.adapters.terraform.engines import make_engine
from reconciler.adapters.terraform.live import Records
from reconciler.adapters.terraform.plan import TerraformPlan
from reconciler.adapters.terraform.workspace import Workspace, workspace_for
from reconciler.core.hashing import stack_variables, terraform_input_hash, terraform_variables
from reconciler.core.live import TerraformLive
from reconciler.core.model import Cell, DesiredState


@dataclass
class TerraformRunner:
    """Runs stacks per cell with the configured engine."""

    settings: TerraformSettings = field(default_factory=TerraformSettings)
    engine: Engine | None = None

    def __post_init__(self) -> None:
        if self.engine is None:
            self.engine = make_engine(self.settings)
        self._records = Records(self.settings, self.engine)

    def workspace(self, desired: DesiredState, cell: Cell, service: str,
                  version: str) -> tuple[Workspace, str]:
        """The prepared workspace and the input hash identifying its plan."""
        assert self.engine is not None
        stack_dir = desired.services[service].terraform
        assert stack_dir is not None
        ws = workspace_for(self.settings, self.engine, service, cell.name)
        ws.prepare(desired.files_under(stack_dir),
                   terraform_variables(cell, version, stack_variables(desired, service)))
        input_hash = terraform_input_hash(desired, cell, service, version)
        assert input_hash is not None
        return ws, input_hash

    def plan(self, desired: DesiredState, cell: Cell, service: str,
             version: str) -> TerraformPlan:
        ws, h = self.workspace(desired, cell, service, version)
        return ws.plan(h)

    def apply(self, desired: DesiredState, cell: Cell, service: str,
              version: str) -> Mapping[str, Any]:
        ws, h = self.workspace(desired, cell, service, version)
        return ws.apply(h)

    def outputs(self, desired: DesiredState, cell: Cell, service: str) -> Mapping[str, Any]:
        assert self.engine is not None
        record = workspace_for(self.settings, self.engine, service, cell.name).record()
        outputs: dict[str, Any] = record.get("outputs", {})
        return outputs

    def check_drift(self, desired: DesiredState, cell: Cell, service: str,
                    version: str) -> TerraformPlan:
        ws, h = self.workspace(desired, cell, service, version)
        return ws.check_drift(h)

    def drift_addresses(self, desired: DesiredState, cell: Cell, service: str,
                        version: str) -> tuple[str, ...]:
        """``check_drift`` as the addresses that would change (empty: no drift)."""
        return tuple(c.address for c in self.check_drift(desired, cell, service, version).changes)

    def read(self, desired: DesiredState) -> dict[str, dict[str, TerraformLive]]:
        return self._records(desired)
