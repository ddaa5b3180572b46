"""Benchmark: a canary step's transition after its pause, through a real ``reconciler run``
(docs/benchmarks.md; issue #17: <= 1 s).

A local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes)
with the Gateway API CRDs (hack/gateway-api.sh), a one-cell fleet in a plain directory
(the daemon watches it; no Git, Terraform, database or Prometheus in the way) and a
``strategy: canary`` service (``canary.steps [10, 50, 100]``, a ``shadow`` phase first)
whose Deployment, Service and HTTPRoute the daemon applies. Each round releases the next
version; the HTTPRoute and the service's inventory are read every 5 ms. For every step
after the first traffic (mirror → 10%, 10% → 50%, 50% → the switch to 100%) the
transition is the time from the end of the phase before it — the instant the daemon
recorded for that phase (inventory ``colours.since``) plus its pause or shadow duration —
until the HTTPRoute read back from the API server shows the next step. The daemon runs
with its default ``reconcile_interval`` (10 s): it ticks at a phase's end on its own.

Usage: python bench/canary_step.py [--rounds 5] [--pause 2] [--shadow 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.adapters.kubernetes.inventory import inventory_name
from reconciler.localparts.gatewayapi import install_crds
from reconciler.localparts.k8s import start_control_plane
from reconciler.testing.gitserver import free_port

NS = "bench-canary"
APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: bench-canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: shop, image: "registry.local/shop:{{ version }}"}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: bench-canary}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: bench-canary}
spec:
  parentRefs: [{name: cell-gateway}]
  rules: [{backendRefs: [{name: shop, port: 80}]}]
"""


def _doc(kind: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "reconciler.dev/v1", "kind": kind,
                       "metadata": {"name": name}, "spec": spec}, indent=1)


def write_fleet(repo: Path, kubeconfig: Path, pause: int, shadow: int) -> None:
    for d in ("cells", "releases", "services/shop/kubernetes"):
        (repo / d).mkdir(parents=True)
    (repo / "reconciler.yaml").write_text(_doc("Fleet", "bench", {
        "waves": [{"name": "all", "groups": ["all"], "bake": "0s", "maxUnavailable": 1}],
        "selfHeal": True, "rollout": {"canaryMaxWeightPercent": 100}}))
    (repo / "cells" / "c1.yaml").write_text(_doc("Cell", "c1", {
        "group": "all", "region": "r1", "zone": "r1a", "weight": 1,
        "kubernetes": {"namespace": NS, "kubeconfig": str(kubeconfig)}}))
    (repo / "services" / "shop" / "kubernetes" / "app.yaml").write_text(APP)
    (repo / "services" / "shop" / "service.yaml").write_text(_doc("Service", "shop", {
        "strategy": "canary", "canary": {"steps": [10, 50, 100], "pause": f"{pause}s"},
        "shadow": {"duration": f"{shadow}s"},
        "kubernetes": {"manifests": ["kubernetes/app.yaml"]},
        "health": {"progressDeadline": "60s"}}))
    set_version(repo, "1.0.0")


def set_version(repo: Path, version: str) -> None:
    tmp = repo / "releases" / ".shop.tmp"
    tmp.write_text(_doc("Release", "shop", {
        "service": "shop", "versions": [{"groups": ["all"], "version": version}]}))
    tmp.rename(repo / "releases" / "shop.yaml")


def _read(kube: KubeClient) -> tuple[dict[str, int], bool, dict[str, Any]]:
    """The route's weights by backend, whether it mirrors, the inventory's colours."""
    route = kube.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/shop")
    inv = kube.get(f"/api/v1/namespaces/{NS}/configmaps/{inventory_name('c1', 'shop')}")
    rule = ((route or {}).get("spec") or {}).get("rules", [{}])[0]
    weights = {str(b["name"]): int(b.get("weight", 1)) for b in rule.get("backendRefs") or []}
    mirror = any(f.get("type") == "RequestMirror" for f in rule.get("filters") or [])
    colours = json.loads(((inv or {}).get("data") or {}).get("colours") or "{}")
    return weights, mirror, colours


