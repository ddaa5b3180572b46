"""Applying one service to one cell: server-side apply, inventory, prune, self-heal.

Owns: the apply sequence — record pending references in the inventory (when the apply
may create an object it does not name yet), apply every object (field manager
``reconciler``, conflicts forced), prune what the previous inventory held and the new one
does not, then record the new inventory — and the change set it returns (created /
configured / deleted / skipped, like fluxcd's ssa).
Prune deletes only objects from our inventory that still carry our labels and field
manager, with a uid precondition; nothing is ever listed and deleted. Nothing is taken
over: before anything is written, every object must be absent or already ours for this
cell and service, and namespaced objects must sit in the cell's namespace — otherwise
the apply of that service in that cell fails whole with the reason (no flapping between
two cells claiming one object, no adoption of objects someone else created).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.kubernetes.client import APPLY, KubeClient
from reconciler.adapters.kubernetes.errors import NotFound
from reconciler.adapters.kubernetes.inventory import (
    Inventory,
    read_inventory,
    write_inventory,
)
from reconciler.adapters.kubernetes.objects import (
    CLUSTER_KINDS,
    FIELD_MANAGER,
    LABEL_CELL,
    LABEL_SERVICE,
    Ref,
    apply_order,
    decorate,
    is_ours,
    ref_of,
)
from reconciler.core.hashing import manifest_hash
from reconciler.core.model import Cell


@dataclass(frozen=True)
class Change:
    """What one apply did to one object."""

    ref: Ref
    action: str  # created | configured | deleted | skipped
    message: str = ""

    def __str__(self) -> str:
        return f"{self.ref} {self.action}" + (f" ({self.message})" if self.message else "")


@dataclass(frozen=True)
class ApplyResult:
    """The change set of one apply and what was recorded."""

    cell: str
    service: str
    version: str
    applied_hash: str
    changes: tuple[Change, ...]


def _path(kube: KubeClient, ref: Ref) -> str:
    return kube.resource(ref.api_version, ref.kind).item(ref.namespace or None, ref.name)


def apply_object(kube: KubeClient, obj: Mapping[str, Any]) -> Change:
    """Server-side apply one object; created or configured."""
    ref = ref_of(obj)
    status, _ = kube.call("PATCH", _path(kube, ref),
                          {"fieldManager": FIELD_MANAGER, "force": "true"}, dict(obj), APPLY)
    return Change(ref, "created" if status == 201 else "configured")


def prune_object(kube: KubeClient, ref: Ref, cell: str, service: str) -> Change:
    """Delete ``ref`` if it is still ours; skipped otherwise (never touch foreign objects)."""
    try:
        path = _path(kube, ref)
    except NotFound:
        return Change(ref, "skipped", "kind no longer served")
    live = kube.get(path)
    if live is None:
        return Change(ref, "skipped", "already gone")
    if not is_ours(live, cell, service):
        return Change(ref, "skipped", "not created by reconciler for this cell and service")
    uid = live["metadata"]["uid"]
    try:
        kube.request("DELETE", path, body={
            "apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
            "preconditions": {"uid": uid}})
    except NotFound:
        return Change(ref, "skipped", "already gone")
    return Change(ref, "deleted")


def ensure_namespace(kube: KubeClient, namespace: str) -> None:
    """Create the cell namespace when missing (it is never labelled, pruned or owned)."""
    if kube.get(f"/api/v1/namespaces/{namespace}") is not None:
        return
    try:
        kube.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except TemporaryError:  # 409: created concurrently, which is fine
        if kube.get(f"/api/v1/namespaces/{namespace}") is None:
            raise


def _owner(live: Mapping[str, Any]) -> str:
    labels = (live.get("metadata") or {}).get("labels") or {}
    cell, service = labels.get(LABEL_CELL), labels.get(LABEL_SERVICE)
    if cell and service:
        return f"it belongs to cell {cell}, service {service}"
    return "reconciler did not create it"


#: What the drift watch holds of one object now (None: not held, or not trusted).
Held = Callable[[Ref], Mapping[str, Any] | None]


def nothing_held(_: Ref) -> None:
    return None


def check_claims(kube: KubeClient, intent: Iterable[Mapping[str, Any]], cell: str,
                 service: str, namespace: str, held: Held = nothing_held) -> None:
    """Refuse (PermanentError) when an object would land outside the cell's namespace or
    would take over an existing object that is not ours for this cell and service.
    An object the watch holds as ours is not read again (the watch selects on our
    labels: a foreign object is never held, so it is always read)."""
    for obj in intent:
        ref = ref_of(obj)
        if ref.kind not in CLUSTER_KINDS and ref.namespace != namespace:
            raise PermanentError(
                f"{ref}: a namespaced object of cell {cell} must be in its namespace "
                f"{namespace}; refusing to apply {service}")
        seen = held(ref)
        if seen is not None and is_ours(seen, cell, service):
            continue
        live = kube.get(_path(kube, ref))
        if live is not None and not is_ours(live, cell, service):
            raise PermanentError(
                f"{ref} already exists and {_owner(live)}: refusing to take it over "
                f"for cell {cell}, service {service} (rename it in the manifests, or "
                f"delete the existing object)")


def apply_service(kube: KubeClient, cell: Cell, service: str, version: str,
                  rendered: Iterable[Mapping[str, Any]],
                  applied_by: str | None = None, held: Held = nothing_held) -> ApplyResult:
    """Apply ``rendered`` (from core.render) as ``service`` at ``version`` in ``cell``;
    ``applied_by`` (a sharded replica's identity) is recorded on the inventory; ``held``
    answers what the drift watch holds (see ``check_claims``).

    Requests: a namespace is looked up (and created) only when no inventory exists yet
    (an inventory lives in it), and pending references are recorded only when the apply
    may create an object the inventory does not already name — a version bump of the
    same objects is their applies and one inventory write."""
    ns = cell.kubernetes.namespace
    objs = [dict(o) for o in rendered]
    old = read_inventory(kube, cell.name, service, ns)
    if old is None:
        ensure_namespace(kube, ns)
        old = Inventory()
    previous = old.version if old.version and old.version != version else old.previous
    h = manifest_hash(objs)
    intent = sorted((decorate(o, cell.name, service, version, ns, h, previous) for o in objs),
                    key=apply_order)
    check_claims(kube, intent, cell.name, service, ns, held)
    refs = tuple(ref_of(o) for o in intent)
    recorded = set(old.refs) | set(old.pending)
    if not set(refs) <= recorded:  # a crash from here on must still know to prune them
        pending = refs + tuple(r for r in old.pending if r not in refs)
        write_inventory(kube, cell.name, service, ns, Inventory(
            old.version, old.previous, old.applied_hash, old.objects, pending))
    changes = [apply_object(kube, o) for o in intent]
    stale = sorted((set(old.refs) | set(old.pending)) - set(refs), reverse=True,
                   key=lambda r: (apply_order({"kind": r.kind, "apiVersion": r.api_version,
                                               "metadata": {"name": r.name}})))
    changes += [prune_object(kube, r, cell.name, service) for r in stale]
    write_inventory(kube, cell.name, service, ns,
                    Inventory(version, previous, h, tuple(intent), ()), applied_by)
    return ApplyResult(cell.name, service, version, h, tuple(changes))


def heal(kube: KubeClient, inventory: Inventory, refs: Iterable[Ref] | None = None
         ) -> list[Change]:
    """Re-apply the recorded manifests (all, or only ``refs``): self-heal toward what
    was applied, never toward a newer or older version."""
    wanted = set(refs) if refs is not None else None
    return [apply_object(kube, o) for o in inventory.objects
            if wanted is None or ref_of(o) in wanted]
