"""The Kubernetes adapter against a real local control plane (etcd, apiserver,
controller-manager, scheduler, KWOK nodes): apply, health, rollout, drift, prune, errors.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache, KubeClient, Target
from reconciler.adapters.kubernetes.objects import ANN_HASH, LABEL_VERSION
from reconciler.adapters.kubernetes.snapshot import read_fleet, read_service
from reconciler.adapters.kubernetes.watch import DriftEvent, DriftWatcher
from reconciler.core.live import LiveSnapshot, ServiceLive, snapshot_to_json
from reconciler.core.model import Cell
from reconciler.core.versions import Version
from reconciler.localparts.k8s import ControlPlane

from .support import EXTRA, WEB, cell, desired, render, wait_for

pytestmark = pytest.mark.k8s
SCHEMA = Path(__file__).parents[3] / "reconciler" / "schemas" / "live.schema.json"


def ns(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def kube(c: Cell, clients: ClientCache | None = None) -> KubeClient:
    return (clients or ClientCache()).for_cell(c)


def healthy(c: Cell, version: str) -> bool:
    live = read_service(kube(c), c, "web")
    return live.health == "Healthy" and live.version == Version.parse(version)


def deployment(plane: ControlPlane, c: Cell) -> dict[str, Any]:
    path = f"/apis/apps/v1/namespaces/{c.kubernetes.namespace}/deployments/web-{c.name}"
    return dict(plane.request("GET", path))


def test_v1_to_three_cells_in_two_namespaces_and_a_second_cluster(
        cluster_a: ControlPlane, cluster_b: ControlPlane) -> None:
    ns1, ns2, ns3 = ns("shop"), ns("shop"), ns("far")
    cells = [cell("c1", cluster_a, ns1), cell("c2", cluster_a, ns1),
             cell("c3", cluster_a, ns2), cell("c4", cluster_b, ns3)]
    state = desired(cells)
    clients = ClientCache()
    for c in cells:
        result = apply_service(clients.for_cell(c), c, "web", "1.0.0", render(state, c, "1.0.0"))
        assert sorted(ch.action for ch in result.changes) == ["created", "created"]
    def all_healthy() -> dict[str, dict[str, ServiceLive]] | None:
        f = read_fleet(state, clients)
        return f if all(s["web"].health == "Healthy" for s in f.values()) else None

    fleet = wait_for("v1 Healthy everywhere", all_healthy)
    assert set(fleet) == {"c1", "c2", "c3", "c4"}
    for name, services in fleet.items():
        live = services["web"]
        assert live.version == Version.parse("1.0.0") and live.drift == (), name
        assert live.applied_hash and live.previous_version is None
    dep = deployment(cluster_b, cells[3])
    assert dep["metadata"]["labels"][LABEL_VERSION] == "1.0.0"
    assert dep["metadata"]["annotations"][ANN_HASH] == fleet["c4"]["web"].applied_hash
    assert dep["status"]["availableReplicas"] == 2
    doc = snapshot_to_json(LiveSnapshot(services=fleet))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


def test_bump_to_v2_rolls_through_progressing_to_healthy(cluster_a: ControlPlane) -> None:
    c = cell("roll", cluster_a, ns("roll"))
    state, k = desired([c]), kube(c)
    apply_service(k, c, "web", "1.0.0", render(state, c, "1.0.0"))
    wait_for("v1 Healthy", lambda: healthy(c, "1.0.0"))
    result = apply_service(k, c, "web", "2.0.0", render(state, c, "2.0.0"))
    assert {ch.action for ch in result.changes} == {"configured"}
    seen: list[str] = []

    def probe() -> bool:
        live = read_service(k, c, "web")
        if not seen or seen[-1] != live.health:
            seen.append(live.health)
        return live.health == "Healthy"

    wait_for("v2 Healthy", probe)
    assert seen[0] == "Progressing" and seen[-1] == "Healthy", seen
    live = read_service(k, c, "web")
    assert live.version == Version.parse("2.0.0")
    assert live.previous_version == Version.parse("1.0.0")
    image = deployment(cluster_a, c)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.local/web:2.0.0"


def test_unready_version_is_degraded_after_the_progress_deadline(
        cluster_a: ControlPlane) -> None:
    c = cell("bad", cluster_a, ns("bad"))
    state, k = desired([c]), kube(c)
    apply_service(k, c, "web", "1.0.0", render(state, c, "1.0.0", deadline=3))
    wait_for("v1 Healthy", lambda: healthy(c, "1.0.0"))
    apply_service(k, c, "web", "1.1.0", render(state, c, "1.1.0", deadline=3, unready="true"))
    def degraded() -> ServiceLive | None:
        live = read_service(k, c, "web")
        return live if live.health == "Degraded" else None

    live = wait_for("Degraded", degraded, timeout=90)
    assert "progress" in live.message.lower() or "timed out" in live.message.lower()
    assert live.version == Version.parse("1.1.0")
    assert live.previous_version == Version.parse("1.0.0")
    # the old ReplicaSet keeps serving: maxUnavailable 0
    assert deployment(cluster_a, c)["status"]["availableReplicas"] == 2


def _watch(c: Cell, heal: bool) -> tuple[DriftWatcher, queue.Queue[tuple[float, DriftEvent]]]:
    events: queue.Queue[tuple[float, DriftEvent]] = queue.Queue()
    watcher = DriftWatcher([c], ["web"], lambda e: events.put((time.monotonic(), e)),
                           self_heal=lambda cell, svc: heal)
    watcher.start()
    assert watcher.ready.wait(30), "watches did not open"
    return watcher, events


def _next_drift(events: queue.Queue[tuple[float, DriftEvent]], field: str
                ) -> tuple[float, DriftEvent]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        at, ev = events.get(timeout=max(0.1, deadline - time.monotonic()))
        if any(d.field == field for d in ev.drift):
            return at, ev
    raise AssertionError(f"no drift on {field}")


def test_scale_by_another_manager_is_healed_when_self_heal_is_on(
        cluster_a: ControlPlane) -> None:
    c = cell("heal", cluster_a, ns("heal"))
    state, k = desired([c]), kube(c)
    apply_service(k, c, "web", "1.0.0", render(state, c, "1.0.0"))
    wait_for("v1 Healthy", lambda: healthy(c, "1.0.0"))
    watcher, events = _watch(c, heal=True)
    try:
        t0 = time.monotonic()
        cluster_a.kubectl("-n", c.kubernetes.namespace, "scale", f"deployment/web-{c.name}",
                          "--replicas=5")
        at, ev = _next_drift(events, "spec.replicas")
        print(f"scale drift seen after {at - t0:.3f}s")
        (d,) = [d for d in ev.drift if d.field == "spec.replicas"]
        assert d.manager == "kubectl" and "live 5" in d.message
        assert [str(ch.ref) for ch in ev.healed] == [
            f"Deployment/{c.kubernetes.namespace}/web-{c.name}"]
        wait_for("replicas back to 2",
                 lambda: deployment(cluster_a, c)["spec"]["replicas"] == 2)
        wait_for("no drift left", lambda: read_service(k, c, "web").drift == ())
        # an object deleted out of band is re-created
        cluster_a.kubectl("-n", c.kubernetes.namespace, "delete", "configmap",
                          f"web-config-{c.name}")
        wait_for("configmap re-created", lambda: cluster_a.kubectl(
            "-n", c.kubernetes.namespace, "get", "configmap", "-o", "name").count(
            f"configmap/web-config-{c.name}") == 1)
    finally:
        watcher.stop()


def test_a_finished_rollout_is_reported_as_a_health_change(cluster_a: ControlPlane) -> None:
    """The daemon plans the next wave when a cell's rollout finishes, not at its next
    interval: the watch reports the Deployment's health changes (no drift with them)."""
    c = cell("settle", cluster_a, ns("settle"))
    state, k = desired([c]), kube(c)
    apply_service(k, c, "web", "1.0.0", render(state, c, "1.0.0"))
    wait_for("v1 Healthy", lambda: healthy(c, "1.0.0"))
    watcher, events = _watch(c, heal=False)
    try:
        time.sleep(0.5)
        assert events.empty(), "first sight of a healthy workload is no change"
        apply_service(k, c, "web", "2.0.0", render(state, c, "2.0.0"))
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while "Healthy" not in seen and time.monotonic() < deadline:
            _, ev = events.get(timeout=max(0.1, deadline - time.monotonic()))
            assert ev.drift == () and ev.cell == c.name and ev.service == "web", ev
            seen.append(ev.health)
        assert seen[0] == "Progressing" and seen[-1] == "Healthy", seen
        assert healthy(c, "2.0.0")
    finally:
        watcher.stop()


