"""Which Terraform stacks are worth a drift check.

Owns: choosing the (cell, service, version) triples whose last apply used exactly the
inputs the desired state asks for now — only those can drift (a stack whose inputs
changed is re-applied by the plan anyway, and one already known to have drifted is
healed by it). Pure: the daemon runs the checks and records what they find.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.hashing import terraform_input_hash
from reconciler.core.live import TerraformLive
from reconciler.core.model import DesiredState


@dataclass(frozen=True)
class DriftTarget:
    """One stack to check against the inputs it was applied with."""

    cell: str
    service: str
    version: str


def terraform_drift_targets(desired: DesiredState,
                            applied: Mapping[str, Mapping[str, TerraformLive]]
                            ) -> tuple[DriftTarget, ...]:
    """Stacks applied with the inputs the desired state wants now and not yet drifted."""
    out: list[DriftTarget] = []
    for name in sorted(desired.cells):
        cell = desired.cells[name]
        for service in sorted(applied.get(name, {})):
            tf = applied[name][service]
            version = desired.desired_version(service, cell)
            if version is None or tf.drifted or service not in desired.services:
                continue
            want = terraform_input_hash(desired, cell, service, str(version))
            if want is not None and tf.applied_hash == want:
                out.append(DriftTarget(name, service, str(version)))
    return tuple(out)
