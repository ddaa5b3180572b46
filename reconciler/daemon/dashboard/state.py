"""The dashboard's data: the latest tick's views, built off the tick's thread.

Owns: taking every tick's report (a tick listener that only records it), building the
JSON documents the API serves from it — ``/api/status`` is ``status_json``, the very
document ``reconciler status -o json`` prints, and the fleet map, rollouts, history and
cell pages come from ``reconciler.core.dashboard``/``history`` — serialised once per
tick (gzip too) with an etag each, and after every tick one ``tick`` event to every
open stream naming those etags, so a page fetches a document only when it changed and
nothing while the fleet is idle. The canary panel's series are read from Prometheus here
(while a rollout is in flight, at most every ``CANARY_EVERY`` seconds) and pushed in a
``canary`` event. Every body passes through the log redaction of registered secrets.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from reconciler.adapters.errors import AdapterError
from reconciler.core.dashboard import (
    Cohorts,
    Places,
    canary_view,
    cell_view,
    cohort_alarms,
    cohorts,
    fleet_view,
    places,
    rollout_view,
    steps_by_service,
)
from reconciler.core.history import CommitRecord, history_events, rejected_event
from reconciler.core.live import format_time
from reconciler.core.model import DesiredState
from reconciler.core.statusdocs import status_directory
from reconciler.core.statusview import status_json
from reconciler.daemon.config import DashboardConfig
from reconciler.daemon.dashboard.sse import SseHub, event
from reconciler.daemon.logs import redact
from reconciler.engine.tick import TickReport

log = logging.getLogger("reconciler.dashboard")

#: Canary series are read from Prometheus at most this often (seconds).
CANARY_EVERY = 2.0
#: At most this many cells of a cohort are named in one query (a sample beyond).
COHORT_SAMPLE = 50
#: Step outcomes kept per cell for its page.
RECENT_STEPS = 20
#: More changed cells than this in one tick: the event says "all".
CHANGED_LIMIT = 500


class HistoryReader(Protocol):
    """The followed branch's recent commits, newest first (``adapters.git.log``)."""

    def recent(self) -> Sequence[CommitRecord]:
        ...


#: (query, window seconds, step seconds) → (unix time, value) points.
RangeQuery = Callable[[str, int, float], Sequence[tuple[float, float]]]


@dataclass(frozen=True)
class DashboardSources:
    """What ``reconciler.compose`` plugs in: the Git history, a Prometheus range query
    (None: that panel says so)."""

    history: HistoryReader | None = None
    query: RangeQuery | None = None


@dataclass(frozen=True)
class Body:
    """A serialised document: its bytes, gzipped bytes and etag."""

    raw: bytes
    gz: bytes
    etag: str

    @staticmethod
    def of(doc: Any) -> Body:
        raw = redact(json.dumps(doc, separators=(",", ":"), ensure_ascii=False)).encode()
        return Body(raw, gzip.compress(raw, 5), hashlib.sha256(raw).hexdigest()[:20])


@dataclass(frozen=True)
class _Tick:
    seq: int
    report: TickReport
    desired: DesiredState | None
    at: datetime


@dataclass
class _Views:
    seq: int
    tick: _Tick
    bodies: dict[str, Body] = field(default_factory=dict)
    #: The fleet document (to tell which cells changed) and the status document, kept
    #: as values: ``/api/status`` is serialised only when asked for (the page never is).
    fleet: Mapping[str, Any] | None = None
    status: Mapping[str, Any] | None = None


def promql_regex(cells: Sequence[str]) -> str:
    """A PromQL string-literal body matching exactly ``cells``."""
    return "|".join(re.escape(c).replace("\\", "\\\\") for c in cells)


