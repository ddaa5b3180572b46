"""What one apply sends, against a real control plane: a version bump of the same objects
is one inventory read, the objects' applies and one inventory write (no namespace
look-up, no pending record, no ownership read of what the drift watch holds as ours);
an apply that may create an object records it as pending first, so a failure half-way
still prunes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from reconciler.adapters.errors import AdapterError, PermanentError
from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache, KubeClient, Target
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.inventory import read_inventory
from reconciler.adapters.kubernetes.objects import Ref
from reconciler.adapters.kubernetes.watch import DriftWatcher
from reconciler.core.model import Cell
from reconciler.localparts.k8s import ControlPlane

from .support import EXTRA, WEB, cell, desired, render, wait_for

pytestmark = pytest.mark.k8s


class Sent:
    """Every request one client sends, as ``METHOD last-two-path-segments``."""

    def __init__(self, kube: KubeClient) -> None:
        self.lines: list[str] = []
        real = kube.call

        def call(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            self.lines.append(f"{method} {'/'.join(path.split('/')[-2:])}")
            return real(method, path, *args, **kwargs)

        kube.call = call  # type: ignore[method-assign]


def _ns(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_a_bump_of_the_same_objects_reads_the_inventory_applies_and_records_once(
        cluster_a: ControlPlane) -> None:
    c = cell("req", cluster_a, _ns("req"))
    state = desired([c])
    kube = ClientCache().for_cell(c)
    first = Sent(kube)
    apply_service(kube, c, "web", "1.0.0", render(state, c, "1.0.0"))
    assert first.lines[:2] == ["GET configmaps/reconciler-inv-req-web",
                               f"GET namespaces/{c.kubernetes.namespace}"], \
        "a first apply looks for the namespace (none yet: no inventory)"
    assert sum(line.startswith("PATCH configmaps/reconciler-inv") for line in first.lines) == 2, \
        "new objects: recorded as pending, then recorded as applied"
    bump = Sent(kube)
    apply_service(kube, c, "web", "1.0.1", render(state, c, "1.0.1"))
    assert bump.lines == [
        "GET configmaps/reconciler-inv-req-web",
        "GET configmaps/web-config-req", "GET deployments/web-req",  # ownership: not held
        "PATCH configmaps/web-config-req", "PATCH deployments/web-req",
        "PATCH configmaps/reconciler-inv-req-web"]
    inv = read_inventory(kube, c.name, "web", c.kubernetes.namespace)
    assert inv is not None and (inv.version, inv.previous, inv.pending) == ("1.0.1", "1.0.0", ())


def test_a_failure_half_way_through_a_new_object_still_prunes_it(
        cluster_a: ControlPlane) -> None:
    c = cell("half", cluster_a, _ns("half"))
    kube = ClientCache().for_cell(c)
    apply_service(kube, c, "web", "1.0.0", render(desired([c]), c, "1.0.0"))
    # the extra ConfigMap is applied (ConfigMaps go first), then the Deployment is refused
    broken = desired([c], WEB + EXTRA)
    objs = render(broken, c, "1.1.0", replicas=-1)
    with pytest.raises(AdapterError):
        apply_service(kube, c, "web", "1.1.0", objs)
    extra = Ref("v1", "ConfigMap", c.kubernetes.namespace, "web-extra-half")
    inv = read_inventory(kube, c.name, "web", c.kubernetes.namespace)
    assert inv is not None and inv.version == "1.0.0" and extra in inv.pending
    assert kube.get(f"/api/v1/namespaces/{c.kubernetes.namespace}/configmaps/web-extra-half")
    result = apply_service(kube, c, "web", "1.0.1", render(desired([c]), c, "1.0.1"))
    assert [ch.ref for ch in result.changes if ch.action == "deleted"] == [extra]
    inv = read_inventory(kube, c.name, "web", c.kubernetes.namespace)
    assert inv is not None and inv.pending == () and extra not in inv.refs


@pytest.fixture
def watched(cluster_a: ControlPlane) -> Iterator[tuple[Cell, WatchCache]]:
    c = cell("held", cluster_a, _ns("held"))
    cache = WatchCache()
    watcher = DriftWatcher([c], ["web"], lambda _: None, clients=ClientCache(marks=cache),
                           cache=cache)
    watcher.start()
    try:
        assert watcher.ready.wait(30), "the watches opened"
        yield c, cache
    finally:
        watcher.stop()


def test_what_the_watch_holds_as_ours_is_not_read_again(
        watched: tuple[Cell, WatchCache]) -> None:
    c, cache = watched
    state, target = desired([c]), Target.of(c)
    kube = ClientCache(marks=cache).for_cell(c)

    def held(ref: Ref) -> Mapping[str, Any] | None:
        return cache.held(target, ref.api_version, ref.kind, ref.namespace or "", ref.name)

    apply_service(kube, c, "web", "1.0.0", render(state, c, "1.0.0"), held=held)
    wait_for("both objects held", lambda: all(
        cache.held(target, av, k, c.kubernetes.namespace, n) for av, k, n in (
            ("v1", "ConfigMap", "web-config-held"), ("apps/v1", "Deployment", "web-held"))))
    bump = Sent(kube)
    apply_service(kube, c, "web", "1.0.1", render(state, c, "1.0.1"), held=held)
    assert [line for line in bump.lines if line.startswith("GET")] == [
        "GET configmaps/reconciler-inv-held-web"], "ownership came from the watch"


def test_an_object_held_for_another_owner_is_read_and_refused(
        cluster_a: ControlPlane) -> None:
    ns = _ns("claim")
    one, two = cell("one", cluster_a, ns), cell("two", cluster_a, ns)
    shared = desired([one, two], WEB.replace("web-config-{{ cell.name }}", "web-config"))
    clients = ClientCache()
    apply_service(clients.for_cell(one), one, "web", "1.0.0", render(shared, one, "1.0.0"))
    live = clients.for_cell(one).get(f"/api/v1/namespaces/{ns}/configmaps/web-config")
    assert live is not None
    kube = clients.for_cell(two)
    sent = Sent(kube)
    with pytest.raises(PermanentError) as e:
        apply_service(kube, two, "web", "1.0.0", render(shared, two, "1.0.0"),
                      held=lambda ref: live if ref.name == "web-config" else None)
    assert "it belongs to cell one, service web" in str(e.value)
    assert "GET configmaps/web-config" in sent.lines, "held as another's: read, not trusted"
