"""Terraform plans as values: resource changes read from ``show -json``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ResourceChange:
    """One resource a plan would touch, and how (create, update, delete, replace, read)."""

    address: str
    action: str


@dataclass(frozen=True)
class TerraformPlan:
    """A plan for one cell's workspace, identified by the hash of its inputs."""

    input_hash: str
    changes: tuple[ResourceChange, ...]

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        """Resources to add / change / destroy, as ``terraform plan`` summarises them."""
        add = sum(1 for c in self.changes if c.action in ("create", "replace"))
        change = sum(1 for c in self.changes if c.action == "update")
        destroy = sum(1 for c in self.changes if c.action in ("delete", "replace"))
        return {"add": add, "change": change, "destroy": destroy}


def _action(actions: list[str]) -> str:
    if actions == ["no-op"]:
        return "no-op"
    if "delete" in actions and "create" in actions:
        return "replace"
    return actions[0] if actions else "no-op"


def changes_from_json(doc: dict[str, Any]) -> tuple[ResourceChange, ...]:
    """Resource changes of a ``show -json`` plan document, no-ops left out, sorted."""
    out = []
    for rc in doc.get("resource_changes", []) or []:
        action = _action(list(rc.get("change", {}).get("actions", [])))
        if action not in ("no-op", "read"):
            out.append(ResourceChange(str(rc.get("address")), action))
    return tuple(sorted(out, key=lambda c: c.address))
