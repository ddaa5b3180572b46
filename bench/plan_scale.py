"""Benchmark: load, re-load after a one-file commit, and plan a fleet of N cells x 3 services.

Usage: python bench/plan_scale.py [--cells 10000]
Prints one JSON line of timings and peak RSS. Targets (DESIGN.md §6): plan <= 1 s and
<= 300 MB RSS; re-load after changing one file <= 200 ms.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.core.live import LiveSnapshot, ServiceLive, WaveProgress
from reconciler.core.loader import ParseCache, load_repository
from reconciler.core.planner import plan
from reconciler.core.policy import ClusterRule, DatabaseRule, Policy, check_policy
from reconciler.core.versions import Version
from tests.core.support import DictSource

SERVICES = ("api", "worker", "billing")
#: The operator's policy the bench fleet satisfies (validate --policy checks every cell).
POLICY = Policy(clusters=(ClusterRule(None, None, ("{cell}",)),),
                databases=(DatabaseRule("127.0.0.1", (5432,)),))
GROUPS = ("canary", "wave1", "wave2", "wave3")


def fleet_yaml() -> str:
    waves = "\n".join(f"    - {{name: {g}, groups: [{g}], bake: 10m, maxUnavailable: 10%}}"
                      for g in GROUPS)
    return (f"apiVersion: reconciler.dev/v1\nkind: Fleet\nmetadata: {{name: bench}}\nspec:\n"
            f"  waves:\n{waves}\n")


def cell_yaml(i: int, group: str) -> str:
    return (f"apiVersion: reconciler.dev/v1\nkind: Cell\nmetadata: {{name: cell-{i:05d}}}\n"
            f"spec:\n  group: {group}\n  region: r{i % 4}\n  zone: r{i % 4}{'abc'[i % 3]}\n"
            f"  weight: 1\n  kubernetes: {{namespace: cell-{i:05d}}}\n"
            f"  databases: [{{name: main, dbname: db_{i:05d}}}]\n")


def service_files(svc: str) -> dict[str, str]:
    return {
        f"services/{svc}/service.yaml":
            f"apiVersion: reconciler.dev/v1\nkind: Service\nmetadata: {{name: {svc}}}\nspec:\n"
            f"  kubernetes: {{manifests: [k8s/deploy.yaml]}}\n  databases: [main]\n",
        f"services/{svc}/k8s/deploy.yaml":
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {svc}}}\n"
            f"spec:\n  selector: {{matchLabels: {{app: {svc}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {svc}}}}}\n"
            "    spec: {containers: [{name: app, "
            "image: 'registry.local/app:{{ version }}'}]}\n",
        f"releases/{svc}.yaml":
            f"apiVersion: reconciler.dev/v1\nkind: Release\nmetadata: {{name: {svc}}}\nspec:\n"
            f"  service: {svc}\n  versions:\n    - {{groups: [{', '.join(GROUPS)}], "
            f"version: 2.0.0}}\n",
        f"migrations/{svc}/m1.yaml":
            f"apiVersion: reconciler.dev/v1\nkind: Migration\nmetadata: {{name: m1}}\nspec:\n"
            f"  service: {svc}\n  database: main\n  requiredBy: '>=2.0.0'\n"
            f"  oldShapeUsedBy: '<2.0.0'\n  expand: {{sql: [m1.sql]}}\n",
        f"migrations/{svc}/m1.sql": "select 1;\n",
    }


def repo(n: int) -> dict[str, bytes]:
    files = {"reconciler.yaml": fleet_yaml()}
    for i in range(n):
        group = "canary" if i < n // 100 else GROUPS[1 + i % 3]
        files[f"cells/cell-{i:05d}.yaml"] = cell_yaml(i, group)
    for svc in SERVICES:
        files.update(service_files(svc))
    return {k: v.encode() for k, v in files.items()}


def live(n: int) -> LiveSnapshot:
    old, new = Version.parse("1.9.0"), Version.parse("2.0.0")
    services = {}
    for i in range(n):
        canary = i < n // 100
        v = new if canary else old
        services[f"cell-{i:05d}"] = {s: ServiceLive(v, "Healthy", old if canary else None)
                                     for s in SERVICES}
    started = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    rollout = {s: {"canary": WaveProgress(new, started)} for s in SERVICES}
    return LiveSnapshot(services=services, rollout=rollout)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"min": round(xs[0], 3), "median": round(xs[len(xs) // 2], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.cells
    files = repo(n)
    cache = ParseCache()
    t0 = time.perf_counter()
    first = load_repository(DictSource(files), cache)
    cold = time.perf_counter() - t0
    assert first.desired is not None, first.errors[:3]
    policies = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        problems = check_policy(first.desired, POLICY)
        policies.append(time.perf_counter() - t)
        assert not problems, problems[:3]
    reloads = []
    for k in range(args.repeat):
        files["releases/api.yaml"] = files["releases/api.yaml"].replace(
            b"version: 2.0.", b"version: 2.0." + str(k + 1).encode() + b"#", 1).replace(
            b"#" + str(k).encode(), b"")
        t = time.perf_counter()
        again = load_repository(DictSource(files), cache)
        reloads.append(time.perf_counter() - t)
        assert again.desired is not None and again.parsed == 1, again.errors[:3]
    snap = live(n)
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    plans, jsons = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        p = plan(first.desired, snap, now)
        plans.append(time.perf_counter() - t)
        t = time.perf_counter()
        doc = p.to_json()
        jsons.append(time.perf_counter() - t)
    print(json.dumps({
        "cells": n, "services": len(SERVICES), "files": len(files), "repeat": args.repeat,
        "cold_load_s": round(cold, 3), "policy_check_s": _stats(policies),
        "reload_one_file_s": _stats(reloads),
        "plan_s": _stats(plans), "plan_to_json_s": _stats(jsons), "steps": len(doc["steps"]),
        "due": doc["summary"]["due"], "peak_rss_mb": round(rss_mb(), 1),
    }))


if __name__ == "__main__":
    main()