class Dashboard:
    """Views of the latest tick, and the streams told about each new one."""

    def __init__(self, cfg: DashboardConfig, interval: int, sources: DashboardSources,
                 desired: Callable[[], DesiredState | None],
                 ready: Callable[[], tuple[bool, str]],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.cfg, self.interval, self.sources = cfg, interval, sources
        self._desired, self._ready, self._clock = desired, ready, clock
        self.hub = SseHub(cfg.max_streams)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._latest: _Tick | None = None
        self._views: _Views | None = None
        self._told: _Views | None = None  # the views the streams were last told about
        self._previous: _Views | None = None  # the views before the latest
        self._recent: dict[str, deque[dict[str, Any]]] = {}
        self._rejected: deque[dict[str, Any]] = deque(maxlen=20)
        self._canary: dict[str, Body] = {}
        self._canary_at = 0.0
        self._history: Body | None = None
        self._places: tuple[DesiredState, Places] | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard", daemon=True)
        self.started = False

    # -- the tick listener (runs in the tick's thread: records only) --------------------
    def on_tick(self, report: TickReport) -> None:
        now = self._clock()
        desired = self._desired()
        with self._lock:
            seq = (self._latest.seq if self._latest else 0) + 1
            self._latest = _Tick(seq, report, desired, now)
            stamp = format_time(now)
            for o in report.outcomes:
                key = o.step.cell or f"*{o.step.service}"
                q = self._recent.setdefault(key, deque(maxlen=RECENT_STEPS))
                q.append({"at": stamp, "kind": str(o.step.kind), "service": o.step.service,
                          "wave": o.step.wave, "from": o.step.from_version,
                          "to": o.step.to_version, "migration": o.step.migration,
                          "status": str(o.status), "detail": o.detail[:500]})
            if report.errors and not any(e.get("revision") == report.revision
                                         for e in self._rejected):
                self._rejected.appendleft(rejected_event(report.revision, report.errors, now))
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        self.hub.start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.hub.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._wake.wait(1.0):
                continue
            self._wake.clear()
            if self._stopping.is_set():
                return
            if self.hub.clients == 0:  # nobody watching: views are built on request
                continue
            try:
                self.push()
            except Exception:  # the dashboard never takes the daemon down
                log.exception("dashboard: building the views failed")

    def push(self) -> None:
        """Build the views of the latest tick and tell every stream (no-op when the
        streams were told already)."""
        views = self.views()
        if views is None:
            return
        told = self._told or self._previous
        if told is None or views.seq != told.seq:
            self._told = views
            self.hub.broadcast(event("tick", json.dumps(self.tick_event(views, told),
                                                        separators=(",", ":")), views.seq))
        for body in self._refresh_canary(views, force=False).values():
            self.hub.broadcast(event("canary", body.raw.decode()))

    # -- views ----------------------------------------------------------------------------
    def views(self) -> _Views | None:
        """The views of the latest tick (built now if they are not yet)."""
        with self._lock:
            tick = self._latest
        if tick is None:
            return None
        with self._build_lock:
            if self._views is not None and self._views.seq == tick.seq:
                return self._views
            self._previous = self._views
            # many small acyclic values: the cyclic collector's passes over them cost more
            # than the build itself at fleet scale (as for the planner)
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                self._views = self._build(tick, self._views)
            finally:
                if was_enabled:
                    gc.enable()
            return self._views

    def _build(self, tick: _Tick, before: _Views | None) -> _Views:
        v = _Views(tick.seq, tick)
        report, desired = tick.report, tick.desired
        if report.plan is not None and report.live is not None and desired is not None:
            v.status = status_json(report.plan, report.live, desired)
            if self._places is None or self._places[0] is not desired:
                self._places = (desired, places(desired))
            v.fleet = fleet_view(desired, report.plan, v.status, report.live,
                                 self._places[1])
            v.bodies["fleet"] = Body.of(v.fleet)
            steps = steps_by_service(report.plan)
            for svc in sorted(desired.services):
                v.bodies[f"rollout/{svc}"] = Body.of(rollout_view(
                    desired, report.plan, report.live, svc, steps.get(svc, [])))
        elif before is not None:  # not planned this tick: keep what the page shows
            v.bodies = {k: b for k, b in before.bodies.items() if k != "history"}
            v.fleet, v.status = before.fleet, before.status
        v.bodies["history"] = self._history_body(desired)
        return v

    def _history_body(self, desired: DesiredState | None) -> Body:
        status_dir = status_directory(desired.fleet.status if desired else None)
        events: list[dict[str, Any]] = []
        error, source = "", "none"
        if self.sources.history is not None:
            source = "git"
            try:
                events = history_events(self.sources.history.recent(), status_dir)
            except AdapterError as e:
                error = str(e)
        with self._lock:
            rejected = list(self._rejected)
        seen = {e.get("revision") for e in events if e["kind"] == "rejected"}
        events += [e for e in rejected if e.get("revision") not in seen]
        events.sort(key=lambda e: str(e.get("at")), reverse=True)
        body = Body.of({"source": source, "error": error, "events": events[:100]})
        if self._history is not None and self._history.etag == body.etag:
            return self._history
        self._history = body
        return body

    def body(self, name: str) -> Body | None:
        """A document by name: ``status``, ``fleet``, ``history``, ``rollout/<svc>``,
        ``cell/<name>``, ``canary/<svc>``, ``meta``."""
        if name == "meta":
            return Body.of(self.meta())
        views = self.views()
        if name == "status" and views is not None and views.status is not None:
            with self._build_lock:
                if "status" not in views.bodies:
                    views.bodies["status"] = Body.of(views.status)
        if name.startswith("cell/"):
            return self._cell(views, name[5:])
        if name.startswith("canary/"):
            return self._canary_body(views, name[7:])
        if views is None:
            return None
        return views.bodies.get(name)

    def _cell(self, views: _Views | None, cell: str) -> Body | None:
        if views is None:
            return None
        t = views.tick
        if t.desired is None or t.report.plan is None or t.report.live is None:
            return None
        with self._lock:
            recent = list(self._recent.get(cell, ()))
        doc = cell_view(t.desired, t.report.plan, t.report.live, cell, recent)
        return None if doc is None else Body.of(doc)

    def meta(self) -> dict[str, Any]:
        """What the page needs first: the tick interval, the last tick, the services."""
        with self._lock:
            tick = self._latest
        ok, why = self._ready()
        now = self._clock()
        desired = tick.desired if tick else None
        views = self._views if tick and self._views and self._views.seq == tick.seq else None
        return {
            "interval": self.interval, "ready": ok, "readiness": why,
            "seq": tick.seq if tick else 0,
            "lastTickAt": format_time(tick.at) if tick else None,
            "lastTickAgeSeconds": round((now - tick.at).total_seconds(), 3) if tick else None,
            "revision": tick.report.revision if tick else None,
            "services": sorted(desired.services) if desired else [],
            "etags": {k: b.etag for k, b in views.bodies.items()} if views else {},
            "canaryConfigured": self.sources.query is not None,
            "commitUrl": self.cfg.commit_url,
        }

    def tick_event(self, views: _Views, before: _Views | None) -> dict[str, Any]:
        """The ``tick`` event: which documents changed (by etag) and which cells."""
        t = views.tick
        changed: list[str] | None = sorted({o.step.cell for o in t.report.outcomes
                                            if o.step.cell})
        was, now = (before.bodies.get("fleet") if before else None), views.bodies.get("fleet")
        if before is None or before.fleet is None or views.fleet is None:
            changed = None
        elif was is None or now is None or was.etag != now.etag:
            diff = changed_cells(before.fleet, views.fleet)
            changed = None if diff is None else sorted(set(changed or ()) | set(diff))
        if changed is not None and len(changed) > CHANGED_LIMIT:
            changed = None
        ok, why = self._ready()
        return {"seq": views.seq, "at": format_time(t.at), "atMs": t.at.timestamp() * 1000,
                "revision": t.report.revision,
                "interval": self.interval, "ready": ok, "readiness": why,
                "planned": t.report.plan is not None,
                "snapshotError": redact(t.report.snapshot_error),
                "errors": len(t.report.errors), "steps": len(t.report.outcomes),
                "etags": {k: b.etag for k, b in views.bodies.items()}, "cells": changed}

    # -- canary -----------------------------------------------------------------------------
    def _canary_body(self, views: _Views | None, service: str) -> Body | None:
        if views is None or views.tick.desired is None or \
                service not in views.tick.desired.services:
            return None
        self._refresh_canary(views, force=False)
        with self._lock:
            return self._canary.get(service)

    def _refresh_canary(self, views: _Views, force: bool) -> dict[str, Body]:
        """Read the canary series again when due; the documents that changed."""
        t = views.tick
        if t.desired is None or t.report.plan is None or t.report.live is None:
            return {}
        mono = time.monotonic()
        with self._lock:
            due = force or mono - self._canary_at >= CANARY_EVERY
            if due:
                self._canary_at = mono
        if not due:
            return {}
        changed = {}
        for svc in sorted(t.desired.services):
            c = cohorts(t.report.plan, svc)
            alarms = cohort_alarms(t.desired, t.report.live, c) if c.canary_version else []
            metrics, sampled, error = self._series(c)
            body = Body.of(canary_view(c, metrics, alarms, self.cfg.canary_window, sampled,
                                       error))
            with self._lock:
                old = self._canary.get(svc)
                if old is None or old.etag != body.etag:
                    self._canary[svc] = body
                    changed[svc] = body
        return changed

    def _series(self, c: Cohorts) -> tuple[dict[str, dict[str, Sequence[tuple[float, float]]]],
                                            dict[str, int], str]:
        query = self.sources.query
        if query is None or c.canary_version is None:
            return {}, {}, "" if query else "no prometheus_url configured"
        window = self.cfg.canary_window
        step = max(1.0, window / 60)
        out: dict[str, dict[str, Sequence[tuple[float, float]]]] = {}
        sampled = {}
        try:
            for name, cells in (("canary", c.canary), ("baseline", c.baseline)):
                if not cells:
                    continue
                sample = list(cells[:COHORT_SAMPLE])
                sampled[name] = len(sample)
                regex = promql_regex(sample)
                for metric, template in self.cfg.canary_queries:
                    q = template.replace("{{ cells }}", regex)
                    points = query(q, window, step)
                    if metric == "requests":  # a sum over the cohort: shown per cell
                        points = [(t, v / len(sample)) for t, v in points]
                    out.setdefault(metric, {})[name] = points
        except AdapterError as e:
            return out, sampled, str(e)
        return out, sampled, ""


def changed_cells(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str] | None:
    """The cells whose tiles differ between two fleet documents (None: every cell may
    have, e.g. the cells themselves changed)."""
    names = b["cells"]["name"]
    if a["cells"]["name"] != names or sorted(a["services"]) != sorted(b["services"]):
        return None
    out: set[int] = set()
    for svc, sb in b["services"].items():
        sa = a["services"][svc]
        for key, table in (("version", "versions"), ("target", "versions"),
                           ("health", "healths"), ("flags", None)):
            xa, xb = sa[key], sb[key]
            if xa == xb and (table is None or a[table] == b[table]):
                continue
            ta, tb = (a[table], b[table]) if table else (None, None)
            for i, (p, q) in enumerate(zip(xa, xb, strict=True)):
                if ta is not None and tb is not None:
                    p = ta[p] if p >= 0 else None
                    q = tb[q] if q >= 0 else None
                if p != q:
                    out.add(i)
    return [names[i] for i in sorted(out)]
