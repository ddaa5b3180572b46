"""The recorded inventory: what was last applied for one service in one cell.

Owns: one ConfigMap per cell and service (``reconciler-inv-<cell>-<service>`` in the
cell namespace, labelled ``reconciler.dev/inventory=true``) holding the applied
version, the previous version (the rollback target), the applied hash, the exact
objects applied (the reference for drift and self-heal) and ``pending`` references
written before an apply starts, so a crash mid-apply still prunes correctly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.kubernetes.client import KubeClient
from reconciler.adapters.kubernetes.objects import (
    FIELD_MANAGER,
    LABEL_INVENTORY,
    Ref,
    ownership_labels,
    ref_of,
)

CM_PREFIX = "/api/v1/namespaces/{ns}/configmaps"


@dataclass(frozen=True)
class Inventory:
    """The applied record; ``objects`` are the decorated manifests as sent."""

    version: str | None = None
    previous: str | None = None
    applied_hash: str | None = None
    objects: tuple[dict[str, Any], ...] = ()
    pending: tuple[Ref, ...] = ()
    #: blueGreen: the recorded colours (``core.bluegreen.Colours`` as JSON), else "".
    colours: str = ""

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(ref_of(o) for o in self.objects)

    def intent(self, ref: Ref) -> dict[str, Any] | None:
        """The applied manifest of ``ref``."""
        return next((o for o in self.objects if ref_of(o) == ref), None)


def inventory_name(cell: str, service: str) -> str:
    """The ConfigMap name (a DNS subdomain, ≤ 253 characters)."""
    return f"reconciler-inv-{cell}-{service}".lower()[:253]


def from_configmap(cm: dict[str, Any]) -> Inventory:
    """Parse the ConfigMap's data."""
    data = cm.get("data") or {}
    return Inventory(
        version=data.get("version") or None,
        previous=data.get("previousVersion") or None,
        applied_hash=data.get("appliedHash") or None,
        objects=tuple(json.loads(data.get("objects", "[]"))),
        pending=tuple(Ref.from_json(r) for r in json.loads(data.get("pending", "[]"))),
        colours=data.get("colours", ""),
    )


#: The annotation naming the sharded replica that wrote an inventory last.
APPLIED_BY = "reconciler.dev/applied-by"


def to_configmap(cell: str, service: str, namespace: str, inv: Inventory,
                 applied_by: str | None = None) -> dict[str, Any]:
    """The ConfigMap recording ``inv`` (and the replica that applied, when sharded)."""
    meta: dict[str, Any] = {
        "name": inventory_name(cell, service), "namespace": namespace,
        "labels": {**ownership_labels(cell, service), LABEL_INVENTORY: "true"}}
    if applied_by:
        meta["annotations"] = {APPLIED_BY: applied_by}
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
        "data": {
            "version": inv.version or "", "previousVersion": inv.previous or "",
            "appliedHash": inv.applied_hash or "",
            "objects": json.dumps(list(inv.objects), sort_keys=True),
            "pending": json.dumps([r.to_json() for r in inv.pending], sort_keys=True),
            **({"colours": inv.colours} if inv.colours else {}),
        },
    }


def read_inventory(kube: KubeClient, cell: str, service: str,
                   namespace: str) -> Inventory | None:
    """The recorded inventory, None when nothing was ever applied."""
    cm = kube.get(f"{CM_PREFIX.format(ns=namespace)}/{inventory_name(cell, service)}")
    return from_configmap(cm) if cm is not None else None


def write_inventory(kube: KubeClient, cell: str, service: str, namespace: str,
                    inv: Inventory, applied_by: str | None = None) -> None:
    """Record ``inv`` (server-side apply, same field manager)."""
    path = f"{CM_PREFIX.format(ns=namespace)}/{inventory_name(cell, service)}"
    kube.request("PATCH", path, {"fieldManager": FIELD_MANAGER, "force": "true"},
                 to_configmap(cell, service, namespace, inv, applied_by),
                 "application/apply-patch+yaml")


def is_inventory(obj: dict[str, Any]) -> bool:
    """True for an inventory ConfigMap."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return obj.get("kind") == "ConfigMap" and labels.get(LABEL_INVENTORY) == "true"
