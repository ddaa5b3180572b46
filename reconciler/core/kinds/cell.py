"""Cell (cells/<cell>.yaml): group, placement, weight, Kubernetes target, TF vars, databases."""

from __future__ import annotations

from typing import Any

from reconciler.core.kinds import Built, Collector
from reconciler.core.model import Cell, DatabaseRef, KubernetesTarget, SourceRef, frozen_map
from reconciler.core.yamldoc import plain


def _database(raw: dict[str, Any]) -> DatabaseRef:
    return DatabaseRef(
        name=str(raw["name"]), dbname=str(raw["dbname"]), host=str(raw.get("host", "127.0.0.1")),
        port=int(raw.get("port", 5432)), user=str(raw.get("user", "postgres")),
        secret_env=raw.get("secretEnv"), secret_file=raw.get("secretFile"))


def _check_databases(c: Collector, dbs: list[Any]) -> None:
    seen: set[str] = set()
    for i, raw in enumerate(dbs):
        if raw["name"] in seen:
            c.add(["spec", "databases", i, "name"], f"duplicate database {raw['name']!r}")
        seen.add(raw["name"])


def build(path: str, doc: Any) -> Built:
    """Build a Cell from a schema-valid document."""
    c = Collector(path, doc)
    spec, name = doc["spec"], str(doc["metadata"]["name"])
    k8s = spec["kubernetes"]
    _check_databases(c, spec.get("databases", []))
    cell = Cell(
        name=name, group=str(spec["group"]), region=str(spec["region"]), zone=str(spec["zone"]),
        weight=float(spec["weight"]),
        kubernetes=KubernetesTarget(str(k8s["namespace"]), k8s.get("context"),
                                    k8s.get("kubeconfig")),
        terraform_vars=frozen_map(plain(spec.get("terraform", {}).get("vars", {}))),
        databases=tuple(_database(d) for d in spec.get("databases", [])),
        source=SourceRef(path, 1, 1))
    return Built("Cell", name, cell, tuple(c.problems))
