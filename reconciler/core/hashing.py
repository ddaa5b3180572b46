"""Stable hashes of what is applied: Terraform inputs and rendered manifests.

Owns: the identity of an apply. A Terraform plan is identified by the hash of its
inputs (stack files, variables, version), never by the Git commit alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler.core.model import Cell, DesiredState


def stable_hash(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (sorted keys, no spaces), hex, 16 chars."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def terraform_variables(cell: Cell, version: str) -> dict[str, Any]:
    """The variables a cell's stack receives: the cell's own plus identity and version.

    The version is ``service_version``: ``version`` is a reserved variable name in
    Terraform.
    """
    base: dict[str, Any] = {"cell": cell.name, "region": cell.region, "zone": cell.zone,
                            "service_version": version}
    return {**base, **dict(cell.terraform_vars)}


def terraform_input_hash(desired: DesiredState, cell: Cell, service: str,
                         version: str) -> str | None:
    """Hash of a cell's stack inputs for ``service`` at ``version``; None without a stack."""
    svc = desired.services[service]
    if svc.terraform is None:
        return None
    stack: Mapping[str, str] = desired.files_under(svc.terraform)
    return stable_hash({"stack": stack, "vars": terraform_variables(cell, version)})


def manifest_hash(objects: list[dict[str, Any]]) -> str:
    """Hash of rendered manifests as applied (before server defaults)."""
    return stable_hash(objects)
