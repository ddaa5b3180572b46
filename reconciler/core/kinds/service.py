"""Service (services/<svc>/service.yaml): manifests, Terraform stack, health, alarms."""

from __future__ import annotations

from typing import Any

from reconciler.core.durations import resolve, seconds
from reconciler.core.kinds import Built, Collector
from reconciler.core.kinds.alarmrule import alarms
from reconciler.core.model import HealthSettings, HelmChart, Service, SourceRef


def _paths(c: Collector, keys: list[str | int], rels: list[str]) -> tuple[str, ...]:
    out = []
    for i, rel in enumerate(rels):
        try:
            out.append(resolve(c.path, str(rel)))
        except ValueError as e:
            c.add([*keys, i], str(e))
    return tuple(out)


def _stack(c: Collector, spec: dict[str, Any]) -> str | None:
    if "terraform" not in spec:
        return None
    try:
        return resolve(c.path, str(spec["terraform"]["stack"]))
    except ValueError as e:
        c.add(["spec", "terraform", "stack"], str(e))
        return None


def _dir(c: Collector, keys: list[str | int], rel: object) -> str | None:
    try:
        return resolve(c.path, str(rel))
    except ValueError as e:
        c.add(keys, str(e))
        return None


def _helm(c: Collector, spec: dict[str, Any], name: str) -> HelmChart | None:
    doc = spec.get("kubernetes", {}).get("helm")
    if doc is None:
        return None
    keys: list[str | int] = ["spec", "kubernetes", "helm"]
    chart = _dir(c, [*keys, "chart"], doc["chart"])
    values = _paths(c, [*keys, "values"], doc.get("values", []))
    return None if chart is None else HelmChart(chart, values, doc.get("releaseName", name))


def build(path: str, doc: Any) -> Built:
    """Build a Service from a schema-valid document."""
    c = Collector(path, doc)
    spec, name = doc["spec"], str(doc["metadata"]["name"])
    health = spec.get("health", {})
    kube = spec.get("kubernetes", {})
    manifests = kube.get("manifests", [])
    svc = Service(
        name=name,
        manifests=_paths(c, ["spec", "kubernetes", "manifests"], manifests),
        terraform=_stack(c, spec),
        health=HealthSettings(seconds(health.get("progressDeadline"), 600),
                              seconds(health.get("minReady"), 0)),
        alarms=alarms(c, ["spec", "alarms"], spec.get("alarms", [])),
        databases=tuple(str(d) for d in spec.get("databases", [])),
        source=SourceRef(path, 1, 1),
        kustomize=(_dir(c, ["spec", "kubernetes", "kustomize"], kube["kustomize"])
                   if "kustomize" in kube else None),
        helm=_helm(c, spec, name),
        strategy=str(spec.get("strategy", "rolling")))
    return Built("Service", name, svc, tuple(c.problems))
