"""The fleet's objects as the drift watch last saw them, so a tick need not list them.

Owns: one store per (cluster, kind) the drift watcher streams — filled by its list,
kept current by its events — and the resource versions this process wrote, so a read
never misses the daemon's own writes. ``items`` hands a store's objects to the tick's
snapshot only when they can be trusted: the stream listed and is still heard from, and
it has seen every write this process made to that kind (waiting briefly for the event);
otherwise None, and the caller lists from the API server as before.

Resource versions are compared as integers (what etcd-backed API servers give); a
cluster whose versions are not integers is never read from the store.
Must never: hand out a store that lags this process's own writes, one whose stream
failed (the watcher forgets it until it has listed again: an unreachable cluster is a
failed snapshot, not the last state seen), or one whose stream has gone quiet for
longer than a watch lasts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.adapters.kubernetes.client import Target
from reconciler.adapters.kubernetes.objects import LABEL_SERVICE

#: How long a store may go unheard from (no list, event, bookmark or reopened watch):
#: a watch lasts 60 s and bookmarks come within it.
STALE_SECONDS = 90.0
#: How long ``items`` waits for the event of this process's own latest write.
WAIT_SECONDS = 2.0

Kind = tuple[Target, str, str]  # cluster, apiVersion, kind


def _version(obj: Mapping[str, Any]) -> int | None:
    text = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(text) if text is not None else None
    except (TypeError, ValueError):
        return None


def _ident(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass
class _Store:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    version: int = 0
    synced: bool = False
    heard: float = 0.0


class WatchCache:
    """Stores per watched (cluster, kind) and this process's write marks; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 stale_seconds: float = STALE_SECONDS,
                 wait_seconds: float = WAIT_SECONDS) -> None:
        self._clock = clock
        self._stale = stale_seconds
        self._wait = wait_seconds
        self._stores: dict[Kind, _Store] = {}
        self._written: dict[Kind, int] = {}
        self._changed = threading.Condition()

    # -- what this process wrote

    def wrote(self, target: Target, answer: Mapping[str, Any]) -> None:
        """A write's answer (the object as stored): remember its resource version when
        the watch will see it (it carries the service label the watch selects on)."""
        kind, api_version = answer.get("kind"), answer.get("apiVersion")
        version = _version(answer)
        labels = (answer.get("metadata") or {}).get("labels") or {}
        if not kind or not api_version or version is None or LABEL_SERVICE not in labels:
            return
        key = (target, str(api_version), str(kind))
        with self._changed:
            self._written[key] = max(version, self._written.get(key, 0))

    # -- what the watch feeds

    def listed(self, key: Kind, items: list[dict[str, Any]], version: str | None) -> None:
        """A fresh list: the store is exactly ``items`` as of ``version``."""
        at = _version({"metadata": {"resourceVersion": version}})
        with self._changed:
            self._stores[key] = _Store({_ident(o): o for o in items}, at or 0,
                                       at is not None, self._clock())
            self._changed.notify_all()

    def event(self, key: Kind, kind: str, obj: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED or BOOKMARK)."""
        with self._changed:
            store = self._stores.get(key)
            if store is None or not store.synced:
                return
            version = _version(obj)
            if version is None:
                store.synced = False
                return
            ident = _ident(obj)
            held = store.objects.get(ident)
            if kind != "BOOKMARK" and held is not None and (_version(held) or 0) > version:
                return  # older than what is held (a stopped watcher's last event)
            if kind == "DELETED":
                store.objects.pop(ident, None)
            elif kind != "BOOKMARK":
                store.objects[ident] = obj
            store.version = max(store.version, version)
            store.heard = self._clock()
            self._changed.notify_all()

    def heard(self, key: Kind) -> None:
        """The stream (re)opened: still alive."""
        with self._changed:
            store = self._stores.get(key)
            if store is not None:
                store.heard = self._clock()

    def forget(self, key: Kind) -> None:
        """The stream stopped or must list again: its store is not to be read."""
        with self._changed:
            self._stores.pop(key, None)

    # -- what the snapshot and the apply read

    def held(self, target: Target, api_version: str, kind: str, namespace: str,
             name: str) -> dict[str, Any] | None:
        """One object as the watch holds it now, without waiting for this process's
        writes; None when not held or the store cannot be trusted. Shared: not to be
        changed."""
        with self._changed:
            store = self._stores.get((target, api_version, kind))
            if store is None or not store.synced or \
                    self._clock() - store.heard > self._stale:
                return None
            return store.objects.get((namespace, name))

    def items(self, target: Target, api_version: str, kind: str) -> list[dict[str, Any]] | None:
        """The objects of ``kind`` in ``target``, or None when they cannot be trusted (not
        watched, not listed yet, unheard from, or behind this process's last write after
        waiting for it). The objects are shared: callers must not change them."""
        key = (target, api_version, kind)
        deadline = self._clock() + self._wait
        with self._changed:
            while True:
                store = self._stores.get(key)
                if store is None or not store.synced or \
                        self._clock() - store.heard > self._stale:
                    return None
                if store.version >= self._written.get(key, 0):
                    return list(store.objects.values())
                left = deadline - self._clock()
                if left <= 0:
                    return None
                self._changed.wait(left)
