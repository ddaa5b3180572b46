"""Server-side dry-run of one service's apply: what the API server would really change.

Owns: sending the objects exactly as ``apply_service`` would (decorated with our labels
and annotations, field manager ``reconciler``, conflicts forced) as a server-side apply
with ``dryRun=All`` — nothing is written — and returning, per object, what runs now and
what the server answers, or why it would refuse. The ownership rules of the real apply
are checked the same way (an object that is someone else's would be refused). Never
writes: no namespace, inventory or object is created.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.kubernetes.apply import _owner
from reconciler.adapters.kubernetes.client import APPLY, KubeClient
from reconciler.adapters.kubernetes.errors import NotFound
from reconciler.adapters.kubernetes.objects import (
    CLUSTER_KINDS,
    FIELD_MANAGER,
    apply_order,
    decorate,
    is_ours,
    ref_of,
)
from reconciler.core.hashing import manifest_hash
from reconciler.core.model import Cell


@dataclass(frozen=True)
class DryRunAnswer:
    """One object: what runs now (None: absent), what a server-side apply would leave
    (None when refused or skipped), and why it was refused or skipped."""

    ref: str
    live: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str = ""
    skipped: str = ""


def _path(kube: KubeClient, obj: Mapping[str, Any]) -> str:
    ref = ref_of(obj)
    return kube.resource(ref.api_version, ref.kind).item(ref.namespace or None, ref.name)


def dry_run_object(kube: KubeClient, obj: Mapping[str, Any], cell: str,
                   service: str) -> DryRunAnswer:
    ref = ref_of(obj)
    try:
        path = _path(kube, obj)
    except PermanentError as e:
        return DryRunAnswer(str(ref), None, None, error=str(e))
    live = kube.get(path)
    if live is not None and not is_ours(live, cell, service):
        return DryRunAnswer(str(ref), live, None, error=(
            f"already exists and {_owner(live)} (an apply never takes an object over)"))
    try:
        _, result = kube.call("PATCH", path, {"fieldManager": FIELD_MANAGER, "force": "true",
                                              "dryRun": "All"}, dict(obj), APPLY)
    except PermanentError as e:
        return DryRunAnswer(str(ref), live, None, error=str(e))
    return DryRunAnswer(str(ref), live, result)


def dry_run_service(kube: KubeClient, cell: Cell, service: str, version: str,
                    rendered: Iterable[Mapping[str, Any]],
                    previous: str | None) -> list[DryRunAnswer]:
    """Every object of ``rendered`` as the apply of ``service`` at ``version`` in ``cell``
    would send it, dry-run on the server, in apply order."""
    ns = cell.kubernetes.namespace
    objs = [dict(o) for o in rendered]
    h = manifest_hash(objs)
    intent = sorted((decorate(o, cell.name, service, version, ns, h, previous) for o in objs),
                    key=apply_order)
    try:
        namespace = kube.get(f"/api/v1/namespaces/{ns}")
    except NotFound:
        namespace = None
    out = []
    for obj in intent:
        ref = ref_of(obj)
        if ref.kind not in CLUSTER_KINDS and ref.namespace != ns:
            out.append(DryRunAnswer(str(ref), None, None, error=(
                f"a namespaced object of cell {cell.name} must be in its namespace {ns}")))
        elif namespace is None and ref.kind not in CLUSTER_KINDS:
            out.append(DryRunAnswer(str(ref), None, None, skipped=(
                f"namespace {ns} does not exist yet (the apply creates it first); the "
                f"server cannot dry-run objects in it")))
        else:
            out.append(dry_run_object(kube, obj, cell.name, service))
    return out
