"""Stable hashes of what is applied: Terraform inputs and rendered manifests.

Owns: the identity of an apply. A Terraform plan is identified by the hash of its
inputs (stack files, the variables the stack declares, their values), never by the Git
commit alone: a version bump that changes no declared variable leaves the hash — and
the stack — alone.
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


def terraform_variables(cell: Cell, version: str,
                        declared: frozenset[str] | None = None) -> dict[str, Any]:
    """The variables a cell's stack receives: the cell's own plus identity and version;
    only those in ``declared`` when given (what the stack's configuration declares).

    The version is ``service_version``: ``version`` is a reserved variable name in
    Terraform.
    """
    base: dict[str, Any] = {"cell": cell.name, "region": cell.region, "zone": cell.zone,
                            "service_version": version}
    every = {**base, **dict(cell.terraform_vars)}
    if declared is None:
        return every
    return {k: v for k, v in every.items() if k in declared}


def stack_variables(desired: DesiredState, service: str) -> frozenset[str] | None:
    """The variables ``service``'s stack declares; None when not known (or no stack)."""
    stack = desired.services[service].terraform
    return desired.stack_variables.get(stack) if stack is not None else None


def terraform_input_hash(desired: DesiredState, cell: Cell, service: str,
                         version: str) -> str | None:
    """Hash of a cell's stack inputs for ``service`` at ``version``; None without a stack.

    Only declared variables count when the stack's declarations are known: a bump of a
    version the stack never reads plans no Terraform step.
    """
    svc = desired.services[service]
    if svc.terraform is None:
        return None
    stack: Mapping[str, str] = desired.files_under_once(svc.terraform)
    declared = stack_variables(desired, service)
    variables = terraform_variables(cell, version, declared)
    return stable_hash({"stack": dict(stack), "vars": variables})


def manifest_hash(objects: list[dict[str, Any]]) -> str:
    """Hash of rendered manifests as applied (before server defaults)."""
    return stable_hash(objects)
