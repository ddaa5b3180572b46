"""Service (services/<svc>/service.yaml): manifests, Terraform stack, health, alarms."""

from __future__ import annotations

import itertools
from typing import Any

from reconciler.core.durations import resolve, seconds
from reconciler.core.kinds import Built, Collector
from reconciler.core.kinds.alarmrule import alarms
from reconciler.core.model import (
    ChartArchive,
    HealthSettings,
    HelmChart,
    Service,
    SourceRef,
    Traffic,
)

#: Upper bound of a pause or shadow phase (a pull request cannot stall a cell longer).
MAX_PHASE_SECONDS = 24 * 3600


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
    values = _paths(c, [*keys, "values"], doc.get("values", []))
    release = doc.get("releaseName", name)
    if isinstance(doc["chart"], dict):  # a pinned archive of the operator's chart cache
        a = doc["chart"]
        archive = ChartArchive(str(a["name"]), str(a["version"]), str(a["digest"]), c.path)
        return HelmChart("", values, release, archive)
    chart = _dir(c, [*keys, "chart"], doc["chart"])
    return None if chart is None else HelmChart(chart, values, release)


def _phase(c: Collector, keys: list[str | int], value: object, default: int) -> int:
    try:
        n = seconds(value, default)
    except ValueError as e:
        c.add(keys, str(e))
        return default
    if n > MAX_PHASE_SECONDS:
        c.add(keys, f"{value!r} is longer than 24h")
        return default
    return n


def _traffic(c: Collector, spec: dict[str, Any], strategy: str) -> Traffic:
    """The canary steps and the shadow phase, bounded: at most 10 steps, weights 1-100
    strictly increasing and ending at 100, pauses and shadows at most 24h."""
    canary, shadow = spec.get("canary"), spec.get("shadow")
    if canary is not None and strategy != "canary":
        c.add(["spec", "canary"], "canary: needs strategy: canary")
    if shadow is not None and strategy not in ("blueGreen", "canary"):
        c.add(["spec", "shadow"], "shadow: needs strategy: blueGreen or canary")
    if strategy == "canary" and canary is None:
        c.add(["spec", "strategy"], "strategy: canary needs canary.steps (e.g. [10, 50, 100])")
    steps: tuple[int, ...] = (100,)
    pause = 60
    if canary is not None and strategy == "canary":
        steps = tuple(int(s) for s in canary["steps"])
        for i, (a, b) in enumerate(itertools.pairwise(steps)):
            if b <= a:
                c.add(["spec", "canary", "steps", i + 1],
                      f"canary steps must increase: {b} after {a}")
        if steps[-1] != 100:
            c.add(["spec", "canary", "steps", len(steps) - 1],
                  f"the last canary step must be 100 (the promotion), not {steps[-1]}")
        pause = _phase(c, ["spec", "canary", "pause"], canary.get("pause"), 60)
    shadow_s = _phase(c, ["spec", "shadow", "duration"], shadow["duration"], 0) \
        if shadow is not None else 0
    if shadow is not None and shadow_s == 0:
        c.add(["spec", "shadow", "duration"], "a shadow phase needs a duration over 0")
    return Traffic(steps, pause, shadow_s)


def build(path: str, doc: Any) -> Built:
    """Build a Service from a schema-valid document."""
    c = Collector(path, doc)
    spec, name = doc["spec"], str(doc["metadata"]["name"])
    health = spec.get("health", {})
    kube = spec.get("kubernetes", {})
    manifests = kube.get("manifests", [])
    strategy = str(spec.get("strategy", "rolling"))
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
        strategy=strategy, traffic=_traffic(c, spec, strategy))
    return Built("Service", name, svc, tuple(c.problems))
