"""Model builders and polling helpers for the Kubernetes integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

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
)
from reconciler.core.render import RenderContext, render_service
from reconciler.localparts.k8s import ControlPlane

T = TypeVar("T")
TEMPLATE_PATH = "services/web/kubernetes/app.yaml"

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-{{ cell.name }}
spec:
  replicas: {{ vars.replicas }}
  progressDeadlineSeconds: {{ vars.deadline }}
  selector: {matchLabels: {app: web, cell: "{{ cell.name }}"}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata:
      labels:
        app: web
        cell: "{{ cell.name }}"
        reconciler.dev/test-unready: "{{ vars.unready }}"
    spec:
      containers:
      - name: app
        image: registry.local/web:{{ version }}
        env:
        - {name: ZONE, value: "{{ cell.zone }}"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config-{{ cell.name }}
data: {version: "{{ version }}", region: "{{ cell.region }}"}
"""

EXTRA = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-extra-{{ cell.name }}
data: {note: extra}
"""

VARS = {"replicas": 2, "deadline": 600, "unready": "false"}


def cell(name: str, plane: ControlPlane, namespace: str, group: str = "canary") -> Cell:
    return Cell(name=name, group=group, region="eu-west-1", zone="eu-west-1a", weight=1.0,
                kubernetes=KubernetesTarget(namespace=namespace, context=plane.context,
                                            kubeconfig=str(plane.kubeconfig)),
                terraform_vars=dict(VARS), databases=(), source=SourceRef(f"cells/{name}.yaml"))


def desired(cells: list[Cell], template: str = WEB) -> DesiredState:
    fleet = Fleet(name="test", waves=(), rollback_policy=RollbackPolicy.WAVE,
                  parallel_rollback=True, self_heal=True, canary_max_weight_percent=10.0,
                  alarms=(), time_windows=(),
                  status=StatusConfig(), source=SourceRef("reconciler.yaml"))
    web = Service(name="web", manifests=(TEMPLATE_PATH,), terraform=None,
                  health=HealthSettings(), alarms=(), databases=(),
                  source=SourceRef("services/web/service.yaml"))
    return DesiredState(revision="r1", fleet=fleet, cells={c.name: c for c in cells},
                        services={"web": web}, releases={}, migrations=(),
                        files={TEMPLATE_PATH: template})


def render(state: DesiredState, c: Cell, version: str, **overrides: Any) -> list[dict[str, Any]]:
    ctx = RenderContext(version, c, "web", {}, {**VARS, **overrides})
    return render_service(state, ctx)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0,
             interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
