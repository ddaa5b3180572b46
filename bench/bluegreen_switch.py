"""Benchmark: blue-green switch back on the real control plane (docs/benchmarks.md).

A local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes)
and a blue-green service (a Deployment and a Service) in one cell, driven through the
same adapter the daemon's ``rollback`` step calls (``KubernetesApply.apply`` →
``adapters.kubernetes.bluegreen.converge``). Each round: deploy the new version as the
standby colour, switch to it, then time the rollback — from the call until the Service's
selector, read back from the API server, names the old colour again (the new colour is
removed in the same call). The daemon adds its detection to this: the breach is seen on
its next tick (``reconcile_interval``, 1 s in the e2e test, which measures breach →
switched back end to end at ≤ 2 s).

Usage: python bench/bluegreen_switch.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

from reconciler.adapters.kubernetes.client import ClientCache, KubeClient, Target
from reconciler.compose.wiring import KubernetesApply
from reconciler.core.model import (
    Cell,
    DesiredState,
    Fleet,
    HealthSettings,
    KubernetesTarget,
    RollbackPolicy,
    Service,
    SourceRef,
    StatusConfig,
    frozen_map,
)
from reconciler.localparts.k8s import start_control_plane

TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: shop, image: "registry.local/shop:{{ version }}"}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
"""


def _desired(kubeconfig: str, context: str) -> tuple[DesiredState, Cell]:
    src = SourceRef("x.yaml")
    cell = Cell("bench-c1", "canary", "r1", "r1a", 1.0,
                KubernetesTarget("bench-bg", context, kubeconfig), frozen_map(), (), src)
    fleet = Fleet("bench", (), RollbackPolicy.WAVE, True, True, 10.0, (), (), StatusConfig(),
                  src)
    svc = Service("shop", ("services/shop/app.yaml",), None, HealthSettings(), (), (), src,
                  strategy="blueGreen")
    desired = DesiredState(revision="bench", fleet=fleet, cells={cell.name: cell},
                           services={"shop": svc}, releases={}, migrations=(),
                           files={"services/shop/app.yaml": TEMPLATE})
    return desired, cell


def _colour(kube: KubeClient) -> Any:
    svc = kube.get("/api/v1/namespaces/bench-bg/services/shop") or {}
    return (svc.get("spec") or {}).get("selector", {}).get("reconciler.dev/colour")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    plane = start_control_plane("bench-bg", 1)
    try:
        desired, cell = _desired(str(plane.kubeconfig), plane.context)
        kube_apply = KubernetesApply(ClientCache())
        kube = KubeClient(Target(str(plane.kubeconfig), plane.context))
        kube_apply.apply(desired, cell, "shop", "1.0.0", {})
        kube_apply.switch(desired, cell, "shop", "1.0.0")
        times = []
        for n in range(args.rounds):
            new = f"1.0.{n + 1}"
            kube_apply.apply(desired, cell, "shop", new, {})  # the standby colour
            kube_apply.switch(desired, cell, "shop", new)
            old_colour = "blue" if _colour(kube) == "green" else "green"
            start = time.perf_counter()
            kube_apply.apply(desired, cell, "shop", f"1.0.{n}", {})  # the rollback
            while _colour(kube) != old_colour:
                time.sleep(0.001)
            times.append(time.perf_counter() - start)
        print(f"switch back (rollback step → Service selects the old colour, new colour "
              f"removed): min {min(times):.3f} s, median {statistics.median(times):.3f} s, "
              f"max {max(times):.3f} s over {len(times)} rounds "
              f"({platform.machine()}, {platform.python_version()})")
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
