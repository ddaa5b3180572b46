"""The real daemon, assembled by ``reconciler.compose`` exactly as ``reconciler run`` is,
following the e2e fleet's bare remote and stepped by hand in the test's thread; and
reading the results back from the real parts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.adapters.kubernetes.snapshot import read_fleet
from reconciler.adapters.migrations.report import read_phases
from reconciler.compose.daemon import build_daemon
from reconciler.compose.oneshot import load_directory
from reconciler.daemon.config import DaemonConfig, LeaderConfig, RepoConfig
from reconciler.daemon.service import Daemon
from reconciler.daemon.ticks import TickWatch
from reconciler.engine.executor import Outcome
from reconciler.engine.tick import Reconciler, TickReport
from reconciler.testing.gitserver import free_port
from tests.e2e.conftest import CELLS, Fleet

BOT = ("reconciler", "reconciler@e2e.example")


class SteppedDaemon:
    """The daemon over ``fleet.remote``; ``tick`` runs its fetch and reconcile jobs once."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.ticks = TickWatch()
        daemon.tick_listeners.append(self.ticks)

    @property
    def reconciler(self) -> Reconciler:
        assert self.daemon.source is not None
        return self.daemon.source.reconciler

    def step(self) -> list[TickReport]:
        """One fetch, then ticks until one makes no progress; their reports."""
        mark = self.ticks.mark()
        self.daemon.step()
        return self.ticks.reports[mark:]

    def tick(self) -> TickReport:
        """The first tick of one step (what a single pass saw and did)."""
        reports = self.step()
        assert reports, "the daemon did not tick (not the leader?)"
        return reports[0]

    def run_until(self, done: Callable[[TickReport], bool], log: list[Outcome],
                  timeout: float = 180.0) -> TickReport:
        """Step until ``done`` holds for a report; every outcome is appended to ``log``;
        an invalid revision or a failed step fails the test."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            for report in self.step():
                assert not report.errors, report.errors
                assert not report.failed, [o.to_json() for o in report.failed]
                log.extend(report.outcomes)
                last = report
                if done(report):
                    return report
            time.sleep(0.5)
        summary = last.plan.to_json()["summary"] if last and last.plan else None
        raise AssertionError(f"not converged in {timeout}s; last plan: {summary}")


def _drift_events(d: SteppedDaemon, cell: str) -> float:
    return d.daemon.metrics.registry.get_sample_value(
        "reconciler_drift_events_total", {"cell": cell, "service": "shop"}) or 0.0


@contextmanager
def drift_reported(d: SteppedDaemon, cell: str, timeout: float = 30.0) -> Iterator[None]:
    """Around a change made by hand to ``cell``'s shop: on leaving, wait until the daemon's
    drift watch has reported drift there (so the store a tick reads holds the change)."""
    seen = _drift_events(d, cell)
    yield
    deadline = time.monotonic() + timeout
    while _drift_events(d, cell) <= seen:
        assert time.monotonic() < deadline, f"the watch never reported drift on {cell}"
        time.sleep(0.05)


@contextmanager
def stepped_daemon(fleet: Fleet) -> Iterator[SteppedDaemon]:
    """The daemon ``reconciler run --repo file://<fleet.remote>`` builds, opened and
    stepped by hand; shut down (status pushed) afterwards."""
    cfg = DaemonConfig(
        repo=RepoConfig(url=f"file://{fleet.remote}", branch="main"),
        listen=f"127.0.0.1:{free_port()}", state_dir=str(fleet.state),
        prometheus_url=fleet.prom.url, drift_interval=0, git_author=BOT,
        leader=LeaderConfig(kind="none"), terraform_cli_config=str(fleet.terraform_cli_config))
    daemon = build_daemon(cfg)
    daemon.background = False
    assert daemon.open()
    try:
        yield SteppedDaemon(daemon)
    finally:
        daemon.shutdown()


def live_versions(fleet: Fleet) -> dict[str, tuple[str | None, str]]:
    result = load_directory(fleet.repo)  # with the manifest tools, as the CLI
    assert result.desired is not None
    services = read_fleet(result.desired)
    return {cell: (str(s["shop"].version) if s["shop"].version else None, s["shop"].health)
            for cell, s in services.items()}


def migration_phase(fleet: Fleet, cell: str) -> str | None:
    result = load_directory(fleet.repo)  # with the manifest tools, as the CLI
    assert result.desired is not None
    ref = result.desired.cells[cell].databases[0]
    phases = read_phases(cell, ref)
    return phases["0001-currency"].phase if "0001-currency" in phases else None


def config_value(fleet: Fleet, cell: str, key: str) -> str:
    """A key of the shop ConfigMap in the cell's namespace, read with kubectl."""
    result = load_directory(fleet.repo)  # with the manifest tools, as the CLI
    assert result.desired is not None
    ns = result.desired.cells[cell].kubernetes.namespace
    return fleet.plane.kubectl("get", "configmap", "shop-config", "-n", ns,
                               "-o", f"jsonpath={{.data.{key}}}").strip()


@contextmanager
def following_versions(fleet: Fleet, interval: float = 0.3) -> Iterator[None]:
    """The test exporter labels each cell's requests with the version its real
    Deployment runs (read from the control plane every ``interval``), as an app's own
    metrics would; afterwards the cells are unlabelled again."""
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(interval):
            try:
                versions = live_versions(fleet)
            except Exception:  # the API server may be briefly away: try again
                continue
            for cell, (version, _) in versions.items():
                fleet.exporter.set_version(cell, version)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        for cell in CELLS:
            fleet.exporter.set_version(cell, None)
