"""The tick's fleet read from the drift watch's store, against a real control plane: it
gives exactly what listing gives, lists nothing while the store can be trusted, sees
this process's own writes at once and others' changes once their event arrives, and
lists again when the watch is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.adapters.errors import TemporaryError
from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache, Target
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.snapshot import FleetReader, read_fleet
from reconciler.adapters.kubernetes.watch import DriftEvent, DriftWatcher
from reconciler.core.model import Cell, DesiredState
from reconciler.localparts.k8s import ControlPlane

from .support import cell, desired, render, wait_for

pytestmark = pytest.mark.k8s


class Lists:
    """Counts the collection GETs (lists) the reader's clients send."""

    def __init__(self, clients: ClientCache, target: Target) -> None:
        self.paths: list[str] = []
        kube = clients.for_target(target)
        real = kube.request

        def request(method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            if method == "GET" and path.endswith(("/configmaps", "/deployments")):
                self.paths.append(path)
            return real(method, path, *args, **kwargs)

        kube.request = request  # type: ignore[method-assign]


def applied(state: DesiredState, cache: WatchCache, c: Cell, version: str
            ) -> tuple[ClientCache, FleetReader]:
    """``version`` applied to ``c`` through clients marking their writes in ``cache``;
    those clients and a reader of the store."""
    clients = ClientCache(marks=cache)
    apply_service(clients.for_cell(c), c, "web", version, render(state, c, version))
    return clients, FleetReader(clients, cache)


@pytest.fixture
def fleet(cluster_a: ControlPlane) -> Iterator[tuple[DesiredState, list[Cell], WatchCache,
                                                      DriftWatcher]]:
    ns = f"wc-{uuid.uuid4().hex[:6]}"
    cells = [cell(f"w{i}", cluster_a, ns) for i in range(3)]
    state = desired([*cells, cell("w9", cluster_a, ns)])  # w9: never applied
    cache = WatchCache()
    events: list[DriftEvent] = []
    watcher = DriftWatcher(list(state.cells.values()), ["web"], events.append,
                           clients=ClientCache(marks=cache), cache=cache)
    watcher.start()
    try:
        assert watcher.ready.wait(30), "the watches opened"
        yield state, cells, cache, watcher
    finally:
        watcher.stop()


def test_the_store_gives_what_listing_gives_and_lists_nothing(
        fleet: tuple[DesiredState, list[Cell], WatchCache, DriftWatcher]) -> None:
    state, cells, cache, _ = fleet
    clients = ClientCache(marks=cache)
    for i, c in enumerate(cells):
        apply_service(clients.for_cell(c), c, "web", f"1.{i}.0", render(state, c, f"1.{i}.0"))
    target = Target.of(cells[0])
    wait_for("the applied cells Healthy", lambda: all(
        read_fleet(state, ClientCache())[c.name]["web"].health == "Healthy" for c in cells))
    listed = read_fleet(state, ClientCache())
    reader = FleetReader(clients, cache)
    lists = Lists(clients, target)
    # the controllers' last status writes reach the store by their events (milliseconds)
    got = wait_for("the store's read equal to the list's", lambda: (
        r if (r := reader(state)) == listed else None), timeout=10)
    assert lists.paths == [], "read from the watch's store"
    assert [str(got[c.name]["web"].version) for c in cells] == ["1.0.0", "1.1.0", "1.2.0"]
    assert got["w9"]["web"].health == "Missing"
    assert reader(state) == got, "the memoised second read is the same"


def test_own_writes_are_read_at_once(
        fleet: tuple[DesiredState, list[Cell], WatchCache, DriftWatcher]) -> None:
    state, cells, cache, _ = fleet
    clients = ClientCache(marks=cache)
    reader = FleetReader(clients, cache)
    lists = Lists(clients, Target.of(cells[0]))
    c = cells[0]
    for minor in range(6):  # each read straight after the write, no waiting
        version = f"2.{minor}.0"
        apply_service(clients.for_cell(c), c, "web", version, render(state, c, version))
        assert str(reader(state)[c.name]["web"].version) == version
    assert lists.paths == [], "never behind our own writes, so never listed"


def test_changes_by_others_are_read_once_their_event_arrives(
        cluster_a: ControlPlane,
        fleet: tuple[DesiredState, list[Cell], WatchCache, DriftWatcher]) -> None:
    state, cells, cache, _ = fleet
    c = cells[1]
    _, reader = applied(state, cache, c, "3.0.0")
    assert not reader(state)[c.name]["web"].drift
    cluster_a.kubectl("scale", "deployment", f"web-{c.name}", "-n", c.kubernetes.namespace,
                      "--replicas=5")
    drifted = wait_for("the scale in the store", lambda: reader(state)[c.name]["web"].drift,
                       timeout=10)
    assert any("replicas" in str(d) for d in drifted)
    wait_for("the store's read equal to the list's, once the controllers are done",
             lambda: reader(state) == read_fleet(state, ClientCache()), timeout=20)


def test_without_the_watch_the_read_lists(
        fleet: tuple[DesiredState, list[Cell], WatchCache, DriftWatcher]) -> None:
    state, cells, cache, watcher = fleet
    c = cells[2]
    clients, reader = applied(state, cache, c, "4.0.0")
    watcher.stop()
    lists = Lists(clients, Target.of(c))
    got = reader(state)
    assert sorted(lists.paths) == ["/api/v1/configmaps", "/api/v1/configmaps",
                                   "/apis/apps/v1/deployments"], \
        "the inventories, then the recorded kinds listed"
    assert str(got[c.name]["web"].version) == "4.0.0"


def test_an_unreachable_cluster_is_a_failed_read_not_the_last_state_seen(
        cluster_a: ControlPlane,
        fleet: tuple[DesiredState, list[Cell], WatchCache, DriftWatcher]) -> None:
    state, cells, cache, _ = fleet
    c = cells[0]
    clients, reader = applied(state, cache, c, "5.0.0")
    assert str(reader(state)[c.name]["web"].version) == "5.0.0"
    target = Target.of(c)
    cluster_a.stop_apiserver()
    try:
        # the streams break at once; their stores are forgotten, so the read lists
        wait_for("the store forgotten", lambda: cache.items(target, "apps/v1", "Deployment")
                 is None, timeout=20)
        with pytest.raises(TemporaryError):
            reader(state)
    finally:
        cluster_a.start_apiserver()
    wait_for("the watch listed again", lambda: cache.items(target, "apps/v1", "Deployment")
             is not None, timeout=60)
    lists = Lists(clients, target)
    assert str(reader(state)[c.name]["web"].version) == "5.0.0"
    assert lists.paths == [], "read from the store again"
