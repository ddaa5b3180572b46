"""The drift watch's store (``adapters.kubernetes.informer``): what it hands the tick's
snapshot, and when it refuses (so the snapshot lists from the API server instead).

The store is in-memory state fed by the watcher; these tests feed it the events a
watch gives. Its use against a real control plane is in
``tests/integration/k8s/test_watch_cache.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from reconciler.adapters.kubernetes.client import Target
from reconciler.adapters.kubernetes.informer import WatchCache
from reconciler.adapters.kubernetes.objects import LABEL_SERVICE

T = Target("k", "ctx")
KEY = (T, "apps/v1", "Deployment")


def obj(name: str, rv: str | None, labelled: bool = True, kind: str = "Deployment"
        ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if rv is not None:
        meta["resourceVersion"] = rv
    if labelled:
        meta["labels"] = {LABEL_SERVICE: "web"}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def names(items: list[dict[str, Any]] | None) -> list[str] | None:
    return None if items is None else sorted(o["metadata"]["name"] for o in items)


def test_nothing_is_read_before_a_list() -> None:
    cache = WatchCache()
    assert cache.items(*KEY) is None
    cache.event(KEY, "ADDED", obj("a", "5"))  # an event before any list is not a store
    assert cache.items(*KEY) is None


@pytest.mark.parametrize(("events", "expected"), [
    ([], ["a", "b"]),
    ([("ADDED", obj("c", "11"))], ["a", "b", "c"]),
    ([("MODIFIED", obj("a", "11"))], ["a", "b"]),
    ([("DELETED", obj("b", "11"))], ["a"]),
    ([("BOOKMARK", {"metadata": {"resourceVersion": "12"}})], ["a", "b"]),
    ([("DELETED", obj("zzz", "11"))], ["a", "b"]),
    ([("DELETED", obj("b", "6"))], ["a", "b"]),  # older than the object held: ignored
])
def test_events_keep_the_store_current(events: list[tuple[str, dict[str, Any]]],
                                       expected: list[str]) -> None:
    cache = WatchCache()
    cache.listed(KEY, [obj("a", "3"), obj("b", "7")], "10")
    for kind, o in events:
        cache.event(KEY, kind, o)
    assert names(cache.items(*KEY)) == expected


def test_a_modified_object_is_the_new_one() -> None:
    cache = WatchCache()
    cache.listed(KEY, [obj("a", "3")], "10")
    newer = obj("a", "11")
    cache.event(KEY, "MODIFIED", newer)
    assert cache.items(*KEY) == [newer]


def test_an_older_event_never_replaces_a_newer_object() -> None:
    cache = WatchCache()
    newer = obj("a", "9")
    cache.listed(KEY, [newer], "10")
    cache.event(KEY, "MODIFIED", obj("a", "4"))  # e.g. a stopped watcher's last event
    assert cache.items(*KEY) == [newer]


def test_a_read_waits_for_the_event_of_its_own_write() -> None:
    cache = WatchCache(wait_seconds=5.0)
    cache.listed(KEY, [obj("a", "3")], "10")
    cache.wrote(T, obj("a", "15"))
    later = threading.Timer(0.2, lambda: cache.event(KEY, "MODIFIED", obj("a", "15")))
    later.start()
    start = time.monotonic()
    got = cache.items(*KEY)
    waited = time.monotonic() - start
    later.join()
    assert got is not None and got[0]["metadata"]["resourceVersion"] == "15"
    assert 0.1 < waited < 4.0


def test_a_write_never_seen_is_not_read_past() -> None:
    cache = WatchCache(wait_seconds=0.05)
    cache.listed(KEY, [obj("a", "3")], "10")
    cache.wrote(T, obj("a", "15"))
    assert cache.items(*KEY) is None, "the store lags our own write: list instead"
    cache.event(KEY, "BOOKMARK", {"metadata": {"resourceVersion": "16"}})
    assert names(cache.items(*KEY)) == ["a"]


@pytest.mark.parametrize("answer", [
    obj("a", "99", labelled=False),   # the watch does not select it: never seen
    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"},
    obj("a", None),
    obj("a", "not-a-number"),
])
def test_writes_the_watch_cannot_show_are_not_waited_for(answer: dict[str, Any]) -> None:
    cache = WatchCache(wait_seconds=0.05)
    cache.listed(KEY, [obj("a", "3")], "10")
    cache.wrote(T, answer)
    assert names(cache.items(*KEY)) == ["a"]


def test_a_write_to_another_cluster_or_kind_does_not_hold_this_one() -> None:
    cache = WatchCache(wait_seconds=0.05)
    cache.listed(KEY, [obj("a", "3")], "10")
    cache.wrote(Target("other", None), obj("a", "50"))
    cache.wrote(T, obj("c", "50", kind="ConfigMap") | {"apiVersion": "v1"})
    assert names(cache.items(*KEY)) == ["a"]


def test_a_quiet_stream_goes_stale_until_heard_from() -> None:
    clock = Clock()
    cache = WatchCache(clock=clock, stale_seconds=90.0)
    cache.listed(KEY, [obj("a", "3")], "10")
    clock.now += 91
    assert cache.items(*KEY) is None
    cache.heard(KEY)  # the watch reopened
    assert names(cache.items(*KEY)) == ["a"]
    clock.now += 91
    cache.event(KEY, "BOOKMARK", {"metadata": {"resourceVersion": "12"}})
    assert names(cache.items(*KEY)) == ["a"]


@pytest.mark.parametrize("version", [None, "", "abc"])
def test_a_cluster_without_integer_versions_is_never_read(version: str | None) -> None:
    cache = WatchCache()
    cache.listed(KEY, [obj("a", "x")], version)
    assert cache.items(*KEY) is None


def test_an_event_without_an_integer_version_unsyncs_the_store() -> None:
    cache = WatchCache()
    cache.listed(KEY, [obj("a", "3")], "10")
    cache.event(KEY, "MODIFIED", obj("a", "later"))
    assert cache.items(*KEY) is None


def test_forget_stops_reads_until_the_next_list() -> None:
    cache = WatchCache()
    cache.listed(KEY, [obj("a", "3")], "10")
    cache.forget(KEY)
    assert cache.items(*KEY) is None
    cache.event(KEY, "ADDED", obj("b", "12"))
    assert cache.items(*KEY) is None
    cache.listed(KEY, [obj("b", "12")], "12")
    assert names(cache.items(*KEY)) == ["b"]