def _phase(weights: dict[str, int], mirror: bool, canary: str) -> str:
    """The phase the route shows for the canary colour's backend."""
    if mirror:
        return "mirror"
    w = weights.get(f"shop-{canary}", 0)
    return "100%" if w == 100 else f"{w}%"


def round_trip(kube: KubeClient, repo: Path, version: str, pause: int, shadow: int,
               timeout: float = 120) -> list[tuple[str, float]]:
    """Release ``version``; (transition, seconds after the phase before it ended)."""
    deadline = time.monotonic() + timeout
    while True:  # the serving colour, once the last switch is recorded everywhere
        weights, _, colours = _read(kube)
        serving = [n[5:] for n, w in weights.items() if w == 100]
        if serving and serving[0] == colours.get("active"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the route and the inventory disagree: {weights} {colours}")
        time.sleep(0.01)
    canary = "green" if serving[0] == "blue" else "blue"
    set_version(repo, version)
    seen: list[tuple[str, float]] = []  # phase on the route, wall time first seen
    since: dict[str, float] = {}  # phase -> when the daemon recorded it (inventory)
    while time.monotonic() < deadline:
        weights, mirror, colours = _read(kube)
        now = time.time()
        phase = _phase(weights, mirror, canary)
        if not seen or seen[-1][0] != phase:
            seen.append((phase, now))
        if colours.get("since") and colours.get("active") != canary:
            rec = "mirror" if colours.get("mirror") else f"{colours.get('weight') or 0}%"
            since[rec] = datetime.fromisoformat(colours["since"]).timestamp()
        if phase == "100%":
            break
        time.sleep(0.005)
    else:
        raise TimeoutError(f"{version} did not reach 100% in {timeout}s: {seen}")
    out = []
    for (p, _), (q, t) in itertools.pairwise(seen):
        if p in since:
            hold = shadow if p == "mirror" else pause
            out.append((f"{p} → {q}", t - (since[p] + hold)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pause", type=int, default=2)
    ap.add_argument("--shadow", type=int, default=1)
    args = ap.parse_args()
    plane = start_control_plane("bench-canary", 1)
    proc = None
    try:
        install_crds(plane)
        plane.create_namespace(NS)
        tmp = Path(tempfile.mkdtemp(prefix="bench-canary-"))
        repo = tmp / "repo"
        write_fleet(repo, plane.kubeconfig, args.pause, args.shadow)
        cfg = tmp / "daemon.yaml"
        cfg.write_text(json.dumps({"repo": {"url": str(repo)}, "listen":
                                   f"127.0.0.1:{free_port()}", "state_dir": str(tmp / "state"),
                                   "poll_interval": "1s", "leader": {"kind": "none"}}))
        log = (tmp / "daemon.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--config",
                                 str(cfg)], stderr=log, stdout=subprocess.DEVNULL,
                                env=dict(os.environ))
        kube = KubeClient(Target(str(plane.kubeconfig), plane.context))
        deadline = time.monotonic() + 120
        while _read(kube)[2].get("active") is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"1.0.0 not installed; see {tmp / 'daemon.log'}")
            time.sleep(0.1)
        times: dict[str, list[float]] = {}
        for n in range(args.rounds):
            for name, secs in round_trip(kube, repo, f"1.0.{n + 1}", args.pause, args.shadow):
                times.setdefault(name, []).append(secs)
        every = [t for ts in times.values() for t in ts]
        for name, ts in times.items():
            print(f"  {name:<14} min {min(ts):.3f} s, median {statistics.median(ts):.3f} s, "
                  f"max {max(ts):.3f} s")
        print(f"canary step after its pause (phase end → HTTPRoute shows the next step): "
              f"median {statistics.median(every):.3f} s, max {max(every):.3f} s over "
              f"{len(every)} transitions in {args.rounds} rounds (pause {args.pause} s, "
              f"shadow {args.shadow} s; {platform.machine()}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()})")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        plane.stop()


if __name__ == "__main__":
    main()
