"""The drift watch with the tick's store, against a real control plane: its streams never
stop to read an inventory (a wave of applies would queue every later event behind those
reads), and an object seen ahead of its inventory is judged when the inventory's own
event arrives.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache, Target
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.inventory import read_inventory, write_inventory
from reconciler.adapters.kubernetes.objects import ANN_HASH
from reconciler.adapters.kubernetes.watch import DriftEvent, DriftWatcher
from reconciler.core.model import Cell
from reconciler.localparts.k8s import ControlPlane

from .support import cell, desired, render, wait_for

pytestmark = pytest.mark.k8s
Events = queue.Queue[DriftEvent]


class Reads:
    """The inventory GETs a client sends."""

    def __init__(self, clients: ClientCache, target: Target) -> None:
        self.paths: list[str] = []
        kube = clients.for_target(target)
        real = kube.call

        def call(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            if method == "GET" and "/configmaps/reconciler-inv-" in path:
                self.paths.append(path)
            return real(method, path, *args, **kwargs)

        kube.call = call  # type: ignore[method-assign]


@pytest.fixture
def watched(cluster_a: ControlPlane) -> Iterator[tuple[Cell, Events, Reads, WatchCache]]:
    c = cell("defer", cluster_a, f"defer-{uuid.uuid4().hex[:6]}")
    state = desired([c])
    apply_service(ClientCache().for_cell(c), c, "web", "1.0.0", render(state, c, "1.0.0"))
    cache, events = WatchCache(), Events()
    clients = ClientCache(marks=cache)
    reads = Reads(clients, Target.of(c))
    watcher = DriftWatcher([c], ["web"], events.put, self_heal=lambda cell, svc: True,
                           clients=clients, cache=cache)
    watcher.start()
    try:
        assert watcher.ready.wait(30), "the watches opened"
        reads.paths.clear()  # a stream's first sight may read one before its event came
        yield c, events, reads, cache
    finally:
        watcher.stop()


def _drifts(events: Events, seconds: float) -> list[DriftEvent]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ev = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if ev.drift:
            out.append(ev)
    return out


def test_bumps_are_followed_without_reading_an_inventory(
        watched: tuple[Cell, Events, Reads, WatchCache]) -> None:
    c, events, reads, _ = watched
    state, kube = desired([c]), ClientCache().for_cell(c)
    for minor in range(1, 6):
        version = f"1.{minor}.0"
        apply_service(kube, c, "web", version, render(state, c, version))
    assert _drifts(events, 2.0) == [], "a rollout is never judged as drift"
    assert reads.paths == [], "every inventory came from its own event"


def test_an_object_seen_ahead_of_its_inventory_is_judged_at_the_inventory_event(
        cluster_a: ControlPlane, watched: tuple[Cell, Events, Reads, WatchCache]) -> None:
    c, events, reads, _ = watched
    ns, name = c.kubernetes.namespace, f"web-{c.name}"
    kube = ClientCache().for_cell(c)
    # an apply in flight, as the watch sees it: the Deployment carries a hash the inventory
    # does not record yet — and someone scales it meanwhile
    cluster_a.kubectl("-n", ns, "annotate", f"deployment/{name}", f"{ANN_HASH}=next",
                      "--overwrite")
    cluster_a.kubectl("-n", ns, "scale", f"deployment/{name}", "--replicas=4")
    assert _drifts(events, 1.5) == [], "not judged before its inventory records it"
    inv = read_inventory(kube, c.name, "web", ns)
    assert inv is not None
    objects = tuple(
        {**o, "metadata": {**o["metadata"], "annotations": {
            **(o["metadata"].get("annotations") or {}), ANN_HASH: "next"}}}
        if o["kind"] == "Deployment" else o for o in inv.objects)
    write_inventory(kube, c.name, "web", ns, replace(inv, applied_hash="next", objects=objects))
    (ev,) = wait_for("the drift judged", lambda: _drifts(events, 0.5), timeout=20)
    assert [d.field for d in ev.drift] == ["spec.replicas"], ev
    assert [str(ch.ref) for ch in ev.healed] == [f"Deployment/{ns}/{name}"]
    wait_for("replicas healed back to 2", lambda: json.loads(cluster_a.kubectl(
        "-n", ns, "get", "deployment", name, "-o", "json"))["spec"]["replicas"] == 2)
    assert reads.paths == [], "judged from the store, not a read"
