"""The Kubernetes API schema ``validate`` checks rendered manifests against, offline.

Owns: generating ``reconciler/schemas/kubernetes.json`` from the local control plane's
``/openapi/v3`` — the kinds the product manages (the policy's default kinds, Secrets,
Namespaces, DaemonSets, PersistentVolumeClaims and the cluster RBAC kinds), each with
every definition it refers to, trimmed to what validation uses (types, properties,
required fields, items, maps, enums, one-of/all-of, references; no descriptions or
defaults), plus which apiVersions serve every kind the cluster knows (so a removed
apiVersion is named). Regenerate after changing the Kubernetes version the local parts
build (``RECONCILER_K8S_VERSION``)::

    python -m reconciler.localparts.openapi            # writes reconciler/schemas/kubernetes.json

Standard library only (the control plane's own admin client).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "schemas" / "kubernetes.json"
#: (apiVersion, kind) the product manages: the schema of each is stored.
KINDS = (
    ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"), ("v1", "Namespace"),
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"), ("batch/v1", "CronJob"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"), ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)
#: Schema keywords kept (everything else — descriptions, defaults, list/patch hints — is
#: left out: validation does not read it).
KEEP = ("type", "properties", "required", "items", "additionalProperties", "allOf", "oneOf",
        "anyOf", "enum", "$ref", "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-group-version-kind")
_REF = "#/components/schemas/"


def _trim(node: Any) -> Any:
    if isinstance(node, list):
        return [_trim(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key in KEEP:
        if key not in node:
            continue
        value = node[key]
        if key == "properties":
            out[key] = {name: _trim(v) for name, v in sorted(value.items())}
        elif key == "$ref":
            out[key] = "#/$defs/" + str(value).removeprefix(_REF)
        elif key in ("required", "enum", "x-kubernetes-group-version-kind"):
            out[key] = value
        else:
            out[key] = _trim(value)
    if list(out) == ["allOf"] and len(out["allOf"]) == 1:
        return out["allOf"][0]  # {allOf: [{$ref}]} (how v3 wraps a reference): the ref
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.removeprefix(_REF))
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _api_version(gvk: Mapping[str, str]) -> str:
    return f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"]


def trimmed(documents: Mapping[str, Mapping[str, Any]], version: str) -> dict[str, Any]:
    """The stored schema from the group-version documents of ``/openapi/v3``."""
    schemas: dict[str, Any] = {}
    for doc in documents.values():
        schemas.update(doc.get("components", {}).get("schemas", {}))
    served: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    wanted = {f"{v}/{k}" for v, k in KINDS}
    for name, schema in sorted(schemas.items()):
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            api, kind = _api_version(gvk), gvk["kind"]
            if "properties" not in schema or kind.endswith("List") or name.endswith("List"):
                continue
            served.setdefault(kind, set()).add(api)
            if f"{api}/{kind}" in wanted:
                kinds[f"{api}/{kind}"] = name
    missing = sorted(wanted - set(kinds))
    if missing:
        raise SystemExit(f"the control plane serves none of: {', '.join(missing)}")
    keep: set[str] = set()
    todo = list(kinds.values())
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        todo += sorted(found - keep)
    return {
        "kubernetesVersion": version,
        "generatedBy": "python -m reconciler.localparts.openapi",
        "kinds": dict(sorted(kinds.items())),
        "served": {k: sorted(v) for k, v in sorted(served.items())},
        "$defs": {name: _trim(schemas[name]) for name in sorted(keep)},
    }


def fetch(request: Callable[[str, str], Any]) -> tuple[dict[str, Any], str]:
    """Every group-version document of ``/openapi/v3`` and the server's version, through
    ``request(method, path)`` (the control plane's admin client)."""
    index = request("GET", "/openapi/v3")
    docs = {}
    for gv, entry in sorted(index["paths"].items()):
        if gv == "api/v1" or (gv.startswith("apis/") and gv.count("/") == 2):
            docs[gv] = request("GET", entry["serverRelativeURL"])
    version = str(request("GET", "/version")["gitVersion"])
    return docs, version


def render(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    from reconciler.localparts.k8s import K8sUnavailable, start_control_plane

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help=f"default {OUT}")
    args = ap.parse_args(argv)
    try:
        plane = start_control_plane("openapi", nodes=1)
    except K8sUnavailable as e:
        print(f"error: the local control plane is needed: {e}", file=sys.stderr)
        return 1
    try:
        docs, version = fetch(plane.request)
    finally:
        plane.stop()
    text = render(trimmed(docs, version))
    args.out.write_text(text)
    print(f"{args.out}: Kubernetes {version}, {len(text)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
