"""Object identity and decoration: references, ownership labels, apply order.

Owns: the labels and annotations that mark an object as ours
(``reconciler.dev/cell|service|version``, ``reconciler.dev/applied-hash``,
``reconciler.dev/previous-version``), the field manager name, and the order in which
kinds are applied (namespaces and config before workloads).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELD_MANAGER = "reconciler"
LABEL_CELL = "reconciler.dev/cell"
LABEL_SERVICE = "reconciler.dev/service"
LABEL_VERSION = "reconciler.dev/version"
LABEL_INVENTORY = "reconciler.dev/inventory"
ANN_HASH = "reconciler.dev/applied-hash"
ANN_PREVIOUS = "reconciler.dev/previous-version"

CLUSTER_KINDS = frozenset({
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"})
_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1, "ServiceAccount": 2, "Role": 3,
          "ClusterRole": 3, "RoleBinding": 4, "ClusterRoleBinding": 4, "Secret": 5,
          "ConfigMap": 5, "PersistentVolumeClaim": 6, "Service": 7, "Job": 9}


@dataclass(frozen=True, order=True)
class Ref:
    """Which object: apiVersion, kind, namespace ("" when cluster-scoped) and name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"

    def to_json(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind,
                "namespace": self.namespace, "name": self.name}

    @staticmethod
    def from_json(d: Mapping[str, str]) -> Ref:
        return Ref(d["apiVersion"], d["kind"], d.get("namespace", ""), d["name"])


def ref_of(obj: Mapping[str, Any]) -> Ref:
    """The reference of a manifest or live object."""
    meta = obj.get("metadata") or {}
    return Ref(str(obj["apiVersion"]), str(obj["kind"]), str(meta.get("namespace") or ""),
               str(meta["name"]))


def apply_order(obj: Mapping[str, Any]) -> tuple[int, Ref]:
    """Sort key: kinds others depend on first, workloads (8) in the middle, Jobs last."""
    return (_ORDER.get(str(obj.get("kind")), 8), ref_of(obj))


def ownership_labels(cell: str, service: str) -> dict[str, str]:
    """The labels selecting one service's objects in one cell."""
    return {LABEL_CELL: cell, LABEL_SERVICE: service}


def selector(cell: str, service: str) -> str:
    """``ownership_labels`` as a label selector."""
    return ",".join(f"{k}={v}" for k, v in ownership_labels(cell, service).items())


def decorate(obj: Mapping[str, Any], cell: str, service: str, version: str,
             namespace: str, applied_hash: str, previous: str | None) -> dict[str, Any]:
    """A copy of a rendered object with our labels, annotations and the cell namespace."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    if out.get("kind") not in CLUSTER_KINDS:
        meta.setdefault("namespace", namespace)
    labels = meta.setdefault("labels", {}) or {}
    labels.update({**ownership_labels(cell, service), LABEL_VERSION: version})
    meta["labels"] = labels
    ann = meta.setdefault("annotations", {}) or {}
    ann[ANN_HASH] = applied_hash
    if previous:
        ann[ANN_PREVIOUS] = previous
    meta["annotations"] = ann
    return out


def is_ours(live: Mapping[str, Any], cell: str, service: str) -> bool:
    """True when a live object carries our labels for this cell/service and our manager."""
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    managers = {m.get("manager") for m in meta.get("managedFields") or []}
    return (labels.get(LABEL_CELL) == cell and labels.get(LABEL_SERVICE) == service
            and FIELD_MANAGER in managers)