def test_image_changed_by_another_manager_is_only_reported_without_self_heal(
        cluster_a: ControlPlane) -> None:
    c = cell("report", cluster_a, ns("report"))
    state, k = desired([c]), kube(c)
    apply_service(k, c, "web", "1.0.0", render(state, c, "1.0.0"))
    wait_for("v1 Healthy", lambda: healthy(c, "1.0.0"))
    watcher, events = _watch(c, heal=False)
    field = "spec.template.spec.containers[name=app].image"
    try:
        t0 = time.monotonic()
        cluster_a.kubectl("-n", c.kubernetes.namespace, "set", "image",
                          f"deployment/web-{c.name}", "app=registry.local/web:hotfix")
        at, ev = _next_drift(events, field)
        print(f"image drift seen after {at - t0:.3f}s")
        assert ev.healed == ()
        (d,) = [d for d in ev.drift if d.field == field]
        assert d.manager.startswith("kubectl") and "hotfix" in d.message
    finally:
        watcher.stop()
    containers = deployment(cluster_a, c)["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "registry.local/web:hotfix"
    assert any(d.field == field for d in read_service(k, c, "web").drift)


def test_prune_from_inventory_and_foreign_objects_untouched(cluster_a: ControlPlane) -> None:
    namespace = ns("prune")
    c = cell("prune", cluster_a, namespace)
    state, k = desired([c], WEB + EXTRA), kube(c)
    apply_service(k, c, "web", "1.0.0", render(state, c, "1.0.0"))
    cluster_a.kubectl("-n", namespace, "create", "configmap", "foreign", "--from-literal=a=b")
    # someone replaces our config map by their own object of the same name
    cluster_a.kubectl("-n", namespace, "delete", "configmap", f"web-config-{c.name}")
    cluster_a.kubectl("-n", namespace, "create", "configmap", f"web-config-{c.name}",
                      "--from-literal=theirs=yes")
    slim = desired([c], WEB.split("---\n")[0])  # only the Deployment now
    result = apply_service(k, c, "web", "1.0.1", render(slim, c, "1.0.1"))
    actions = {str(ch.ref): (ch.action, ch.message) for ch in result.changes}
    assert actions[f"ConfigMap/{namespace}/web-extra-{c.name}"] == ("deleted", "")
    action, why = actions[f"ConfigMap/{namespace}/web-config-{c.name}"]
    assert action == "skipped" and "not created by reconciler" in why
    names = cluster_a.kubectl("-n", namespace, "get", "configmap", "-o", "name").split()
    assert f"configmap/web-extra-{c.name}" not in names
    assert {"configmap/foreign", f"configmap/web-config-{c.name}"} <= set(names)


def test_errors_are_translated(cluster_b: ControlPlane) -> None:
    c = cell("errs", cluster_b, ns("errs"))
    state, k = desired([c]), kube(c)
    bad = render(state, c, "1.0.0", replicas='"many"')
    with pytest.raises(PermanentError, match="replicas: expected numeric"):
        apply_service(k, c, "web", "1.0.0", bad)
    invalid = render(state, c, "1.0.0", deadline=-1)
    with pytest.raises(PermanentError, match=r"HTTP 422: .*progressDeadlineSeconds"):
        apply_service(k, c, "web", "1.0.0", invalid)
    cluster_b.stop_apiserver()
    try:
        with pytest.raises(TemporaryError) as err:
            apply_service(kube(c), c, "web", "1.0.0", render(state, c, "1.0.0"))
        assert err.value.retry_after > 0
    finally:
        cluster_b.start_apiserver()
    result = apply_service(k, c, "web", "1.0.0", render(state, c, "1.0.0"))
    assert len(result.changes) == 2
    wait_for("Healthy after the outage", lambda: healthy(c, "1.0.0"))


def test_job_pods_succeed_or_fail_by_label(cluster_b: ControlPlane) -> None:
    namespace = ns("jobs")
    cluster_b.create_namespace(namespace)
    k = KubeClient(Target(str(cluster_b.kubeconfig), cluster_b.context))
    for name, labels in (("ok", {}), ("boom", {"reconciler.dev/test-fail": "true"})):
        k.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body={
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "m", "image": "migrate:1"}]}}}})
    from reconciler.core.health import assess

    def health(name: str) -> str:
        return assess(k.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
                      ).status

    wait_for("job ok Healthy", lambda: health("ok") == "Healthy")
    wait_for("job boom Degraded", lambda: health("boom") == "Degraded")
